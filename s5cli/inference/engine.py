"""The streaming sliding-window engine shared by `s5 predict` and `predict_dataarray`.

Three threads, joined by bounded queues, so that the model never waits on I/O:

    reader thread      windows in row-major order -> read_window -> normalise -> (window, x, valid)
    calling thread     batches of tiles -> model_fn (the only place the model runs) -> probabilities
    stitcher thread    RowBand: weighted blend of overlapping tiles -> finished rows -> sink.write

All-nodata tiles are read but never sent to the model. Memory: the queues hold a few batches of tiles
and the band holds (classes x tile x scene width) float32, whatever the scene height.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from s5cli.console import progress_bar
from s5cli.errors import InputError
from s5cli.geo.tiles import window_grid
from s5cli.inference.sources import WindowSource
from s5cli.inference.stitch import RowBand

ModelFn = Callable[[np.ndarray], np.ndarray]  # (B, C, T, T) float32 in [0, 1] -> (B, K, T, T) probabilities


class RowSink(Protocol):
    """Receives finished rows of the class map, top to bottom."""

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Take classes (n, W) uint8 (255 = none) and confidence (n, W) uint8 (round(255 p), 0 = none)."""
        ...


@dataclass
class EngineStats:
    """What one run did and how long it took."""

    tiles: int = 0
    skipped: int = 0  # all-nodata tiles, never sent to the model
    forward_s: float = 0.0  # time inside model_fn
    total_s: float = 0.0
    pixels: int = 0
    band_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels_per_s(self) -> float:
        """Scene megapixels per second, end to end."""
        return self.pixels / 1e6 / self.total_s if self.total_s > 0 else 0.0


class ArraySink:
    """Collects the whole class map in memory (small scenes, tests and the xarray API)."""

    def __init__(self, width: int, height: int) -> None:
        self.classes = np.full((height, width), 255, dtype=np.uint8)
        self.conf = np.zeros((height, width), dtype=np.uint8)

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Store finished rows."""
        self.classes[row0 : row0 + len(classes)] = classes
        self.conf[row0 : row0 + len(conf)] = conf


_END = object()
# Waits block, waking this often only to notice that another stage failed. Rare wake-ups matter: each one
# asks the model thread for the GIL, and on a busy machine that hand-over can stall the model.
_POLL_S = 0.5


class _Stop(Exception):
    """Another stage failed: leave quietly, its error is reported."""


class _Pipeline:
    """Bounded queues plus a shared stop flag and the first error raised by any stage."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def fail(self, exc: BaseException) -> None:
        if not isinstance(exc, _Stop):
            self.errors.append(exc)
        self.stop.set()

    def put(self, q: queue.Queue, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def join(self) -> None:
        """Wait for every stage to end, even through Ctrl-C or SIGTERM (a reader left running reads a closed file)."""
        for t in self.threads:
            while t.is_alive():
                try:
                    t.join()
                except BaseException as exc:  # an interrupt while waiting: stop the stages, then keep waiting
                    self.fail(exc)

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.fail(exc)

        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(t)  # before it starts: an interrupt from here on still joins it
        t.start()
        return t


def predict_source(
    source: WindowSource,
    model_fn: ModelFn,
    num_classes: int,
    sink: RowSink,
    tile_size: int,
    overlap: int,
    batch_size: int = 4,
    bands: list[int] | None = None,
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
    description: str = "predict",
) -> EngineStats:
    """Predict every pixel of `source` tile by tile and stream finished rows to `sink`.

    Args:
        source: the window reader (rasterio dataset or DataArray).
        model_fn: batch of [0, 1] tiles -> class probabilities (softmax), same tile size.
        num_classes: K, at most 255 (class 255 means "no prediction").
        sink: receives finished rows.
        tile_size: tile side in pixels (the model's input size).
        overlap: pixels shared by neighbouring tiles (blended), in [0, tile_size).
        batch_size: tiles per model call.
        bands: 1-based bands to read (None: all).
        normalise: raw (C, h, w) -> float32 [0, 1]; None: data already in [0, 1].
        description: progress bar label.
    """
    if not 0 < num_classes <= 255:
        raise InputError(f"class rasters hold up to 255 classes; this head has {num_classes}")
    if not 0 <= overlap < tile_size:
        raise InputError(f"overlap must be in [0, {tile_size}) pixels, got {overlap}")
    width, height = source.width, source.height
    windows = window_grid(width, height, tile_size, overlap)
    band = RowBand(width, height, tile_size, num_classes, overlap)
    stats = EngineStats(pixels=width * height, band_bytes=band.nbytes)
    pipe = _Pipeline()
    tiles_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    out_q: queue.Queue = queue.Queue(maxsize=2)
    start = time.perf_counter()

    def reader() -> None:
        for win in windows:
            data, valid = source.read(win, bands)
            x = None
            if valid.any():
                x = normalise(data) if normalise is not None else data.astype(np.float32, copy=False)
            pipe.put(tiles_q, (win, x, valid))
        pipe.put(tiles_q, _END)

    def stitcher() -> None:
        while True:
            item = pipe.get(out_q)
            if item is _END:
                break
            for win, probs, valid in item:
                if win.row_off > band.row0:
                    sink.write(*band.flush(int(win.row_off)))
                band.add(win, probs, valid)
        while band.row0 < height:
            sink.write(*band.flush(height))

    try:
        pipe.thread(reader, "s5-reader")
        pipe.thread(stitcher, "s5-stitcher")
        with progress_bar(description, total=len(windows)) as bar:
            _model_loop(pipe, tiles_q, out_q, model_fn, batch_size, stats, bar, start, width * height, len(windows))
    except BaseException as exc:
        pipe.fail(exc)
    pipe.join()
    if pipe.errors:
        raise pipe.errors[0]
    stats.total_s = time.perf_counter() - start
    return stats


def _model_loop(
    pipe: _Pipeline,
    tiles_q: queue.Queue,
    out_q: queue.Queue,
    model_fn: ModelFn,
    batch_size: int,
    stats: EngineStats,
    bar: Any,
    start: float,
    scene_pixels: int,
    n_windows: int,
) -> None:
    """Batch tiles (keeping skipped ones in order), run the model, pass results on to the stitcher."""
    pending: list[tuple[Window, np.ndarray | None, np.ndarray]] = []
    n_compute = 0
    done = 0
    finished = False
    while not finished:
        item = pipe.get(tiles_q)
        finished = item is _END
        if not finished:
            pending.append(item)
            n_compute += item[1] is not None
        # Skipped (all-nodata) tiles ride along in order; a long run of them is passed on unbatched.
        if not finished and n_compute < batch_size and len(pending) < 4 * batch_size:
            continue
        if not pending:
            continue
        xs = [x for _, x, _ in pending if x is not None]
        probs: list[np.ndarray | None] = []
        if xs:
            t0 = time.perf_counter()
            out = model_fn(np.stack(xs))
            stats.forward_s += time.perf_counter() - t0
            it = iter(out)
            probs = [next(it) if x is not None else None for _, x, _ in pending]
        else:
            probs = [None] * len(pending)
        stats.tiles += len(xs)
        stats.skipped += len(pending) - len(xs)
        pipe.put(out_q, [(w, p, v) for (w, _, v), p in zip(pending, probs)])
        done += len(pending)
        bar.advance(len(pending))
        elapsed = time.perf_counter() - start
        bar.set_rate(f"{scene_pixels * done / n_windows / 1e6 / max(elapsed, 1e-9):.2f} MP/s")
        pending, n_compute = [], 0
    pipe.put(out_q, _END)
