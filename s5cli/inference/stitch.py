"""Blending overlapping tiles in a band of rows, on the model's device: memory grows with the scene width only.

Each tile's class probabilities are multiplied by a weight window (raised-cosine ramps over the
overlap, 1 in the middle, > 0 everywhere; flat on sides that lie on the scene border, where no
neighbour blends in) and summed into a float32 band of `tile` rows x scene width; the weights are
summed alongside. Tiles arrive in row-major order, so when a tile row starting at row r arrives,
every scene row above r has received all its contributions: those rows are finished (argmax of the
weighted sum, confidence = weighted mean probability of the winner) and the band shifts up. Pixels
that no tile predicted or that are nodata in the scene get class 255.

The band is a torch tensor on the device the model runs on: on a GPU the probabilities never leave
it, and only the finished rows, two uint8 planes, cross to the host. On a CPU the same code runs on
torch's intra-op threads, in the thread that runs the model, so it never competes with them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from rasterio.windows import Window

from s5cli.geo.cog import CLASS_NODATA, CONF_NODATA

WEIGHT_FLOOR = 1e-3  # keeps every weight > 0 (TerraTorch adds 1e-6 for the same reason)
FINISH_ROWS = 64  # rows finished per step


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


def _flat_sides(window: Window, width: int, height: int) -> tuple[int, int, bool, bool, bool, bool]:
    """(size_y, size_x, flat top, flat bottom, flat left, flat right): what a tile's weights depend on."""
    size_y, size_x = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    return size_y, size_x, r0 <= 0, r0 + size_y >= height, c0 <= 0, c0 + size_x >= width


def tile_weights(window: Window, width: int, height: int, overlap: int) -> np.ndarray:
    """(size, size) weights of one tile; sides on the scene border are flat."""
    size_y, size_x, top, bottom, left, right = _flat_sides(window, width, height)
    return np.outer(ramp(size_y, overlap, top, bottom), ramp(size_x, overlap, left, right))


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A numpy array (shared, not copied, on the CPU) or a tensor, on `device`."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    return tensor.to(device, non_blocking=True)


class RowBand:
    """Weighted sums of class probabilities for the scene rows [row0, row0 + tile), on one device."""

    def __init__(
        self, width: int, height: int, tile: int, num_classes: int, overlap: int, device: str | torch.device = "cpu"
    ) -> None:
        self.width, self.height, self.tile, self.overlap = width, height, tile, overlap
        self.device = torch.device(device)
        self.scores = torch.zeros((num_classes, tile, width), dtype=torch.float32, device=self.device)
        self.weight = torch.zeros((tile, width), dtype=torch.float32, device=self.device)
        self.valid = torch.zeros((tile, width), dtype=torch.bool, device=self.device)
        self.row0 = 0
        self._weights: dict[tuple[int, int, bool, bool, bool, bool], torch.Tensor] = {}

    @property
    def nbytes(self) -> int:
        """Memory held by the band (on its device)."""
        return sum(t.numel() * t.element_size() for t in (self.scores, self.weight, self.valid))

    def _tile_weights(self, window: Window) -> torch.Tensor:
        """The tile's weights on the band's device; a scene has at most 9 kinds of tile (corners, sides, middle)."""
        key = _flat_sides(window, self.width, self.height)
        if key not in self._weights:
            weights = tile_weights(window, self.width, self.height, self.overlap)
            self._weights[key] = torch.from_numpy(weights).to(self.device)
        return self._weights[key]

    def add(self, window: Window, probs: np.ndarray | torch.Tensor | None, valid: np.ndarray | torch.Tensor) -> None:
        """Add one tile: probs (K, size, size) float32 or None (a skipped all-nodata tile), valid (size, size)."""
        r = int(window.row_off) - self.row0
        if r < 0 or r >= self.tile:
            raise ValueError(f"tile at row {window.row_off} outside the band starting at {self.row0}")
        c0 = int(window.col_off)
        h = min(int(window.height), self.height - int(window.row_off), self.tile - r)
        w = min(int(window.width), self.width - c0)
        if h <= 0 or w <= 0 or probs is None:
            return  # a skipped tile has no valid pixel: nothing to add
        self.valid[r : r + h, c0 : c0 + w] |= as_tensor(valid, self.device)[:h, :w]
        wt = self._tile_weights(window)[:h, :w]
        self.weight[r : r + h, c0 : c0 + w] += wt
        self.scores[:, r : r + h, c0 : c0 + w].addcmul_(as_tensor(probs, self.device)[:, :h, :w], wt)

    def finish(self, until_row: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """Finish rows [row0, until_row) on the band's device: (row0, classes (n, W) uint8, confidence (n, W) uint8)."""
        n = max(0, min(until_row, self.height) - self.row0)
        n = min(n, self.tile)
        row0 = self.row0
        classes = torch.empty((n, self.width), dtype=torch.uint8, device=self.device)
        conf = torch.empty((n, self.width), dtype=torch.uint8, device=self.device)
        for r in range(0, n, FINISH_ROWS):  # a few rows at a time: the argmax's int64 indices stay small
            rows = slice(r, min(n, r + FINISH_ROWS))
            weight = self.weight[rows]
            # Argmax of the weighted sum = argmax of the weighted mean (the weight is a positive per-pixel
            # factor); ties go to the first class, as numpy's argmax.
            best, winner = self.scores[:, rows].max(dim=0)
            p = best.div_(weight.clamp_min(1e-30)).mul_(255.0).round_().clamp_(1, 255)
            none = (weight <= 0) | ~self.valid[rows]
            classes[rows] = winner.to(torch.uint8).masked_fill_(none, CLASS_NODATA)
            conf[rows] = p.to(torch.uint8).masked_fill_(none, CONF_NODATA)
        self._shift(n)
        return row0, classes, conf

    def flush(self, until_row: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Finish rows [row0, until_row): returns (row0, classes (n, W) uint8, confidence (n, W) uint8) on the host."""
        row0, classes, conf = self.finish(until_row)
        return row0, classes.cpu().numpy(), conf.cpu().numpy()

    def _shift(self, n: int) -> None:
        if n == 0:
            return
        keep = self.tile - n
        for plane in (self.scores, self.weight, self.valid):
            rows = plane if plane.ndim == 2 else plane.transpose(0, 1)  # (rows, ...) views
            if keep > 0:
                rows[:keep] = rows[n:] if n >= keep else rows[n:].clone()  # a clone where they overlap
            rows[keep:] = 0
        self.row0 += n
