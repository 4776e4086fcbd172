"""Window grids over rasters: overlapping tiles whose last row and column snap to the edge, and scoring cells."""

from __future__ import annotations

from collections.abc import Iterator

from rasterio.windows import Window


def grid_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of `size` every `stride` covering [0, length); the last snaps to the end.

    When `length < size` the single window starts at 0 and extends past the end (callers pad).
    """
    if size <= 0 or stride <= 0:
        raise ValueError("size and stride must be positive")
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def window_grid(width: int, height: int, size: int, overlap: int = 0) -> list[Window]:
    """Windows of size x size with `overlap` pixels between neighbours, covering the raster."""
    if overlap < 0 or overlap >= size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    stride = size - overlap
    return [
        Window(col, row, size, size)
        for row in grid_starts(height, size, stride)
        for col in grid_starts(width, size, stride)
    ]


def cell_grid(width: int, height: int, size: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping size x size cells (col0, row0, col1, row1) covering the raster, the last ones clipped.

    Every pixel lies in exactly one cell: what scoring counts once, however the windows around them overlap.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    return [
        (col, row, min(col + size, width), min(row + size, height))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def window_around(start: int, length: int, size: int) -> int:
    """Start of the size-long window holding a cell at `start`, snapped inside the raster as grid_starts does."""
    return max(min(start, length - size), 0)


def iter_rows(windows: list[Window]) -> Iterator[list[Window]]:
    """Group a row-major window grid by row offset (a strip of tiles)."""
    row: list[Window] = []
    for win in windows:
        if row and win.row_off != row[0].row_off:
            yield row
            row = []
        row.append(win)
    if row:
        yield row
