"""Class-index rasters: a tiled working GeoTIFF written by rows, then a Cloud-Optimised GeoTIFF copy.

The working file is a plain tiled GTiff (uint8, nodata 255, a fast codec) so that it can be written row
band by row band and read back block by block; `write_cog` copies it with GDAL's COG driver, which builds the
overviews (nearest or mode: class ids must never be averaged) and lays the file out for HTTP range reads.
The class names travel as band metadata (`CLASS_<id>=name`, and `CLASS_NAMES` as JSON) and the palette as
the embedded colour table (entries for the head's classes only; nodata 255 is transparent by being
nodata). GeoTIFF colour tables always hold 256 entries, so the names and the head's classes reach QGIS
and GDAL through the sidecars of geo/styles.py (`.qml`, `.aux.xml`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from s5cli.geo.raster import geotiff_profile

CLASS_NODATA = 255  # class rasters: 0..254 are classes, 255 is "no prediction" (nodata, outside the scene)
CONF_NODATA = 0  # confidence rasters: round(255 * p) of the winning class, p >= 1/K > 0, so 0 is free
# Working rasters are scratch, written once and read back once or twice: zstd level 1 writes a class map
# about 20x faster than deflate's default level (docs/performance.md) and compresses it as well.
WORK_CODEC: dict[str, Any] = {"compress": "zstd", "zstd_level": 1}
# Delivered COGs: deflate, which every GeoTIFF reader decodes (zstd needs GDAL >= 2.3 / libtiff >= 4.0.10).
COG_CODEC: dict[str, Any] = {"compress": "deflate", "level": 6}


def class_colormap(classes: Sequence[str], palette: Sequence[Sequence[int]]) -> dict[int, tuple[int, ...]]:
    """GDAL colour table entries for the class ids, one colour per class as heads carry (no others)."""
    if len(palette) != len(classes):
        raise ValueError(f"{len(palette)} colours for {len(classes)} classes")
    return {i: (*tuple(palette[i][:3]), 255) for i in range(len(classes))}


def class_tags(classes: Sequence[str]) -> dict[str, str]:
    """Band metadata naming the classes (`CLASS_<id>=name` and CLASS_NAMES as a JSON list)."""
    tags = {f"CLASS_{i}": name for i, name in enumerate(classes)}
    tags["CLASS_NAMES"] = json.dumps(list(classes))
    return tags


def create_class_raster(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    crs: CRS | None,
    transform: Affine,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    codec: dict[str, Any] | None = None,
) -> rasterio.io.DatasetWriter:
    """Open a tiled uint8 class GTiff (nodata 255, colour table, class names) for writing.

    `codec`: creation options such as WORK_CODEC (default: the profile's deflate).
    """
    profile = {**geotiff_profile(width, height, 1, "uint8", crs, transform, nodata=CLASS_NODATA), **(codec or {})}
    dst = rasterio.open(path, "w", **profile)
    dst.write_colormap(1, class_colormap(classes, palette))
    dst.set_band_description(1, "class")
    dst.update_tags(1, **class_tags(classes))
    return dst


def create_confidence_raster(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    crs: CRS | None,
    transform: Affine,
    codec: dict[str, Any] | None = None,
) -> rasterio.io.DatasetWriter:
    """Open a tiled uint8 confidence GTiff (round(255 * p), nodata 0) for writing (`codec` as for classes)."""
    profile = {**geotiff_profile(width, height, 1, "uint8", crs, transform, nodata=CONF_NODATA), **(codec or {})}
    dst = rasterio.open(path, "w", **profile)
    dst.set_band_description(1, "confidence")
    dst.update_tags(1, SCALE_NOTE="probability of the winning class = value / 255; 0 = no prediction")
    return dst


def write_cog(
    src_path: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    resampling: str = "nearest",
    blocksize: int = 512,
    compress: str = COG_CODEC["compress"],
    level: int | None = COG_CODEC["level"],
) -> None:
    """Copy a GeoTIFF to a Cloud-Optimised GeoTIFF with overviews (GDAL COG driver).

    `level`: the codec's effort (deflate 1-12, zstd 1-22; None: GDAL's default).
    """
    options: dict[str, Any] = {
        "compress": compress.upper(),
        "blocksize": blocksize,
        "overview_resampling": resampling.upper(),
        "resampling": resampling.upper(),
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
    }
    if level is not None:
        options["level"] = level
    rasterio.shutil.copy(str(src_path), str(dst_path), driver="COG", **options)


def iter_blocks(width: int, height: int, block: int) -> list[Window]:
    """Non-overlapping block windows, row-major, covering width x height."""
    return [
        Window(c, r, min(block, width - c), min(block, height - r))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]


def read_classes(path: str | os.PathLike[str], max_side: int | None = None) -> np.ndarray:
    """Read a class raster whole, or decimated (nearest) so that its longer side is at most max_side."""
    with rasterio.open(path) as src:
        if max_side is None or max(src.width, src.height) <= max_side:
            return src.read(1)
        f = max(src.width, src.height) / max_side
        shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
        return src.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
