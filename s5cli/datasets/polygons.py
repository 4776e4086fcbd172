"""Four-corner object polygons (N, 8): winding, clipping to a window, degenerate ones.

Coordinates are pixels with (0, 0) at the top-left corner of the top-left pixel and y pointing down.
"Clockwise" is as seen on screen, which is a positive shoelace area in these y-down coordinates
(DOTA lists corners clockwise from the object's top-left point, docs/datasets.md).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon, box


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


def clip_to_window(
    polys: np.ndarray, window: tuple[float, float, float, float], min_iof: float = 0.7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the polygons that lie enough inside a window, in the window's own pixel coordinates.

    A polygon is kept when the fraction of its area inside the window (intersection over the
    object's area, "iof") is at least ``min_iof`` (mmrotate's img_split uses 0.7). Polygons cut by
    the window edge are clipped: their corners become the minimum rotated rectangle of the part
    inside (exact for axis-aligned boxes), and they are flagged truncated.

    Returns (kept polygons (M, 8) float32 relative to the window, indexes (M,) of the kept input
    rows, truncated (M,) bool).
    """
    if len(polys) == 0:
        return np.zeros((0, 8), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    x0, y0, w, h = (float(v) for v in window)
    x1, y1 = x0 + w, y0 + h
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    inside = (xs.min(1) >= x0) & (xs.max(1) <= x1) & (ys.min(1) >= y0) & (ys.max(1) <= y1)
    outside = (xs.max(1) <= x0) | (xs.min(1) >= x1) | (ys.max(1) <= y0) | (ys.min(1) >= y1)
    out, keep, cut = [], [], []
    frame = box(x0, y0, x1, y1)
    for i in range(len(polys)):
        if outside[i]:
            continue
        if inside[i]:
            out.append(polys[i])
            keep.append(i)
            cut.append(False)
            continue
        shape = Polygon(polys[i].reshape(4, 2))
        if not shape.is_valid:
            shape = shape.buffer(0)
        area = shape.area
        if area <= 0:
            continue
        part = shape.intersection(frame)
        if part.is_empty or part.area / area < min_iof:
            continue
        out.append(corners_of(part, start_near=(polys[i][0], polys[i][1])))
        keep.append(i)
        cut.append(True)
    if not out:
        return np.zeros((0, 8), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    rel = np.asarray(out, dtype=np.float64)
    rel[:, 0::2] -= x0
    rel[:, 1::2] -= y0
    return rel.astype(np.float32), np.asarray(keep, np.int64), np.asarray(cut, bool)
