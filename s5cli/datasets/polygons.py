"""Four-corner object polygons (N, 8): winding, crossing corner orders, windows, degenerate ones.

Coordinates are pixels with (0, 0) at the top-left corner of the top-left pixel and y pointing down.
"Clockwise" is as seen on screen, which is a positive shoelace area in these y-down coordinates
(DOTA lists corners clockwise from the object's top-left point, docs/datasets.md, DOTA).

Areas inside a window are computed by exact polygon clipping (s5cli.geometry.iou, float64), not
by shapely's overlay: its GEOS turns polygons that share an edge with the window (objects along an
image border) into points or lines (libgeos/geos#1354).
"""

from __future__ import annotations

import numpy as np
import shapely
import torch
from shapely.geometry import Polygon

from s5cli.geometry.iou import quad_intersection_areas


def signed_area(polys: np.ndarray) -> np.ndarray:
    """Shoelace area of each (N, 8) polygon; positive when clockwise on screen."""
    x, y = polys[:, 0::2], polys[:, 1::2]
    return 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)


def make_clockwise(polys: np.ndarray) -> np.ndarray:
    """Reverse the winding of counter-clockwise polygons, keeping the first corner first (p1, p4, p3, p2)."""
    out = polys.copy()
    flip = signed_area(polys) < 0
    if flip.any():
        out[flip] = polys[flip][:, [0, 1, 6, 7, 4, 5, 2, 3]]
    return out


def degenerate(polys: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(N,) True where two consecutive corners coincide or the area is zero (MTP drops these for DIOR-R)."""
    pts = polys.reshape(-1, 4, 2)
    same = (np.abs(pts - np.roll(pts, -1, axis=1)).max(axis=2) < eps).any(axis=1)
    return same | (np.abs(signed_area(polys)) < eps)


def corners_of(geometry: shapely.Geometry, start_near: tuple[float, float] | None = None) -> np.ndarray:
    """(8,) corners of a geometry's minimum rotated rectangle, clockwise, starting nearest ``start_near``.

    Without ``start_near`` the first corner is the one nearest the top-left (smallest x + y).
    """
    rect = shapely.minimum_rotated_rectangle(geometry)
    coords = np.asarray(rect.exterior.coords if isinstance(rect, Polygon) else rect.coords, dtype=np.float64)
    if len(coords) >= 5:
        pts = coords[:4]
    else:  # a degenerate rectangle (line or point): repeat its ends
        pts = np.array([coords[0], coords[-1], coords[-1], coords[0]], dtype=np.float64)
    poly = make_clockwise(pts.reshape(1, 8))[0].reshape(4, 2)
    ref = np.array(start_near if start_near is not None else (0.0, 0.0))
    first = int(np.argmin(np.abs(poly - ref).sum(axis=1) if start_near is not None else poly.sum(axis=1)))
    return np.roll(poly, -first, axis=0).reshape(8)


def _crosses(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(N,) True where segment a-b properly crosses segment c-d (points (N, 2))."""

    def side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))

    return (side(a, b, c) * side(a, b, d) < 0) & (side(c, d, a) * side(c, d, b) < 0)


def untangle(polys: np.ndarray) -> np.ndarray:
    """Quads listed in a self-crossing corner order (a "bow tie") reordered along their convex hull.

    Four points of a crossing quad are always in convex position, so swapping the two corners of
    one crossing edge pair gives the hull; the first corner stays first. Other quads are unchanged.
    """
    out = np.array(polys, dtype=np.float64).reshape(-1, 8)
    pts = out.reshape(-1, 4, 2)
    first = _crosses(pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3])  # edges 0 and 2 cross: swap corners 1, 2
    second = ~first & _crosses(pts[:, 1], pts[:, 2], pts[:, 3], pts[:, 0])  # edges 1 and 3: swap 2, 3
    out[first] = out[first][:, [0, 1, 4, 5, 2, 3, 6, 7]]
    out[second] = out[second][:, [0, 1, 2, 3, 6, 7, 4, 5]]
    return out


def window_iof(polys: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """(N,) share of each polygon's area inside an axis-aligned window (x0, y0, width, height), exact.

    BboxToolkit's ``bbox_overlaps(mode="iof")``: intersection over the object's area (at least 1e-6).
    """
    polys = untangle(polys)
    out = np.zeros(len(polys))
    if not len(polys):
        return out
    x0, y0, w, h = (float(v) for v in window)
    x1, y1 = x0 + w, y0 + h
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    inside = (xs.min(1) >= x0) & (xs.max(1) <= x1) & (ys.min(1) >= y0) & (ys.max(1) <= y1)
    outside = (xs.max(1) <= x0) | (xs.min(1) >= x1) | (ys.max(1) <= y0) | (ys.min(1) >= y1)
    out[inside & (np.abs(signed_area(polys)) > 0)] = 1.0
    cut = np.nonzero(~inside & ~outside)[0]
    if len(cut):
        frame = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float64)
        quads = torch.from_numpy(polys[cut].reshape(-1, 4, 2))
        inter = quad_intersection_areas(quads, frame.expand_as(quads)).numpy()
        out[cut] = inter / np.maximum(np.abs(signed_area(polys[cut])), 1e-6)
    return out


def objects_in_window(
    polys: np.ndarray, window: tuple[float, float, float, float], min_iof: float = 0.7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The objects of a patch as BboxToolkit's img_split cuts them: whole polygons, in window coordinates.

    A polygon is kept when at least ``min_iof`` of its area is inside the window
    (``get_window_obj``); it is shifted to the window's origin but not clipped, so a cut object
    keeps its full outline past the patch edge, and it is flagged truncated (iof < 1).

    Returns (polygons (M, 8) float32, indexes (M,) of the kept input rows, truncated (M,) bool).
    """
    iof = window_iof(polys, window)
    keep = np.nonzero(iof >= min_iof)[0]
    rel = np.asarray(polys, dtype=np.float64).reshape(-1, 8)[keep].copy()
    rel[:, 0::2] -= float(window[0])
    rel[:, 1::2] -= float(window[1])
    return rel.astype(np.float32), keep.astype(np.int64), iof[keep] < 1


def _clip_ring(ring: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The part of a polygon ring (K, 2) inside an axis-aligned box (Sutherland-Hodgman)."""
    for axis, bound, lower in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        out = []
        for a, b in zip(ring, np.roll(ring, -1, axis=0)):
            a_in = a[axis] >= bound if lower else a[axis] <= bound
            b_in = b[axis] >= bound if lower else b[axis] <= bound
            if a_in:
                out.append(a)
            if a_in != b_in:
                out.append(a + (bound - a[axis]) / (b[axis] - a[axis]) * (b - a))
        ring = np.asarray(out, dtype=np.float64).reshape(-1, 2)
        if len(ring) < 3:
            break
    return ring


def clip_to_window(
    polys: np.ndarray, window: tuple[float, float, float, float], min_iof: float = 0.7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the polygons that lie enough inside a window, clipped to it, in the window's own pixel coordinates.

    A polygon is kept when the fraction of its area inside the window (intersection over the
    object's area, "iof") is at least ``min_iof``. Polygons cut by the window edge are clipped:
    their corners become the minimum rotated rectangle of the part inside (exact for axis-aligned
    boxes), and they are flagged truncated. (DOTA patches keep whole polygons instead: see
    objects_in_window.)

    Returns (kept polygons (M, 8) float32 relative to the window, indexes (M,) of the kept input
    rows, truncated (M,) bool).
    """
    if len(polys) == 0:
        return np.zeros((0, 8), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    polys = untangle(polys)
    x0, y0, w, h = (float(v) for v in window)
    iof = window_iof(polys, window)
    out, keep, cut = [], [], []
    for i in np.nonzero(iof >= min_iof)[0]:
        if iof[i] >= 1:
            out.append(polys[i])
            cut.append(False)
        else:
            part = _clip_ring(polys[i].reshape(4, 2), x0, y0, x0 + w, y0 + h)
            out.append(corners_of(Polygon(part), start_near=(polys[i][0], polys[i][1])))
            cut.append(True)
        keep.append(i)
    if not out:
        return np.zeros((0, 8), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    rel = np.asarray(out, dtype=np.float64)
    rel[:, 0::2] -= x0
    rel[:, 1::2] -= y0
    return rel.astype(np.float32), np.asarray(keep, np.int64), np.asarray(cut, bool)
