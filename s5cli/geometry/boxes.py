"""Rotated and horizontal boxes: one angle convention, conversions to and from 4-corner polygons.

Convention (exactly OBBDetection/BboxToolkit's, which S5's detector uses, so official weights and
box deltas carry over unchanged):
- a rotated box ("rbox") is (cx, cy, w, h, angle), pixels and radians, in image coordinates with
  x to the right and y down;
- w is the long side (w >= h) and the w side points along (cos a, -sin a) in pixel coordinates,
  the h side along (sin a, cos a): a positive angle turns the box counter-clockwise as seen on
  screen, which on a north-up raster is the usual counter-clockwise angle from east on the map;
- the angle lies in [-pi/2, pi/2) ("le90" range); a box taller than wide is stored as w, h swapped
  with the angle shifted by pi/2 (an upright box is (cx, cy, h, w, -pi/2));
- corner k is centre + u_k * (w/2) * (cos a, -sin a) + v_k * (h/2) * (sin a, cos a) with (u, v)
  going (-1,-1), (1,-1), (1,1), (-1,1): for angle 0 that is top-left, top-right, bottom-right,
  bottom-left, clockwise on screen like DOTA polygons;
- a horizontal box ("hbox") is (x1, y1, x2, y2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SIGNS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))  # corner order in the box frame


def wrap_angle(angle: Tensor) -> Tensor:
    """Wrap angles (radians) into [-pi/2, pi/2): a rectangle is the same after a half turn."""
    return torch.remainder(angle + math.pi / 2, math.pi) - math.pi / 2


def regularize_rboxes(rboxes: Tensor) -> Tensor:
    """Put (..., 5) boxes in the le90 convention: w >= h (swap and add pi/2 otherwise), angle wrapped."""
    cx, cy, w, h, a = rboxes.unbind(-1)
    swap = w < h
    w2 = torch.where(swap, h, w)
    h2 = torch.where(swap, w, h)
    a2 = wrap_angle(torch.where(swap, a + math.pi / 2, a))
    return torch.stack([cx, cy, w2, h2, a2], dim=-1)


def rboxes_to_corners(rboxes: Tensor) -> Tensor:
    """Corners (..., 4, 2) of (..., 5) rotated boxes, in the documented clockwise-on-screen order."""
    cx, cy, w, h, a = rboxes.unbind(-1)
    cos, sin = torch.cos(a), torch.sin(a)
    signs = torch.tensor(_SIGNS, dtype=rboxes.dtype, device=rboxes.device)  # (4, 2)
    u = signs[:, 0] * (w[..., None] / 2)  # (..., 4) along the w side
    v = signs[:, 1] * (h[..., None] / 2)  # (..., 4) along the h side
    x = cx[..., None] + u * cos[..., None] + v * sin[..., None]
    y = cy[..., None] - u * sin[..., None] + v * cos[..., None]
    return torch.stack([x, y], dim=-1)


def rboxes_to_polygons(rboxes: Tensor) -> Tensor:
    """Flat polygons (..., 8) = x1 y1 x2 y2 x3 y3 x4 y4 of (..., 5) rotated boxes."""
    return rboxes_to_corners(rboxes).flatten(-2)


def rboxes_to_hboxes(rboxes: Tensor) -> Tensor:
    """Enclosing horizontal boxes (..., 4) of (..., 5) rotated boxes."""
    cx, cy, w, h, a = rboxes.unbind(-1)
    cos, sin = torch.cos(a).abs(), torch.sin(a).abs()
    half_w = (w * cos + h * sin) / 2
    half_h = (w * sin + h * cos) / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def hboxes_to_rboxes(hboxes: Tensor) -> Tensor:
    """Horizontal boxes (..., 4) as rotated boxes (..., 5): angle 0, or -pi/2 when taller than wide."""
    x1, y1, x2, y2 = hboxes.unbind(-1)
    rboxes = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, torch.zeros_like(x1)], dim=-1)
    return regularize_rboxes(rboxes)


def polygons_to_hboxes(polygons: Tensor) -> Tensor:
    """Enclosing horizontal boxes (..., 4) of flat polygons (..., 2k)."""
    x, y = polygons[..., 0::2], polygons[..., 1::2]
    return torch.stack([x.amin(-1), y.amin(-1), x.amax(-1), y.amax(-1)], dim=-1)


def rectangles_to_rboxes(corners: Tensor) -> Tensor:
    """Rotated boxes (..., 5) of exact rectangles given as ordered corners (..., 4, 2) (no fitting)."""
    centre = corners.mean(-2)
    side1 = corners[..., 1, :] - corners[..., 0, :]
    side2 = corners[..., 2, :] - corners[..., 1, :]
    w = side1.norm(dim=-1)
    h = side2.norm(dim=-1)
    angle = torch.atan2(-side1[..., 1], side1[..., 0])  # the w side points along (cos a, -sin a)
    return regularize_rboxes(torch.cat([centre, w[..., None], h[..., None], angle[..., None]], dim=-1))


def polygons_to_rboxes(polygons: Tensor) -> Tensor:
    """Minimum-area rotated rectangles (N, 5) of quadrilaterals (N, 8) (DOTA/DIOR-R annotations).

    One side of the minimum-area rectangle of a point set lies along an edge of its convex hull
    (Freeman & Shapira 1975); the hull edges of 4 points are among their 6 pairwise directions, so
    trying those 6 directions is exact whatever the order of the corners.
    """
    pts = polygons.reshape(*polygons.shape[:-1], 4, 2)
    i, j = torch.triu_indices(4, 4, offset=1, device=polygons.device)  # the 6 point pairs
    d = pts[..., j, :] - pts[..., i, :]  # (..., 6, 2)
    length = d.norm(dim=-1, keepdim=True)
    ok = length[..., 0] > 1e-9 * (1 + pts.abs().amax((-1, -2)))[..., None]
    x_axis = torch.tensor([1.0, 0.0], dtype=d.dtype, device=d.device)
    e1 = torch.where(ok[..., None], d / length.clamp_min(1e-12), x_axis)  # unit direction
    e2 = torch.stack([-e1[..., 1], e1[..., 0]], dim=-1)  # its normal
    proj1 = (pts[..., None, :, :] * e1[..., :, None, :]).sum(-1)  # (..., 6, 4)
    proj2 = (pts[..., None, :, :] * e2[..., :, None, :]).sum(-1)
    lo1, hi1 = proj1.amin(-1), proj1.amax(-1)
    lo2, hi2 = proj2.amin(-1), proj2.amax(-1)
    area = (hi1 - lo1) * (hi2 - lo2)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best = area.argmin(-1, keepdim=True)  # (..., 1)

    def pick(t: Tensor) -> Tensor:
        return t.gather(-1, best)[..., 0]

    m1, m2 = pick((lo1 + hi1) / 2), pick((lo2 + hi2) / 2)
    ex, ey = pick(e1[..., 0]), pick(e1[..., 1])
    cx = m1 * ex - m2 * ey  # back from the (e1, e2) frame
    cy = m1 * ey + m2 * ex
    w, h = pick(hi1 - lo1), pick(hi2 - lo2)
    angle = torch.atan2(-ey, ex)
    # A quad whose points all coincide becomes a zero-size box at that point (x-axis direction).
    return regularize_rboxes(torch.stack([cx, cy, w, h, angle], dim=-1))


def hbox_areas(hboxes: Tensor) -> Tensor:
    """Areas (...,) of (..., 4) horizontal boxes (negative extents count as 0)."""
    return (hboxes[..., 2] - hboxes[..., 0]).clamp_min(0) * (hboxes[..., 3] - hboxes[..., 1]).clamp_min(0)


def hbox_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Pairwise IoU (N, M) of horizontal boxes a (N, 4) and b (M, 4)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = hbox_areas(a)[:, None] + hbox_areas(b)[None, :] - inter
    return inter / union.clamp_min(eps)
