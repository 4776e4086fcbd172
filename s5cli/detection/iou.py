"""Exact IoU of rotated boxes and convex quadrilaterals by polygon clipping, vectorised in torch.

The intersection of two convex quadrilaterals is a convex polygon whose vertices are among the
corners of each inside the other (4 + 4) and the crossings of their edges (4 x 4). We gather these
24 candidates with a validity mask, sort the valid ones by angle around their mean and take the
shoelace area. Padding the sorted list with its first point adds zero-area terms, so the whole
computation stays a fixed-shape tensor program (the approach of lilanxiao/Rotated_IoU, written anew).
"""

from __future__ import annotations

import torch
from torch import Tensor

from s5cli.detection.boxes import rboxes_to_corners, rboxes_to_hboxes

PAIR_CHUNK = 1 << 16  # pairs per clipping pass: about 50 MB of float32 intermediates


def _cross(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def polygon_areas(corners: Tensor) -> Tensor:
    """Signed shoelace areas (...,) of polygons (..., K, 2); positive when counter-clockwise with y up."""
    return 0.5 * _cross(corners, corners.roll(-1, dims=-2)).sum(-1)


def _orient(corners: Tensor) -> Tensor:
    """Reorder (P, 4, 2) quads so that their signed area is non-negative."""
    flip = polygon_areas(corners) < 0
    return torch.where(flip[:, None, None], corners.flip(-2), corners)


def _inside(points: Tensor, poly: Tensor, tol: Tensor) -> Tensor:
    """(P, K) mask of points (P, K, 2) lying in (or within tol of) the oriented convex quads (P, 4, 2)."""
    edge = poly.roll(-1, dims=-2) - poly  # (P, 4, 2)
    length = edge.norm(dim=-1).clamp_min(1e-12)
    rel = points[:, :, None, :] - poly[:, None, :, :]  # (P, K, 4, 2)
    dist = _cross(edge[:, None], rel) / length[:, None]  # signed distance to each edge line, (P, K, 4)
    return (dist >= -tol[:, None, None]).all(-1)


def quad_intersection_areas(p: Tensor, q: Tensor) -> Tensor:
    """Intersection areas (P,) of aligned pairs of convex quadrilaterals p, q (P, 4, 2), any corner order."""
    if p.shape[0] == 0:
        return p.new_zeros(0)
    origin = p.mean(-2, keepdim=True)  # work near the origin: float32 keeps its precision there
    p, q = _orient(p - origin), _orient(q - origin)
    scale = torch.maximum(p.abs().amax((-1, -2)), q.abs().amax((-1, -2)))
    tol = 64 * torch.finfo(p.dtype).eps * scale + 1e-12  # boundary slack for rounding, relative to size
    r = p.roll(-1, dims=-2) - p  # (P, 4, 2) edges of p
    s = q.roll(-1, dims=-2) - q
    r_, s_ = r[:, :, None, :], s[:, None, :, :]  # (P, 4, 1, 2), (P, 1, 4, 2)
    qp = q[:, None, :, :] - p[:, :, None, :]  # (P, 4, 4, 2)
    denom = _cross(r_, s_)  # (P, 4, 4); 0 for parallel edges, whose overlaps come from the corner tests
    parallel = denom.abs() <= 1e-12 * scale[:, None, None] ** 2
    safe = torch.where(parallel, torch.ones_like(denom), denom)
    t = _cross(qp, s_) / safe  # position along p's edge
    u = _cross(qp, r_) / safe  # position along q's edge
    eps = 64 * torch.finfo(p.dtype).eps
    crossing = ~parallel & (t >= -eps) & (t <= 1 + eps) & (u >= -eps) & (u <= 1 + eps)
    hits = p[:, :, None, :] + t[..., None] * r_  # (P, 4, 4, 2)
    points = torch.cat([p, q, hits.flatten(1, 2)], dim=1)  # (P, 24, 2)
    valid = torch.cat([_inside(p, q, tol), _inside(q, p, tol), crossing.flatten(1, 2)], dim=1)
    count = valid.sum(-1)
    w = valid.to(points.dtype)[..., None]
    centre = (points * w).sum(1) / count.clamp_min(1)[:, None].to(points.dtype)
    rel = points - centre[:, None, :]
    angle = torch.atan2(rel[..., 1], rel[..., 0])
    angle = torch.where(valid, angle, torch.full_like(angle, 10.0))  # invalid candidates sort last
    order = angle.argsort(dim=1)
    rel = rel.gather(1, order[..., None].expand(-1, -1, 2))
    ok = valid.gather(1, order)
    rel = torch.where(ok[..., None], rel, rel[:, :1, :])  # pad with the first vertex: zero-area terms
    area = 0.5 * _cross(rel, rel.roll(-1, dims=1)).sum(-1)
    return torch.where(count >= 3, area.abs(), torch.zeros_like(area))


def quad_iou_aligned(p: Tensor, q: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU (P,) of aligned pairs of convex quadrilaterals (P, 4, 2)."""
    inter = quad_intersection_areas(p, q)
    union = polygon_areas(p).abs() + polygon_areas(q).abs() - inter
    return inter / union.clamp_min(eps)


def rotated_iou_aligned(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU (P,) of aligned pairs of rotated boxes a, b (P, 5)."""
    out = a.new_zeros(a.shape[0])
    for start in range(0, a.shape[0], PAIR_CHUNK):
        sa, sb = a[start : start + PAIR_CHUNK], b[start : start + PAIR_CHUNK]
        inter = quad_intersection_areas(rboxes_to_corners(sa), rboxes_to_corners(sb))
        union = sa[:, 2] * sa[:, 3] + sb[:, 2] * sb[:, 3] - inter
        out[start : start + PAIR_CHUNK] = inter / union.clamp_min(eps)
    return out


def rotated_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU (N, M) of rotated boxes a (N, 5) and b (M, 5).

    Only pairs whose enclosing horizontal boxes overlap are clipped; the rest are 0.
    """
    out = a.new_zeros(a.shape[0], b.shape[0])
    if out.numel() == 0:
        return out
    ha, hb = rboxes_to_hboxes(a), rboxes_to_hboxes(b)
    lt = torch.maximum(ha[:, None, :2], hb[None, :, :2])
    rb = torch.minimum(ha[:, None, 2:], hb[None, :, 2:])
    i, j = ((rb - lt) > 0).all(-1).nonzero(as_tuple=True)
    if i.numel():
        out[i, j] = rotated_iou_aligned(a[i], b[j])
    return out
