"""Where finished rows go: tiled working GeoTIFFs (class + confidence), polygons, and back to the scene grid.

Rows arrive in strips of the tile stride; the GeoTIFF sink buffers them and writes whole block rows
(512) so that GDAL compresses each tile once, with a fast codec (the working files are scratch, read
back once for the COG and, at another GSD, for polygons). The polygon sink polygonises the same rows
as they arrive, in a thread of its own, so that polygons are done when the model is (on a CPU that
thread takes the cores the model leaves idle; on a GPU it runs beside it). When the model ran at
another GSD, the working rasters are resampled onto the scene's exact grid (nearest: class ids are
labels) block by block, the scene's own nodata mask is applied at full resolution, and polygons are
made from that.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from s5cli.geo.cog import (
    CLASS_NODATA,
    CONF_NODATA,
    WORK_CODEC,
    create_class_raster,
    create_confidence_raster,
    iter_blocks,
)
from s5cli.geo.polygonize import Piece, RowPolygonizer
from s5cli.geo.raster import RasterInfo
from s5cli.geo.vector import SEGMENT_FIELDS, AreaCalculator, LayerWriter, segment_frame
from s5cli.inference.engine import BACKGROUND_NICE, RowSink, lower_priority
from s5cli.inference.sources import WindowSource


class GeoTiffSink:
    """Writes finished rows into a class GTiff and a confidence GTiff on the source's grid."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        source: WindowSource,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        stem: str = "work",
    ) -> None:
        self.class_path = Path(folder) / f"{stem}_classes.tif"
        self.conf_path = Path(folder) / f"{stem}_confidence.tif"
        self.width, self.height = source.width, source.height
        args = (source.width, source.height, source.crs, source.transform)
        self._cls = create_class_raster(self.class_path, *args, classes=classes, palette=palette, codec=WORK_CODEC)
        self._conf = create_confidence_raster(self.conf_path, *args, codec=WORK_CODEC)
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


class TeeSink:
    """Hands every finished row to several sinks, in order."""

    def __init__(self, *sinks: RowSink) -> None:
        self.sinks = sinks

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Pass rows on to each sink."""
        for sink in self.sinks:
            sink.write(row0, classes, conf)


class PolygonLayer:
    """Polygons (pixel coordinates) -> one GeoPackage layer in the scene CRS with the segmentation attributes."""

    def __init__(
        self,
        raster: RasterInfo,
        classes: Sequence[str],
        gpkg: str | os.PathLike[str],
        layer: str,
        simplify: float = 0.0,
        min_area: float = 0.0,
    ) -> None:
        self.raster, self.classes, self.simplify, self.min_area = raster, list(classes), simplify, min_area
        self.areas = AreaCalculator(raster.transform, raster.crs, raster.width, raster.height)
        self.writer = LayerWriter(gpkg, layer, raster.crs, SEGMENT_FIELDS)

    def add(self, pieces: list[Piece]) -> None:
        """Map finished polygons to the CRS, attribute, filter and append them."""
        if pieces:
            r = self.raster
            frame = segment_frame(pieces, self.classes, r.transform, r.crs, self.areas, self.simplify, self.min_area)
            self.writer.write(frame)

    def close(self) -> int:
        """Finish the layer (it exists even when empty); returns the number of polygons written."""
        self.writer.close()
        return self.writer.count


class PolygonSink:
    """Polygonises finished rows into a PolygonLayer as they arrive, in a thread of its own.

    `write` only queues rows (it blocks when half a block row waits, so a slow polygoniser holds the
    model back instead of filling memory); `close` waits for the last polygons; `cancel` drops them.
    An error in the thread is raised by the next `write` or by `close`. With `sieved` (an open class
    raster on the scene grid, closed by the sink) the sieved blocks are written there too: the class
    raster and the polygons then come from one sieve, computed once.
    """

    def __init__(
        self, layer: PolygonLayer, block: int = 2048, sieve: int = 0, sieved: rasterio.io.DatasetWriter | None = None
    ) -> None:
        r = layer.raster
        self.layer = layer
        self.sieved = sieved
        on_sieved = None if sieved is None else lambda win, classes: sieved.write(classes, 1, window=win)
        self.rows = RowPolygonizer(r.width, r.height, block, sieve, on_sieved=on_sieved)
        self.max_rows = max(1, block // 2)
        self.busy_s = 0.0
        self._pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._queued = 0
        self._closing = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="s5-polygons", daemon=True)
        self._thread.start()

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Queue rows for polygonising."""
        with self._cond:
            while self._queued >= self.max_rows and self._error is None and self._thread.is_alive():
                self._cond.wait(0.5)
            self._raise()
            self._pending.append((row0, classes, conf))
            self._queued += len(classes)
            self._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        lower_priority(BACKGROUND_NICE)
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closing:
                        self._cond.wait(0.5)
                    if not self._pending:
                        return
                    row0, classes, conf = self._pending.pop(0)
                t0 = time.perf_counter()
                self.rows.push(row0, classes, conf)
                for pieces in self.rows.finished():
                    self.layer.add(pieces)
                self.busy_s += time.perf_counter() - t0
                with self._cond:
                    self._queued -= len(classes)
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._pending.clear()
                self._cond.notify_all()

    def close(self) -> int:
        """Wait for the remaining rows to be polygonised, finish the layer; returns the polygon count."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._close_sieved()
        self._raise()
        if self.rows.block_row < self.rows.height:
            raise ValueError(f"polygons: rows stop at {self.rows.next_row} of {self.rows.height}")
        return self.layer.close()

    def _close_sieved(self) -> None:
        if self.sieved is not None and not self.sieved.closed:
            self.sieved.close()

    def cancel(self) -> None:
        """Stop without finishing (another stage failed); a no-op after close."""
        with self._cond:
            self._pending.clear()
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._close_sieved()


def to_scene_grid(
    work_class: Path,
    work_conf: Path,
    scene: WindowSource,
    folder: Path,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
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
