"""Window readers: what the engine reads tiles from (a rasterio dataset or an xarray DataArray).

A source exposes the grid (width, height, CRS, transform), the band count and dtype, and two reads:
`read(window, bands)` -> (data (C, h, w) in the source dtype, valid (h, w) bool) for windows that may
extend past the raster (padded with zeros, valid False there), and `decimated(max_side, bands)`, a
small overview read used for percentile stretches and quick-looks, never the whole scene.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from s5cli.errors import InputError
from s5cli.geo.raster import read_window


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


def _decimated_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    f = max(1.0, max(width, height) / max_side)
    return max(1, round(height / f)), max(1, round(width / f))


class RasterioSource:
    """A rasterio dataset (a file, a VRT, a /vsicurl/ COG or a WarpedVRT at another GSD)."""

    def __init__(self, dataset: Any, name: str | None = None, parent: Any = None) -> None:
        self.ds = dataset
        self.parent = parent  # the dataset a WarpedVRT reads from (closed with it)
        self.name = name or dataset.name
        self.width, self.height, self.count = dataset.width, dataset.height, dataset.count
        self.dtype = dataset.dtypes[0]
        self.crs, self.transform, self.nodata = dataset.crs, dataset.transform, dataset.nodata

    def read(self, window: Window, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read a window (padding in numpy; boundless reads are 6x slower on a CPU)."""
        return read_window(self.ds, window, bands)

    def decimated(self, max_side: int, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """An overview-sized read (GDAL uses the file's overviews when it has them)."""
        indexes = bands or list(range(1, self.count + 1))
        shape = _decimated_shape(self.width, self.height, max_side)
        data = self.ds.read(indexes, out_shape=(len(indexes), *shape), resampling=Resampling.nearest)
        masks = self.ds.read_masks(indexes, out_shape=(len(indexes), *shape), resampling=Resampling.nearest)
        return data, np.all(masks > 0, axis=0)

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

    def __init__(self, da: Any) -> None:
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
        nodata = rio.nodata if rio is not None else None
        if nodata is None:
            nodata = da.attrs.get("_FillValue", da.attrs.get("nodata"))
        self.nodata = None if nodata is None else float(nodata)

    def _valid(self, data: np.ndarray) -> np.ndarray:
        valid = np.ones(data.shape[1:], dtype=bool)
        if self.nodata is not None:
            if np.isnan(self.nodata):
                valid &= ~np.any(np.isnan(data), axis=0)
            else:
                valid &= ~np.any(data == self.nodata, axis=0)
        if data.dtype.kind == "f":
            valid &= np.all(np.isfinite(data), axis=0)
        return valid

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


def open_rasterio_source(path: str) -> RasterioSource:
    """Open a scene for reading (InputError for a missing or unreadable file)."""
    from s5cli.geo.raster import open_raster

    return RasterioSource(open_raster(path), name=path)


def resampled(source: RasterioSource, factor: float) -> RasterioSource:
    """The source on a grid `factor` times finer (factor > 1) or coarser, same CRS and extent (geo/resample.py)."""
    from s5cli.geo.resample import resampled as warp

    return RasterioSource(warp(source.ds, factor), name=source.name, parent=source.ds)
