"""Where finished rows go: tiled working GeoTIFFs (class + confidence), and back to the scene grid.

Rows arrive in strips of the tile stride; the sink buffers them and writes whole block rows (512) so
that GDAL compresses each tile once. When the model ran at another GSD, the working rasters are then
resampled onto the scene's exact grid (nearest: class ids are labels) block by block, and the scene's
own nodata mask is applied at full resolution.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from s5cli.geo.cog import CLASS_NODATA, CONF_NODATA, create_class_raster, create_confidence_raster, iter_blocks
from s5cli.inference.sources import WindowSource


class GeoTiffSink:
    """Writes finished rows into a class GTiff and a confidence GTiff on the source's grid."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        source: WindowSource,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]] | None,
        stem: str = "work",
    ) -> None:
        self.class_path = Path(folder) / f"{stem}_classes.tif"
        self.conf_path = Path(folder) / f"{stem}_confidence.tif"
        self.width, self.height = source.width, source.height
        args = (source.width, source.height, source.crs, source.transform)
        self._cls = create_class_raster(self.class_path, *args, classes=classes, palette=palette)
        self._conf = create_confidence_raster(self.conf_path, *args)
        self._block = self._cls.block_shapes[0][0] if self._cls.profile.get("tiled") else 256
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []
        self._row0 = 0
        self._buffered = 0
        self.valid_pixels = 0

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Buffer rows; write once a whole block row (or the end of the raster) is there."""
        if row0 != self._row0 + self._buffered:
            raise ValueError(f"rows must arrive in order: got {row0}, expected {self._row0 + self._buffered}")
        self._rows.append((classes, conf))
        self._buffered += len(classes)
        self.valid_pixels += int(np.count_nonzero(classes != CLASS_NODATA))
        if self._buffered >= self._block or self._row0 + self._buffered >= self.height:
            self._flush()

    def _flush(self, final: bool = False) -> None:
        if not self._buffered:
            return
        cls = np.concatenate([c for c, _ in self._rows])
        conf = np.concatenate([f for _, f in self._rows])
        whole = final or self._row0 + len(cls) >= self.height
        n = len(cls) if whole else (len(cls) // self._block) * self._block
        if n == 0:
            return
        win = Window(0, self._row0, self.width, n)
        self._cls.write(cls[:n], 1, window=win)
        self._conf.write(conf[:n], 1, window=win)
        self._rows = [(cls[n:], conf[n:])] if n < len(cls) else []
        self._row0 += n
        self._buffered = len(cls) - n

    def close(self) -> None:
        """Write what is left and close both files."""
        try:
            self._flush(final=True)
        finally:
            self._cls.close()
            self._conf.close()


def to_scene_grid(
    work_class: Path,
    work_conf: Path,
    scene: WindowSource,
    folder: Path,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]] | None,
    bands: list[int] | None = None,
    block: int = 1024,
) -> tuple[Path, Path, int]:
    """Resample working class/confidence rasters onto the scene grid (nearest) with the scene's nodata mask.

    Returns (class path, confidence path, number of pixels with a class).
    """
    cls_out = folder / "scene_classes.tif"
    conf_out = folder / "scene_confidence.tif"
    grid = {"crs": scene.crs, "transform": scene.transform, "width": scene.width, "height": scene.height}
    valid_pixels = 0
    args = (scene.width, scene.height, scene.crs, scene.transform)
    with (
        rasterio.open(work_class) as wc,
        rasterio.open(work_conf) as wf,
        WarpedVRT(wc, resampling=Resampling.nearest, nodata=CLASS_NODATA, **grid) as vc,
        WarpedVRT(wf, resampling=Resampling.nearest, nodata=CONF_NODATA, **grid) as vf,
        create_class_raster(cls_out, *args, classes=classes, palette=palette) as dc,
        create_confidence_raster(conf_out, *args) as df,
    ):
        for win in iter_blocks(scene.width, scene.height, block):
            c = vc.read(1, window=win)
            f = vf.read(1, window=win)
            _, valid = scene.read(win, bands)
            c[~valid] = CLASS_NODATA
            f[~valid | (c == CLASS_NODATA)] = CONF_NODATA
            valid_pixels += int(np.count_nonzero(c != CLASS_NODATA))
            dc.write(c, 1, window=win)
            df.write(f, 1, window=win)
    return cls_out, conf_out, valid_pixels
