"""Window readers: what the engine reads tiles from (a rasterio dataset or an xarray DataArray).

A source exposes the grid (width, height, CRS, transform), the band count and dtype, and two reads:
`read(window, bands)` -> (data (C, h, w) in the source dtype, valid (h, w) bool) for windows that may
extend past the raster (padded with zeros, valid False there), and `decimated(max_side, bands)`, a
small overview read used for percentile stretches and quick-looks, never the whole scene.
Validity is GDAL's dataset mask, or the `nodata` rule a source is opened with, and finite values
(geo/raster.py); `nonfinite(bands)` counts the NaN or infinite pixels the mask would otherwise keep.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from s5cli.errors import InputError
from s5cli.geo.cog import iter_blocks
from s5cli.geo.raster import Nodata, finite_pixels, mask_valid, read_errors, read_window

COUNT_BLOCK = 1024  # block side of the pass that counts non-finite pixels


class WindowSource(Protocol):
    """Anything the engine can read tiles from."""

    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None

    def read(self, window: Window, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(data (C, h, w), valid (h, w)) for a window that may extend past the raster."""
        ...

    def decimated(self, max_side: int, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(data, valid) of the whole raster at reduced resolution (longer side <= max_side)."""
        ...

    def nonfinite(self, bands: list[int] | None = None) -> int:
        """Pixels the mask keeps but that are NaN or infinite in a band (0 for integer data)."""
        ...


def _decimated_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    f = max(1.0, max(width, height) / max_side)
    return max(1, round(height / f)), max(1, round(width / f))


class RasterioSource:
    """A rasterio dataset (a file, a VRT, a /vsicurl/ COG or a WarpedVRT at another GSD)."""

    def __init__(self, dataset: Any, name: str | None = None, parent: Any = None, nodata: Nodata = None) -> None:
        self.ds = dataset
        self.parent = parent  # the dataset a WarpedVRT reads from (closed with it)
        self.name = name or dataset.name
        self.width, self.height, self.count = dataset.width, dataset.height, dataset.count
        self.dtype = dataset.dtypes[0]
        self.crs, self.transform = dataset.crs, dataset.transform
        self.rule = nodata  # None: the file's mask
        self.nodata = dataset.nodata if nodata is None else (None if nodata == "none" else float(nodata))

    def read(self, window: Window, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read a window (padding in numpy; boundless reads are 6x slower on a CPU)."""
        return read_window(self.ds, window, bands, nodata=self.rule)

    def decimated(self, max_side: int, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """An overview-sized read (GDAL uses the file's overviews when it has them)."""
        indexes = bands or list(range(1, self.count + 1))
        shape = _decimated_shape(self.width, self.height, max_side)
        with read_errors(self.ds):
            data = self.ds.read(indexes, out_shape=(len(indexes), *shape), resampling=Resampling.nearest)
            valid = mask_valid(self.ds, data, out_shape=shape, nodata=self.rule)
        finite = finite_pixels(data)
        if not finite.all():
            data[:, ~finite] = 0
        return data, valid & finite

    def nonfinite(self, bands: list[int] | None = None) -> int:
        """One pass over the scene by blocks, for float data only."""
        if np.dtype(self.dtype).kind != "f":
            return 0
        indexes = bands or list(range(1, self.count + 1))
        count = 0
        for win in iter_blocks(self.width, self.height, COUNT_BLOCK):
            with read_errors(self.ds):
                data = self.ds.read(indexes, window=win)
                valid = mask_valid(self.ds, data, win, nodata=self.rule)
            count += int(np.count_nonzero(valid & ~finite_pixels(data)))
        return count

    def close(self) -> None:
        """Close the dataset (and the one it warps)."""
        self.ds.close()
        if self.parent is not None:
            self.parent.close()

    def alpha_bands(self) -> list[int]:
        """1-based indexes of alpha bands (an RGBA PNG's 4th band is a mask, not an input band)."""
        return [i + 1 for i, ci in enumerate(self.ds.colorinterp) if ci == ColorInterp.alpha]


class DataArraySource:
    """A (band, y, x) or (y, x) DataArray, lazy (dask) or in memory; only the windows read are computed."""

    def __init__(self, da: Any, nodata: Nodata = None) -> None:
        if da.ndim == 2:
            da = da.expand_dims("band")
        if da.ndim != 3:
            raise InputError(f"a DataArray of shape (band, y, x) is needed, got dims {da.dims}")
        self.da = da
        self.name = str(da.name or "dataarray")
        self.count, self.height, self.width = (int(n) for n in da.shape)
        self.dtype = str(da.dtype)
        rio = getattr(da, "rio", None)
        self.crs = rio.crs if rio is not None else None
        self.transform = rio.transform() if rio is not None and self.crs is not None else Affine.identity()
        if nodata is None:  # the array's own: rioxarray's, else its _FillValue / nodata attribute
            own = rio.nodata if rio is not None else None
            own = da.attrs.get("_FillValue", da.attrs.get("nodata")) if own is None else own
            self.nodata = None if own is None else float(own)
        else:
            self.nodata = None if nodata == "none" else float(nodata)

    def _kept(self, data: np.ndarray) -> np.ndarray:
        """GDAL's rule for a nodata value: a pixel is nodata when every band equals it."""
        if self.nodata is None:
            return np.ones(data.shape[1:], dtype=bool)
        same = np.isnan(data) if np.isnan(self.nodata) else data == self.nodata
        return ~np.all(same, axis=0)

    def _valid(self, data: np.ndarray) -> np.ndarray:
        return self._kept(data) & finite_pixels(data)

    def nonfinite(self, bands: list[int] | None = None) -> int:
        """Block by block over the (lazy) array, for float data only."""
        if np.dtype(self.dtype).kind != "f":
            return 0
        indexes = [b - 1 for b in (bands or range(1, self.count + 1))]
        count = 0
        for win in iter_blocks(self.width, self.height, COUNT_BLOCK):
            r, c, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
            data = np.asarray(self.da[indexes, r : r + h, c : c + w].values)
            count += int(np.count_nonzero(self._kept(data) & ~finite_pixels(data)))
        return count

    def read(self, window: Window, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Slice (and compute) one window; the part past the array is padded with zeros."""
        indexes = [b - 1 for b in (bands or range(1, self.count + 1))]
        row0, col0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + h, self.height), min(col0 + w, self.width)
        out = np.zeros((len(indexes), h, w), dtype=self.dtype)
        valid = np.zeros((h, w), dtype=bool)
        if r1 > r0 and c1 > c0:
            data = np.asarray(self.da[indexes, r0:r1, c0:c1].values)
            ys, xs = slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)
            out[:, ys, xs] = np.nan_to_num(data) if data.dtype.kind == "f" else data
            valid[ys, xs] = self._valid(data)
        return out, valid

    def decimated(self, max_side: int, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every k-th pixel (a strided read of the lazy array)."""
        indexes = [b - 1 for b in (bands or range(1, self.count + 1))]
        step = max(1, int(np.ceil(max(self.width, self.height) / max_side)))
        data = np.asarray(self.da[indexes, ::step, ::step].values)
        valid = self._valid(data)
        return (np.nan_to_num(data) if data.dtype.kind == "f" else data), valid


def open_rasterio_source(path: str, nodata: Nodata = None) -> RasterioSource:
    """Open a scene for reading (InputError for a missing or unreadable file) under a nodata rule."""
    from s5cli.geo.raster import open_raster

    return RasterioSource(open_raster(path), name=path, nodata=nodata)


def resampled(source: RasterioSource, factor: float) -> RasterioSource:
    """The source on a grid `factor` times finer (factor > 1) or coarser, same CRS and extent (geo/resample.py)."""
    from s5cli.geo.resample import resampled as warp

    return RasterioSource(warp(source.ds, factor), name=source.name, parent=source.ds, nodata=source.rule)
