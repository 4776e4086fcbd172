"""Writing chips (GeoTIFF with the window's georeferencing, or PNG/JPEG) and their footprints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import shapely
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.transform import Affine
from rasterio.warp import transform as warp_points
from rasterio.windows import Window

from s5cli.errors import InputError
from s5cli.geo.raster import write_geotiff

# File extension per --format value, and the source suffixes that `auto` keeps for plain images.
EXTENSIONS = {"tif": "tif", "png": "png", "jpg": "jpg"}
PLAIN_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}


def chip_extension(fmt: str, georeferenced: bool, source: str) -> str:
    """The chip file extension: --format, or for `auto` GeoTIFF when georeferenced, else the source's own."""
    if fmt != "auto":
        return EXTENSIONS[fmt]
    if georeferenced:
        return "tif"
    return PLAIN_SUFFIXES.get(Path(source).suffix.lower(), "tif")


def check_writable(ext: str, dtype: str, count: int) -> None:
    """PNG holds 8-bit (1-4 bands) or 16-bit (1 band), JPEG 8-bit (1 or 3 bands); GeoTIFF anything."""
    kind = np.dtype(dtype)
    if ext == "png" and ((kind == np.uint8 and count in (1, 2, 3, 4)) or (kind == np.uint16 and count == 1)):
        return
    if ext == "jpg" and kind == np.uint8 and count in (1, 3):
        return
    if ext == "tif":
        return
    raise InputError(f"{count}-band {dtype} chips cannot be written as {ext.upper()}; use --format tif (or --bands)")


def write_chip(
    path: Path, data: np.ndarray, ext: str, crs: CRS | None, transform: Affine, nodata: float | None
) -> None:
    """Write a (C, H, W) chip; GeoTIFFs keep the CRS and the window's transform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == "tif":
        write_geotiff(path, data, crs, transform if crs is not None else Affine.identity(), nodata)
        return
    check_writable(ext, str(data.dtype), data.shape[0])
    arr = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    image = Image.fromarray(np.ascontiguousarray(arr))
    tmp = path.with_name(f".{path.name}.tmp")
    if ext == "jpg":
        image.save(tmp, format="JPEG", quality=95)
    else:
        image.save(tmp, format="PNG", compress_level=6)
    os.replace(tmp, path)


# Eight points per chip outline (corners and edge midpoints) as fractions of the window, clockwise.
_FC = np.array([0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0])
_FR = np.array([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.5])


def footprints(windows: list[Window], transform: Affine, crs: CRS | None, to_crs: str = "EPSG:4326") -> list:
    """Chip outlines (shapely polygons in `to_crs`) for windows of a georeferenced grid; None without a CRS."""
    if crs is None or not windows:
        return [None] * len(windows)
    col0 = np.array([w.col_off for w in windows], dtype=np.float64)[:, None]
    row0 = np.array([w.row_off for w in windows], dtype=np.float64)[:, None]
    width = np.array([w.width for w in windows], dtype=np.float64)[:, None]
    height = np.array([w.height for w in windows], dtype=np.float64)[:, None]
    cols = col0 + _FC[None, :] * width  # (n, 8)
    rows = row0 + _FR[None, :] * height
    xs = transform.a * cols + transform.b * rows + transform.c
    ys = transform.d * cols + transform.e * rows + transform.f
    try:
        lon, lat = warp_points(crs, to_crs, xs.ravel().tolist(), ys.ravel().tolist())
    except (CRSError, RasterioError, ValueError):
        return [None] * len(windows)
    coords = np.stack([np.asarray(lon), np.asarray(lat)], axis=-1).reshape(len(windows), 8, 2)
    if not np.isfinite(coords).all():
        return [None] * len(windows)
    return list(shapely.polygons(coords))
