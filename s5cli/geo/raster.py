"""Open, find and describe rasters, read windows with their validity mask, and write tiled compressed GeoTIFFs.

Which pixels are valid follows GDAL's dataset mask, what QGIS and rasterio's `dataset_mask()` use: a pixel
is nodata when *all* bands equal the nodata value, or where an alpha band or a mask band says so. A
`nodata` rule replaces the file's value (`"none"` ignores it; alpha and mask bands still mask). Pixels
that are NaN or infinite in any band read are invalid too, and are read as 0 so that no NaN reaches a
model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from s5cli.errors import InputError
from s5cli.geo.files import check_path, is_remote

# Formats GDAL reads that hold imagery: what a folder of scenes is searched for.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".png", ".jpg", ".jpeg", ".jp2", ".img")
# A nodata rule: None = the file's mask; "none" = ignore the file's nodata value; a number = that value.
Nodata = float | Literal["none"] | None
# Formats of rasters that come as data (dataset files, corpus chips): plain files whose pixels are inside
# them. A VRT (also one named .tif) or any other format that names further files or URLs could make a
# data folder read outside itself or reach the network; only the user may name such a raster.
# The file's first bytes decide its one allowed driver (classic and BigTIFF, both byte orders).
_PLAIN_MAGIC = {
    b"II*\x00": "GTiff",
    b"MM\x00*": "GTiff",
    b"II+\x00": "GTiff",
    b"MM\x00+": "GTiff",
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
}


def _plain_driver(path: str) -> str:
    """The GDAL driver of a plain GeoTIFF, PNG or JPEG file, from its magic bytes; anything else is refused."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    for magic, driver in _PLAIN_MAGIC.items():
        if head.startswith(magic):
            return driver
    raise InputError("not a plain GeoTIFF, PNG or JPEG file (a data file may not be a VRT or other format)", path)


def is_raster_name(name: str) -> bool:
    """True for a file name with a raster suffix that is not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in RASTER_SUFFIXES


def walk_rasters(folder: str | os.PathLike[str], exclude: Sequence[str] = ()) -> Iterator[str]:
    """Raster files under a folder at any depth (joined onto `folder` as given), depth-first with sorted names.

    Hidden folders and the absolute paths in `exclude` are skipped (a corpus written inside the input).
    """
    skip = {os.path.abspath(e) for e in exclude}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) not in skip
        )
        for name in sorted(files):
            if is_raster_name(name):
                yield os.path.join(root, name)


def unit_scale(dtype: str) -> float:
    """The raw value that means 1.0 unless told otherwise: an integer dtype's maximum, 1.0 for floats."""
    kind = np.dtype(dtype).kind
    if kind in "ui":
        return float(np.iinfo(dtype).max)
    return 1.0


@dataclass(frozen=True)
class RasterInfo:
    """What a user needs to know about a raster before reading it."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    band_descriptions: tuple[str | None, ...] = field(default=())
    colorinterp: tuple[str, ...] = field(default=())  # GDAL colour interpretation per band (red, gray, alpha...)

    @property
    def is_georeferenced(self) -> bool:
        """True when the raster has a CRS and a non-identity transform."""
        return self.crs is not None and not self.transform.is_identity

    @property
    def is_rotated(self) -> bool:
        """True when the geotransform has rotation or shear terms."""
        return not (math.isclose(self.transform.b, 0.0) and math.isclose(self.transform.d, 0.0))

    @property
    def gsd(self) -> float | None:
        """Ground sample distance in CRS units (metres for projected CRSs), or None."""
        if not self.is_georeferenced:
            return None
        return float(math.sqrt(abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)))

    @property
    def gsd_m(self) -> float | None:
        """Ground sample distance in metres, approximated at the centre for geographic CRSs."""
        gsd = self.gsd
        if gsd is None or self.crs is None:
            return None
        if self.crs.is_geographic:
            lat = self.transform.f + self.transform.d * self.width / 2 + self.transform.e * self.height / 2
            return gsd * 111_320.0 * math.sqrt(abs(math.cos(math.radians(lat))))
        factor = self.crs.linear_units_factor[1] if self.crs.is_projected else 1.0
        return gsd * factor

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "bands": self.count,
            "dtype": self.dtype,
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6],
            "nodata": self.nodata,
            "gsd": self.gsd,
        }


def open_raster(path: str | os.PathLike[str], untrusted: bool = False) -> rasterio.io.DatasetReader:
    """Open a raster for reading; a missing, empty, unreadable or non-regular file is an InputError.

    A FIFO, socket or device is refused before GDAL opens it (it would block for ever). With
    `untrusted=True` (data files, not a scene the user named) the raster must be a local GeoTIFF, PNG
    or JPEG, and GDAL opens no sidecar file (.aux.xml, .msk, .ovr) beside it.
    """
    p = os.fsdecode(path)
    if untrusted and is_remote(p):
        raise InputError("a data file must be a local raster, not a GDAL virtual or remote path", p)
    if not is_remote(p):
        fp = check_path(p)
        if not fp.exists():
            raise InputError("no such file", p)
        if not (fp.is_file() or fp.is_dir()) or (untrusted and not fp.is_file()):
            raise InputError("is not a regular file (a FIFO, socket or device?)", p)
        if fp.is_file() and fp.stat().st_size == 0:
            raise InputError("is empty", p)
    try:
        if not untrusted:
            return rasterio.open(p)
        driver = _plain_driver(p)
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            return rasterio.open(p, driver=driver)  # this one driver only: GDAL tries no other format
    except RasterioIOError as exc:
        raise InputError(f"not a readable raster ({_short(exc)})", p) from None
    except RasterioError as exc:
        raise InputError(f"cannot open ({_short(exc)})", p) from None


@contextmanager
def read_errors(src: rasterio.io.DatasetReader, what: str = "read") -> Iterator[None]:
    """GDAL read failures inside (a truncated or corrupt file) become one InputError naming the file."""
    try:
        yield
    except RasterioError as exc:
        raise InputError(f"cannot {what} ({_short(exc)})", src.name) from None


def check_real(info: RasterInfo) -> None:
    """Refuse complex pixels (SAR SLC): models and chip rules take real-valued bands."""
    if np.dtype(info.dtype).kind == "c":
        raise InputError(
            f"has complex pixels ({info.dtype}); convert them to real bands first (e.g. amplitude)", info.path
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # GDAL repeats the path at the start of many messages.
    return text if len(text) < 200 else text[:197] + "..."


def describe_raster(path: str | os.PathLike[str]) -> RasterInfo:
    """Open a raster and return its size, bands, dtype, CRS, transform, nodata."""
    with open_raster(path) as src:
        return info_of(src, str(path))


def info_of(src: rasterio.io.DatasetReader, path: str | None = None) -> RasterInfo:
    """RasterInfo of an open dataset."""
    return RasterInfo(
        path=path or src.name,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs=src.crs,
        transform=src.transform,
        nodata=src.nodata,
        band_descriptions=tuple(src.descriptions),
        colorinterp=tuple(ci.name for ci in src.colorinterp),
    )


def band_name(info: RasterInfo, band: int) -> str:
    """A name for a 1-based band: its description, else its colour (red, green, ...), else band<N>."""
    i = band - 1
    described = info.band_descriptions[i] if i < len(info.band_descriptions) else None
    if described:
        return str(described)
    colour = info.colorinterp[i] if i < len(info.colorinterp) else ""
    if colour in ("red", "green", "blue"):
        return colour
    return f"band{band}"


def _alpha_band(src: rasterio.io.DatasetReader) -> int | None:
    """The 1-based alpha band, if any."""
    alpha = [i + 1 for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha]
    return alpha[0] if alpha else None


def mask_valid(
    src: rasterio.io.DatasetReader,
    data: np.ndarray,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    nodata: Nodata = None,
) -> np.ndarray:
    """(h, w) bool: the pixels of a read that the dataset mask (or the `nodata` rule) keeps.

    `data` is the (C, h, w) read of the bands in use; a nodata value given as a rule is matched against
    those bands (a pixel is nodata when all of them equal it).
    """
    shape = data.shape[1:]
    kwargs: dict[str, Any] = {"window": window}
    if out_shape is not None:
        kwargs.update(out_shape=out_shape, resampling=Resampling.nearest)
    if nodata is None:
        return src.dataset_mask(**kwargs) > 0
    valid = np.ones(shape, dtype=bool)
    flags = src.mask_flag_enums[0]
    if MaskFlags.nodata in flags:  # the file's nodata shadows its alpha band: read that band itself
        alpha = _alpha_band(src)
        if alpha is not None:
            valid &= src.read(alpha, **kwargs).reshape(shape) > 0
    elif MaskFlags.all_valid not in flags:  # an alpha band or a mask band
        valid &= src.dataset_mask(**kwargs) > 0
    if nodata != "none":
        value = float(nodata)
        same = np.isnan(data) if math.isnan(value) else data == np.asarray(value).astype(data.dtype)
        valid &= ~np.all(same, axis=0)
    return valid


def finite_pixels(data: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels finite in every band (always True for integer data)."""
    if data.dtype.kind != "f":
        return np.ones(data.shape[1:], dtype=bool)
    return np.all(np.isfinite(data), axis=0)


def read_window(
    src: rasterio.io.DatasetReader,
    window: Window,
    bands: list[int] | None = None,
    pad_value: float = 0,
    nodata: Nodata = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a window that may extend past the raster; pad in numpy (boundless reads are 6x slower).

    Returns (data (C, h, w) in the source dtype, valid (h, w) bool mask: inside the raster, kept by the
    dataset mask or the `nodata` rule (module docstring) and finite; non-finite values read as `pad_value`).
    """
    indexes = bands or list(range(1, src.count + 1))
    row0, col0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + h, src.height), min(col0 + w, src.width)
    out = np.full((len(indexes), h, w), pad_value, dtype=src.dtypes[indexes[0] - 1])
    valid = np.zeros((h, w), dtype=bool)
    if r1 <= r0 or c1 <= c0:
        return out, valid
    inner = Window(c0, r0, c1 - c0, r1 - r0)
    with read_errors(src, f"read window {inner}"):
        data = src.read(indexes, window=inner)
        keep = mask_valid(src, data, inner, nodata=nodata)
    finite = finite_pixels(data)
    if not finite.all():
        data[:, ~finite] = pad_value
    ys, xs = slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)
    out[:, ys, xs] = data
    valid[ys, xs] = keep & finite
    return out, valid


def geotiff_profile(
    width: int,
    height: int,
    count: int,
    dtype: str,
    crs: CRS | None,
    transform: Affine,
    nodata: float | None = None,
    blocksize: int = 512,
    compress: str = "deflate",
) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile with the given georeferencing."""
    tiled = width >= 16 and height >= 16
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "compress": compress,
        "BIGTIFF": "IF_SAFER",
    }
    if tiled:
        block = max(16, min(blocksize, 1 << (max(width, height) - 1).bit_length()))
        block = (block // 16) * 16
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if nodata is not None:
        profile["nodata"] = nodata
    if np.dtype(dtype).kind == "f":
        profile["predictor"] = 3
    elif compress in ("deflate", "lzw", "zstd") and np.dtype(dtype).itemsize > 1:
        profile["predictor"] = 2
    return profile


def write_geotiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    crs: CRS | None,
    transform: Affine,
    nodata: float | None = None,
    **options: Any,
) -> None:
    """Write a (C, H, W) or (H, W) array as a tiled, compressed GeoTIFF at `path`."""
    arr = data[None] if data.ndim == 2 else data
    profile = geotiff_profile(arr.shape[2], arr.shape[1], arr.shape[0], str(arr.dtype), crs, transform, nodata)
    profile.update(options)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
