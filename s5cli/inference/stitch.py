"""Blending overlapping tiles in a band of rows: memory grows with the scene width, never its height.

Each tile's class probabilities are multiplied by a weight window (raised-cosine ramps over the
overlap, 1 in the middle, > 0 everywhere; flat on sides that lie on the scene border, where no
neighbour blends in) and summed into a float32 band of `tile` rows x scene width; the weights are
summed alongside. Tiles arrive in row-major order, so when a tile row starting at row r arrives,
every scene row above r has received all its contributions: those rows are finished (argmax of the
weighted sum, confidence = weighted mean probability of the winner) and handed to the writer, and
the band shifts up. Pixels that no tile predicted or that are nodata in the scene get class 255.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rasterio.windows import Window

from s5cli.geo.cog import CLASS_NODATA, CONF_NODATA

WEIGHT_FLOOR = 1e-3  # keeps every weight > 0 (TerraTorch adds 1e-6 for the same reason)


@lru_cache(maxsize=64)
def ramp(size: int, overlap: int, flat_start: bool, flat_end: bool) -> np.ndarray:
    """1-D weights (size,): raised-cosine ramps of `overlap` pixels at each end that is not flat."""
    w = np.ones(size, dtype=np.float32)
    if overlap <= 0:
        return w
    d = np.arange(size, dtype=np.float64) + 0.5  # distance of each pixel centre to the start edge
    up = np.clip(d / overlap, 0.0, 1.0)
    down = np.clip((size - d) / overlap, 0.0, 1.0)
    if not flat_start:
        w *= (0.5 - 0.5 * np.cos(np.pi * up)).astype(np.float32)
    if not flat_end:
        w *= (0.5 - 0.5 * np.cos(np.pi * down)).astype(np.float32)
    return np.maximum(w, WEIGHT_FLOOR).astype(np.float32)


def tile_weights(window: Window, width: int, height: int, overlap: int) -> np.ndarray:
    """(size, size) weights of one tile; sides on the scene border are flat."""
    size_y, size_x = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    wy = ramp(size_y, overlap, r0 <= 0, r0 + size_y >= height)
    wx = ramp(size_x, overlap, c0 <= 0, c0 + size_x >= width)
    return np.outer(wy, wx)


class RowBand:
    """Weighted sums of class probabilities for the scene rows [row0, row0 + tile)."""

    def __init__(self, width: int, height: int, tile: int, num_classes: int, overlap: int) -> None:
        self.width, self.height, self.tile, self.overlap = width, height, tile, overlap
        self.scores = np.zeros((num_classes, tile, width), dtype=np.float32)  # (K, tile, W)
        self.weight = np.zeros((tile, width), dtype=np.float32)
        self.valid = np.zeros((tile, width), dtype=bool)
        self.row0 = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the band."""
        return self.scores.nbytes + self.weight.nbytes + self.valid.nbytes

    def add(self, window: Window, probs: np.ndarray | None, valid: np.ndarray) -> None:
        """Add one tile: probs (K, size, size) float32 or None (a skipped all-nodata tile), valid (size, size)."""
        r = int(window.row_off) - self.row0
        if r < 0 or r >= self.tile:
            raise ValueError(f"tile at row {window.row_off} outside the band starting at {self.row0}")
        c0 = int(window.col_off)
        h = min(int(window.height), self.height - int(window.row_off), self.tile - r)
        w = min(int(window.width), self.width - c0)
        if h <= 0 or w <= 0:
            return
        self.valid[r : r + h, c0 : c0 + w] |= valid[:h, :w]
        if probs is None:
            return
        wt = tile_weights(window, self.width, self.height, self.overlap)[:h, :w]
        self.weight[r : r + h, c0 : c0 + w] += wt
        region = self.scores[:, r : r + h, c0 : c0 + w]
        region += probs[:, :h, :w] * wt

    def flush(self, until_row: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Finish rows [row0, until_row): returns (row0, classes (n, W) uint8, confidence (n, W) uint8)."""
        n = max(0, min(until_row, self.height) - self.row0)
        n = min(n, self.tile)
        row0 = self.row0
        scores, weight = self.scores[:, :n], self.weight[:n]
        has = (weight > 0) & self.valid[:n]
        # Argmax of the weighted sum = argmax of the weighted mean (the weight is a positive per-pixel factor).
        classes = scores.argmax(axis=0).astype(np.uint8)
        best = scores.max(axis=0) / np.maximum(weight, 1e-30)
        conf = np.clip(np.rint(best * 255.0), 1, 255).astype(np.uint8)
        classes[~has] = CLASS_NODATA
        conf[~has] = CONF_NODATA
        self._shift(n)
        return row0, classes, conf

    def _shift(self, n: int) -> None:
        if n == 0:
            return
        keep = self.tile - n
        if keep > 0:
            self.scores[:, :keep] = self.scores[:, n:]
            self.weight[:keep] = self.weight[n:]
            self.valid[:keep] = self.valid[n:]
        self.scores[:, keep:] = 0.0
        self.weight[keep:] = 0.0
        self.valid[keep:] = False
        self.row0 += n
