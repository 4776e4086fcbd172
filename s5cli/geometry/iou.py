"""Exact IoU of rotated boxes and quadrilaterals by polygon clipping, vectorised in torch (no GEOS).

Two convex polygons intersect in a convex polygon whose vertices are among the corners of each
inside the other and the crossings of their edges. We gather these candidates with a validity mask,
sort the valid ones by angle around their mean and take the shoelace area. Padding the sorted list
with its first point adds zero-area terms, so the whole computation stays a fixed-shape tensor
program (the approach of lilanxiao/Rotated_IoU, written anew).

Quadrilaterals that are not convex (a dent: DOTA annotations are free 4-point polygons) are written as
the signed fan of triangles (o, v_i, v_i+1) around a point o: the sum of the fan's signed indicator
functions is the polygon's winding number, so the intersection area of two polygons is the signed
sum of the pairwise intersections of their fan triangles (the formulation of the DOTA devkit's
polyiou.cpp, also exact for concave polygons). Shapely's overlay is avoided on purpose: with the GEOS
that ships beside it here, valid polygons that coincide or share an edge can intersect as a point
(libgeos/geos#1354), which turns an IoU of 0.995 into 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from s5cli.geometry.boxes import polygons_to_hboxes, rboxes_to_corners, rboxes_to_hboxes

PAIR_CHUNK = 1 << 16  # pairs per clipping pass: about 50 MB of float32 intermediates


def _cross(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def polygon_areas(corners: Tensor) -> Tensor:
    """Signed shoelace areas (...,) of polygons (..., K, 2); positive when counter-clockwise with y up."""
    return 0.5 * _cross(corners, corners.roll(-1, dims=-2)).sum(-1)


def _orient(corners: Tensor) -> Tensor:
    """Reorder (P, K, 2) polygons so that their signed area is non-negative."""
    flip = polygon_areas(corners) < 0
    return torch.where(flip[:, None, None], corners.flip(-2), corners)


def _inside(points: Tensor, poly: Tensor, tol: Tensor) -> Tensor:
    """(P, M) mask of points (P, M, 2) lying in (or within tol of) the oriented convex polygons (P, K, 2)."""
    edge = poly.roll(-1, dims=-2) - poly  # (P, K, 2); a repeated vertex gives a zero edge, which bounds nothing
    length = edge.norm(dim=-1).clamp_min(1e-30)
    rel = points[:, :, None, :] - poly[:, None, :, :]  # (P, M, K, 2)
    dist = _cross(edge[:, None], rel) / length[:, None]  # signed distance to each edge line, (P, M, K)
    return (dist >= -tol[:, None, None]).all(-1)


def convex_intersection_areas(p: Tensor, q: Tensor) -> Tensor:
    """Intersection areas (P,) of aligned pairs of convex polygons p (P, K, 2) and q (P, L, 2), any winding.

    A vertex may repeat (a triangle given as a quad); polygons without area intersect nothing.
    """
    if p.shape[0] == 0:
        return p.new_zeros(0)
    origin = p.mean(-2, keepdim=True)  # work near the origin: float32 keeps its precision there
    p, q = _orient(p - origin), _orient(q - origin)
    eps = torch.finfo(p.dtype).eps
    scale = torch.maximum(p.abs().amax((-1, -2)), q.abs().amax((-1, -2)))
    tol = 64 * eps * scale + 1e-30  # boundary slack for rounding, relative to size
    r = p.roll(-1, dims=-2) - p  # (P, K, 2) edges of p
    s = q.roll(-1, dims=-2) - q  # (P, L, 2)
    r_, s_ = r[:, :, None, :], s[:, None, :, :]
    qp = q[:, None, :, :] - p[:, :, None, :]  # (P, K, L, 2)
    denom = _cross(r_, s_)  # (P, K, L)
    # Edges closer to parallel than the rounding of their corners can tell (collinear edges of touching
    # boxes in float32) have an ill-conditioned crossing that lands anywhere on the common line; their
    # overlap is covered by the corner tests instead.
    rounding = scale[:, None, None] * (r.norm(dim=-1)[:, :, None] + s.norm(dim=-1)[:, None, :])
    parallel = denom.abs() <= 64 * eps * rounding
    safe = torch.where(parallel, torch.ones_like(denom), denom)
    t = _cross(qp, s_) / safe  # position along p's edge
    u = _cross(qp, r_) / safe  # position along q's edge
    slack = 64 * eps
    crossing = ~parallel & (t >= -slack) & (t <= 1 + slack) & (u >= -slack) & (u <= 1 + slack)
    hits = p[:, :, None, :] + t[..., None] * r_  # (P, K, L, 2)
    points = torch.cat([p, q, hits.flatten(1, 2)], dim=1)
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
    area = 0.5 * _cross(rel, rel.roll(-1, dims=1)).sum(-1).abs()
    # The overlap cannot exceed either polygon: this also zeroes polygons without area, whose edges
    # bound nothing in the inside tests.
    cap = torch.minimum(polygon_areas(p), polygon_areas(q))
    return torch.where(count >= 3, torch.minimum(area, cap), torch.zeros_like(area))


def is_convex(quads: Tensor) -> Tensor:
    """(P,) True for quadrilaterals (P, 4, 2) whose turns all go one way (collinear corners allowed)."""
    edge = quads.roll(-1, dims=-2) - quads
    turn = _cross(edge.roll(1, dims=-2), edge)  # at each corner
    return ((turn >= 0).all(-1)) | ((turn <= 0).all(-1))


def _fan(quads: Tensor) -> tuple[Tensor, Tensor]:
    """Triangles (P, 4, 3, 2) (o, v_i, v_i+1) around the corner mean o, and their orientation signs (P, 4)."""
    o = quads.mean(-2, keepdim=True).expand_as(quads)
    tri = torch.stack([o, quads, quads.roll(-1, dims=-2)], dim=-2)
    sign = torch.sign(polygon_areas(tri))
    return tri, sign


def quad_intersection_areas(p: Tensor, q: Tensor) -> Tensor:
    """Intersection areas (P,) of aligned pairs of simple (convex or concave) quadrilaterals (P, 4, 2).

    Convex pairs are clipped directly; a pair with a concave member is summed over the signed fan
    triangles of both (16 triangle clips).
    """
    out = p.new_zeros(p.shape[0])
    both = is_convex(p) & is_convex(q)
    if both.any():
        out[both] = convex_intersection_areas(p[both], q[both])
    rest = (~both).nonzero(as_tuple=True)[0]
    if rest.numel():
        tp, sp = _fan(p[rest])
        tq, sq = _fan(q[rest])
        n = rest.numel()
        a = tp[:, :, None].expand(n, 4, 4, 3, 2).reshape(-1, 3, 2)
        b = tq[:, None, :].expand(n, 4, 4, 3, 2).reshape(-1, 3, 2)
        pieces = convex_intersection_areas(a, b).reshape(n, 4, 4)
        signed = (pieces * sp[:, :, None] * sq[:, None, :]).sum((1, 2))
        # Each polygon's own winding: the fan sums to -1 inside a clockwise one.
        orientation = torch.where(polygon_areas(p[rest]) < 0, -1.0, 1.0) * torch.where(
            polygon_areas(q[rest]) < 0, -1.0, 1.0
        )
        out[rest] = signed * orientation.to(signed.dtype)
    return out


def _iou(inter: Tensor, area_a: Tensor, area_b: Tensor, eps: float) -> Tensor:
    union = area_a + area_b - inter
    return torch.where(union > eps, inter / union.clamp_min(eps), torch.zeros_like(inter))


def quad_iou_aligned(p: Tensor, q: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU (P,) of aligned pairs of simple quadrilaterals (P, 4, 2), any corner order and winding."""
    inter = quad_intersection_areas(p, q)
    return _iou(inter, polygon_areas(p).abs(), polygon_areas(q).abs(), eps)


def rotated_iou_aligned(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU (P,) of aligned pairs of rotated boxes a, b (P, 5); boxes without area have IoU 0."""
    out = a.new_zeros(a.shape[0])
    for start in range(0, a.shape[0], PAIR_CHUNK):
        sa, sb = a[start : start + PAIR_CHUNK], b[start : start + PAIR_CHUNK]
        inter = convex_intersection_areas(rboxes_to_corners(sa), rboxes_to_corners(sb))
        out[start : start + PAIR_CHUNK] = _iou(inter, sa[:, 2] * sa[:, 3], sb[:, 2] * sb[:, 3], eps)
    return out


def _pairwise(ha: Tensor, hb: Tensor, aligned: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor) -> Tensor:
    """(N, M) values of `aligned` on the pairs of a, b whose enclosing boxes ha (N, 4), hb (M, 4) overlap; else 0."""
    out = a.new_zeros(a.shape[0], b.shape[0])
    if out.numel() == 0:
        return out
    lt = torch.maximum(ha[:, None, :2], hb[None, :, :2])
    rb = torch.minimum(ha[:, None, 2:], hb[None, :, 2:])
    i, j = ((rb - lt) > 0).all(-1).nonzero(as_tuple=True)
    for start in range(0, i.numel(), PAIR_CHUNK):
        si, sj = i[start : start + PAIR_CHUNK], j[start : start + PAIR_CHUNK]
        out[si, sj] = aligned(a[si], b[sj])
    return out


def rotated_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU (N, M) of rotated boxes a (N, 5) and b (M, 5).

    Only pairs whose enclosing horizontal boxes overlap are clipped; the rest are 0.
    """
    return _pairwise(rboxes_to_hboxes(a), rboxes_to_hboxes(b), rotated_iou_aligned, a, b)


def quad_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU (N, M) of simple quadrilaterals a (N, 8) and b (M, 8), flat x1 y1 ... x4 y4.

    Only pairs whose enclosing horizontal boxes overlap are clipped; the rest are 0.
    """

    def aligned(p: Tensor, q: Tensor) -> Tensor:
        return quad_iou_aligned(p.reshape(-1, 4, 2), q.reshape(-1, 4, 2))

    return _pairwise(polygons_to_hboxes(a), polygons_to_hboxes(b), aligned, a, b)
