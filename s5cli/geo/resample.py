"""A raster on a finer or coarser grid of the same CRS and extent: how predict and curate change GSD.

`scale` is always source GSD / target GSD: output pixels per source pixel along each axis, > 1 for a
finer grid. The grid is a scaled geotransform (pixel-space scaling, so rotated geotransforms work too)
read through GDAL's WarpedVRT, window by window, never the whole raster.
"""

from __future__ import annotations

from typing import Any

from rasterio.enums import Resampling
from rasterio.transform import Affine

from s5cli.errors import InputError


def resampled(src: Any, scale: float, resampling: Resampling | None = None) -> Any:
    """A WarpedVRT of an open dataset `scale` times finer (scale > 1) or coarser, same CRS and extent.

    The default resampling averages when shrinking (small objects keep their signal) and is bilinear
    when enlarging.
    """
    from rasterio.vrt import WarpedVRT

    if src.crs is None:
        raise InputError("resampling to another GSD needs a georeferenced scene", src.name)
    if scale <= 0:
        raise InputError(f"cannot resample by a factor of {scale}", src.name)
    width, height = max(1, round(src.width * scale)), max(1, round(src.height * scale))
    transform = src.transform * Affine.scale(src.width / width, src.height / height)
    method = resampling if resampling is not None else (Resampling.average if scale < 1 else Resampling.bilinear)
    return WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height, resampling=method)
