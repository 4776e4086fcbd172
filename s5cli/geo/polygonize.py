"""Class raster -> polygons, block by block, with polygons cut by block seams merged again.

No whole-scene array is ever held: the class raster is read in blocks (plus a margin for the sieve),
each block is sieved (minimum mapping unit) and polygonised with 4-connectivity, and the pieces that
touch a seam between blocks are kept aside. After each row of blocks those pieces are merged with their
same-class neighbours (edge contact only, so the result matches whole-array polygonising); merged
polygons that can no longer grow (they do not reach the next row's seam) are released. Geometry stays in
pixel coordinates (integer vertices, so unions are exact) until the caller maps it to the CRS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio import features
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from s5cli.geo.cog import CLASS_NODATA, iter_blocks


@dataclass
class Piece:
    """A polygon of one class in pixel coordinates, with its pixel count and summed confidence (0..1)."""

    class_id: int
    geom: shapely.Polygon
    pixels: float
    conf_sum: float

    @property
    def mean_conf(self) -> float:
        """Mean confidence over the polygon's pixels (NaN without a confidence raster)."""
        return self.conf_sum / self.pixels if self.pixels else float("nan")


def sieve_margin(sieve: int) -> int:
    """Rows/cols read around a block so that every region smaller than `sieve` pixels is seen whole."""
    return 0 if sieve <= 1 else sieve + 2


def block_pieces(
    classes: np.ndarray, conf: np.ndarray | None, col0: int, row0: int, nodata: int = CLASS_NODATA
) -> list[Piece]:
    """Polygonise one (already sieved) class block whose top-left pixel is (col0, row0)."""
    valid = classes != nodata
    if not valid.any():
        return []
    found = list(features.shapes(classes, mask=valid, connectivity=4))  # block pixel coordinates
    rings = _Rings([g for g, _ in found])
    values = [int(v) for _, v in found]
    geoms = rings.polygons(col0, row0)
    pixels = shapely.area(geoms)  # exact: vertices are integer pixel corners
    sums = rings.pixel_sums(conf) / 255.0 if conf is not None else np.full(len(found), np.nan)
    return [Piece(v, g, float(a), float(s)) for g, v, a, s in zip(geoms, values, pixels, sums)]


class _Rings:
    """The rings of GeoJSON polygons as flat arrays: vertices (N, 2), ring and polygon offsets."""

    def __init__(self, dicts: list[dict]) -> None:
        coords: list[tuple[float, float]] = []
        ring_ends, geom_ends = [0], [0]
        for geom in dicts:
            for ring in geom["coordinates"]:
                coords.extend(ring)
                ring_ends.append(len(coords))
            geom_ends.append(len(ring_ends) - 1)
        self.n = len(dicts)
        self.coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        self.ring_ends = np.asarray(ring_ends, dtype=np.int64)
        self.geom_ends = np.asarray(geom_ends, dtype=np.int64)

    def polygons(self, col0: int, row0: int) -> np.ndarray:
        """Shapely polygons shifted by (col0, row0), in one vectorised call (shape() per polygon is 5x slower)."""
        if self.n == 0:
            return np.empty(0, dtype=object)
        xy = self.coords + np.asarray([col0, row0], dtype=np.float64)
        return shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy, (self.ring_ends, self.geom_ends))

    def pixel_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (h, w) over each polygon's pixels, from its boundary alone (discrete Green's theorem).

        With Q[r, c] = sum of values[:r, :c], a vertical edge x from row y0 to y1 adds Q[y1, x] - Q[y0, x];
        summed over every ring (holes run the other way round) that is +- the sum inside. O(vertices),
        where burning the polygons (rasterize) costs rows x edges and crawls on large stair-cased polygons.
        """
        if self.n == 0:
            return np.zeros(0)
        q = prefix_sums(values)
        xy = np.rint(self.coords).astype(np.int64)
        start, stop = xy[:-1], xy[1:]
        # Edges join consecutive vertices of one ring: drop the pairs that straddle two rings.
        same_ring = np.ones(len(start), dtype=bool)
        same_ring[self.ring_ends[1:-1] - 1] = False
        vertical = same_ring & (start[:, 0] == stop[:, 0])
        x, y0, y1 = start[vertical, 0], start[vertical, 1], stop[vertical, 1]
        contrib = (q[y1, x] - q[y0, x]).astype(np.float64)
        ring_of_vertex = np.repeat(np.arange(len(self.ring_ends) - 1), np.diff(self.ring_ends))
        geom_of_ring = np.repeat(np.arange(self.n), np.diff(self.geom_ends))
        owner = geom_of_ring[ring_of_vertex[:-1][vertical]]
        return np.abs(np.bincount(owner, weights=contrib, minlength=self.n))


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """Q (h + 1, w + 1) with Q[r, c] = sum of values[:r, :c] (int64, or float64 for float values).

    Along rows with cumsum (contiguous), then down the columns one row at a time: numpy's cumsum over
    axis 0 walks the array column by column and is 20x slower than adding whole rows.
    """
    h, w = values.shape
    q = np.zeros((h + 1, w + 1), dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    np.cumsum(values, axis=1, out=q[1:, 1:])
    for r in range(2, h + 1):
        np.add(q[r - 1], q[r], out=q[r])
    return q


def on_seam(pieces: list[Piece], win: Window, width: int, height: int) -> np.ndarray:
    """Which pieces of a block touch a seam shared with another block (not the scene edge)."""
    if not pieces:
        return np.zeros(0, dtype=bool)
    b = shapely.bounds(np.asarray([p.geom for p in pieces], dtype=object))
    c0, r0 = win.col_off, win.row_off
    c1, r1 = c0 + win.width, r0 + win.height
    return (
        ((b[:, 0] <= c0) & (c0 > 0))
        | ((b[:, 2] >= c1) & (c1 < width))
        | ((b[:, 1] <= r0) & (r0 > 0))
        | ((b[:, 3] >= r1) & (r1 < height))
    )


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


class SeamMerger:
    """Holds pieces cut by block seams and merges same-class pieces that share an edge."""

    def __init__(self) -> None:
        self.pending: list[Piece] = []
        self.merged = 0  # pending[:merged] came out of the last release: no two of them share an edge

    def add(self, pieces: list[Piece]) -> None:
        """Add pieces that touch a seam."""
        self.pending.extend(pieces)

    def release(self, seam_row: int | None) -> list[Piece]:
        """Merge the pending pieces; return those that do not reach `seam_row` (None: release all)."""
        if not self.pending:
            return []
        merged = _merge(self.pending, self.merged)
        if seam_row is None:
            self.pending, self.merged = [], 0
            return merged
        reach = shapely.bounds(np.asarray([p.geom for p in merged], dtype=object))[:, 3] >= seam_row
        self.pending = [p for p, r in zip(merged, reach) if r]
        self.merged = len(self.pending)
        return [p for p, r in zip(merged, reach) if not r]


def _merge(pieces: list[Piece], settled: int = 0) -> list[Piece]:
    """Union same-class pieces that share an edge; pairs within pieces[:settled] are known not to.

    Skipping those pairs matters: a region that reaches every seam (a scene-wide background) stays
    pending from block row to block row, and testing it again against its settled neighbours each
    time made polygonising superlinear in the scene width.
    """
    geoms = np.asarray([p.geom for p in pieces], dtype=object)
    cls = np.asarray([p.class_id for p in pieces])
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = (i < j) & (cls[i] == cls[j]) & (j >= settled)  # i < j: a new piece is always the j side
    i, j = i[keep], j[keep]
    # Edge contact only (a shared line, not a shared corner): 4-connectivity, as in each block.
    shared = shapely.length(shapely.intersection(geoms[i], geoms[j])) > 0
    parent = np.arange(len(pieces))
    for a, b in zip(i[shared], j[shared]):
        ra, rb = _find(parent, int(a)), _find(parent, int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.asarray([_find(parent, k) for k in range(len(pieces))])
    out: list[Piece] = []
    for root in np.unique(roots):
        members = np.flatnonzero(roots == root)
        if len(members) == 1:
            out.append(pieces[members[0]])
            continue
        union = shapely.union_all(geoms[members])
        pixels = float(sum(pieces[k].pixels for k in members))
        conf = float(sum(pieces[k].conf_sum for k in members))
        out.extend(_as_polygons(int(cls[members[0]]), union, pixels, conf))
    return out


def _as_polygons(class_id: int, geom: shapely.Geometry, pixels: float, conf: float) -> list[Piece]:
    """One piece per polygon part (a union of edge-sharing pieces is one polygon; be safe anyway)."""
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon) and not g.is_empty]
    if len(parts) == 1:
        return [Piece(class_id, parts[0], pixels, conf)]
    total = sum(p.area for p in parts) or 1.0
    return [Piece(class_id, p, p.area, conf * p.area / total) for p in parts]


class RowPolygonizer:
    """Polygonises a class map that arrives as rows, top to bottom, block row by block row.

    Rows go in with `push` (as the predict engine finishes them, or as read from a raster); `finished`
    then yields the polygons that became final, block by block. A block row [r, r + block) is polygonised once the rows
    down to r + block + the sieve margin are in, so the result is the same as reading the raster
    block by block; rows above the next block row's margin are dropped. Memory: (block + 2 margins)
    rows of the scene width, two uint8 planes. `on_sieved(window, classes)` receives every sieved block
    (the class raster's blocks as sieve_raster writes them), so the map is sieved once for both.
    """

    def __init__(
        self,
        width: int,
        height: int,
        block: int = 2048,
        sieve: int = 0,
        nodata: int = CLASS_NODATA,
        on_sieved: Callable[[Window, np.ndarray], None] | None = None,
    ):
        self.width, self.height, self.block, self.sieve, self.nodata = width, height, block, sieve, nodata
        self.on_sieved = on_sieved
        self.margin = sieve_margin(sieve)
        self.merger = SeamMerger()
        self.next_row = 0  # the next row push() expects
        self.block_row = 0  # the top of the next block row to polygonise
        self.buf_row0 = 0  # scene row of self.classes[0]
        self.classes = np.empty((0, width), dtype=np.uint8)
        self.conf: np.ndarray | None = None
        self._chunks: list[tuple[np.ndarray, np.ndarray | None]] = []  # rows from buf_row0 on, as pushed

    def push(self, row0: int, classes: np.ndarray, conf: np.ndarray | None = None) -> None:
        """Take rows [row0, row0 + n) (uint8 classes, optional uint8 confidence); then iterate `finished()`."""
        if row0 != self.next_row:
            raise ValueError(f"rows must arrive in order: got {row0}, expected {self.next_row}")
        self._chunks.append((classes, conf))
        self.next_row += len(classes)

    def finished(self) -> Iterator[list[Piece]]:
        """The polygons that the rows pushed so far complete, block by block (few in memory at a time)."""
        while self.block_row < self.height:
            end = min(self.block_row + self.block, self.height)
            if self.next_row < min(end + self.margin, self.height):
                return
            self._join()
            yield from self._block_row(self.block_row, end)
            self.block_row = end
            self._drop_above(max(0, end - self.margin))

    def _join(self) -> None:
        """Make the buffered chunks one array (once per block row, not per push)."""
        if len(self._chunks) == 1 and self.classes is self._chunks[0][0]:
            return
        self.classes = np.concatenate([c for c, _ in self._chunks])
        confs = [f for _, f in self._chunks]
        self.conf = np.concatenate(confs) if all(f is not None for f in confs) else None
        self._chunks = [(self.classes, self.conf)]

    def _drop_above(self, row: int) -> None:
        cut = row - self.buf_row0
        if cut > 0:
            tail = (self.classes[cut:].copy(), self.conf[cut:].copy() if self.conf is not None else None)
            self._chunks = [tail]
            self.classes, self.conf = tail
            self.buf_row0 = row

    def _block_row(self, r0: int, r1: int) -> Iterator[list[Piece]]:
        for c0 in range(0, self.width, self.block):
            win = Window(c0, r0, min(self.block, self.width - c0), r1 - r0)
            classes = self._sieved(win)
            if self.on_sieved is not None:
                self.on_sieved(win, classes)
            conf = None
            if self.conf is not None:
                conf = self.conf[r0 - self.buf_row0 : r1 - self.buf_row0, c0 : c0 + int(win.width)]
            pieces = block_pieces(classes, conf, c0, r0, self.nodata)
            seam = on_seam(pieces, win, self.width, self.height)
            self.merger.add([p for p, s in zip(pieces, seam) if s])
            done = [p for p, s in zip(pieces, seam) if not s]
            if done:
                yield done
        released = self.merger.release(r1 if r1 < self.height else None)
        if released:
            yield released

    def _sieved(self, win: Window) -> np.ndarray:
        """The block's classes, sieved with `margin` pixels of context on each side (as far as the scene goes)."""
        r0, c0 = int(win.row_off), int(win.col_off)
        r1, c1 = r0 + int(win.height), c0 + int(win.width)
        if self.margin == 0:
            return self.classes[r0 - self.buf_row0 : r1 - self.buf_row0, c0:c1]
        e0, e1 = max(0, r0 - self.margin), min(self.height, r1 + self.margin)
        f0, f1 = max(0, c0 - self.margin), min(self.width, c1 + self.margin)
        ext = self.classes[e0 - self.buf_row0 : e1 - self.buf_row0, f0:f1]
        return sieve_block(ext, self.sieve, self.nodata)[r0 - e0 : r1 - e0, c0 - f0 : c1 - f0]


def polygonize_raster(
    class_path: str | os.PathLike[str],
    conf_path: str | os.PathLike[str] | None = None,
    block: int = 2048,
    sieve: int = 0,
    on_block: Callable[[int], None] | None = None,
) -> Iterator[list[Piece]]:
    """Yield lists of finished polygons (pixel coordinates) of a class raster, block row by block row.

    Args:
        class_path: uint8 class raster, nodata 255 (pixels without a class carry no polygon).
        conf_path: uint8 confidence raster (round(255 * p)) on the same grid, for mean confidence.
        block: block side in pixels; memory is a block row, whatever the scene height.
        sieve: minimum mapping unit in pixels (regions smaller than this join their largest
            neighbour before polygonising); 0 or 1 turns the sieve off.
        on_block: called with the number of pixels read after each strip of rows (progress).
    """
    cls_src = rasterio.open(class_path)
    conf_src = rasterio.open(conf_path) if conf_path is not None else None
    try:
        width, height = cls_src.width, cls_src.height
        nodata = int(cls_src.nodata) if cls_src.nodata is not None else CLASS_NODATA
        rows = RowPolygonizer(width, height, block, sieve, nodata)
        for r0 in range(0, height, block):
            win = Window(0, r0, width, min(block, height - r0))
            conf = conf_src.read(1, window=win) if conf_src is not None else None
            rows.push(r0, cls_src.read(1, window=win), conf)
            yield from rows.finished()
            if on_block is not None:
                on_block(int(win.width * win.height))
    finally:
        cls_src.close()
        if conf_src is not None:
            conf_src.close()


def sieve_raster(
    class_path: str | os.PathLike[str], dest: str | os.PathLike[str], sieve: int, block: int = 2048
) -> Path:
    """Write a class raster's sieved copy (minimum mapping unit `sieve` px), block by block; returns dest.

    The copy keeps the grid, nodata, colour table and tags; polygonising it with sieve 0 gives what
    polygonize_raster(class_path, sieve=sieve) gives, so raster and polygons describe one map.
    """
    with rasterio.open(class_path) as src:
        nodata = int(src.nodata) if src.nodata is not None else CLASS_NODATA
        margin = sieve_margin(sieve)
        with rasterio.open(dest, "w", **src.profile) as dst:
            if src.colorinterp[0] == ColorInterp.palette:
                dst.write_colormap(1, src.colormap(1))
            dst.set_band_description(1, src.descriptions[0] or "class")
            dst.update_tags(1, **src.tags(1))
            for win in iter_blocks(src.width, src.height, block):
                dst.write(_read_sieved(src, win, margin, sieve, nodata), 1, window=win)
    return Path(dest)


def _read_sieved(src: rasterio.io.DatasetReader, win: Window, margin: int, sieve: int, nodata: int) -> np.ndarray:
    """Read a block, sieving it with `margin` pixels of context on each side."""
    if margin == 0:
        return src.read(1, window=win)
    c0, r0 = max(0, int(win.col_off) - margin), max(0, int(win.row_off) - margin)
    c1 = min(src.width, int(win.col_off + win.width) + margin)
    r1 = min(src.height, int(win.row_off + win.height) + margin)
    sieved = sieve_block(src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)), sieve, nodata)
    top, left = int(win.row_off) - r0, int(win.col_off) - c0
    return sieved[top : top + int(win.height), left : left + int(win.width)]


def sieve_block(ext: np.ndarray, sieve: int, nodata: int = CLASS_NODATA) -> np.ndarray:
    """Sieve a block read with its margin: the one sieve the class raster and the streamed polygons share."""
    valid = ext != nodata
    if ext.size <= 1 or not valid.any():  # one pixel, or all nodata (a sparse scene's empty parts)
        return ext
    # GDAL's sieve needs a size below the area; a smaller block than the mapping unit (a thin last row
    # of blocks) is sieved at its whole area, merging every region into its largest neighbour.
    return features.sieve(np.ascontiguousarray(ext), size=min(sieve, ext.size - 1), mask=valid, connectivity=4)
