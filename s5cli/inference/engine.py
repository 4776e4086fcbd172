"""The streaming sliding-window engine shared by `s5 predict` and `predict_dataarray`.

Stages joined by bounded queues, so that the model never waits on I/O:

    reader thread(s)  one read per 8 tiles of a row (a strip) -> normalise each tile -> (window, x, valid)
    model calls       batches of tiles -> class probabilities, on the model's device
    calling thread    batching, then the blend into the RowBand on the same device -> finished rows
                      (argmax on the device) -> two uint8 planes
    writer thread     finished rows -> sink.write (compression, GDAL; polygons in the sink's thread)

Where the time goes, and why the stages are cut this way (docs/performance.md). On a CPU, one model
call's intra-op threads meet at a barrier after every operator, so a thread preempted by anything
(our reader, another process) stalls all of them. The engine therefore runs two calls side by side,
each on half of torch's threads (`cpu_model_calls`): a preempted thread then delays only its own
call. The blend runs in the calling thread on torch's threads too, the reader and the writer do
little (a strip read decodes overlapping tiles once; uint8 rows are cheap to write), and every helper
thread runs at a lower OS priority, so that it takes a core when the model leaves one idle. On a GPU
the model runs inline (its kernels are asynchronous), the probabilities never leave the device, and
the host only stacks tiles into pinned memory and writes rows.

All-nodata tiles are read but never sent to the model. Memory: the queues hold a few batches of tiles,
each reader one group of 8 tiles (raw), at most two batches are in the model, and the
band holds (classes x tile x scene width) float32 on the model's device, whatever the scene height.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rasterio.windows import Window

from s5cli.console import progress_bar
from s5cli.errors import InputError
from s5cli.geo.tiles import iter_rows, window_grid
from s5cli.inference.sources import WindowSource

if TYPE_CHECKING:  # torch is imported when predicting, never by the polygon path
    import torch

ModelFn = Callable[[np.ndarray], np.ndarray]  # (B, C, T, T) float32 in [0, 1] -> (B, K, T, T) probabilities
Tile = tuple[Window, np.ndarray | None, np.ndarray | None]  # window, [0, 1] data (None: all nodata), valid


class DeviceModel(Protocol):
    """A model that takes and returns tensors on its device (a Predictor): the blend then stays there."""

    device: torch.device

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, T, T) float32 on the device -> (B, K, T, T) float32 probabilities on the device."""
        ...


class RowSink(Protocol):
    """Receives finished rows of the class map, top to bottom."""

    def write(self, row0: int, classes: np.ndarray, conf: np.ndarray) -> None:
        """Take classes (n, W) uint8 (255 = none) and confidence (n, W) uint8 (round(255 p), 0 = none)."""
        ...


@dataclass
class EngineStats:
    """What one run did and how long each stage took."""

    tiles: int = 0
    skipped: int = 0  # all-nodata tiles, never sent to the model
    forward_s: float = 0.0  # the model itself (device time on a GPU)
    total_s: float = 0.0
    pixels: int = 0
    band_bytes: int = 0
    read_s: float = 0.0  # reader threads busy: strip reads and normalising (overlaps the model)
    wait_s: float = 0.0  # the model thread waiting for tiles (the model idle for want of input)
    blend_s: float = 0.0  # the model thread blending and finishing rows
    write_s: float = 0.0  # the writer thread busy (overlaps the model)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels_per_s(self) -> float:
        """Scene megapixels per second, end to end."""
        return self.pixels / 1e6 / self.total_s if self.total_s > 0 else 0.0

    def stage_seconds(self) -> dict[str, float]:
        """The per-stage split, rounded, for summaries."""
        names = ("forward_s", "read_s", "wait_s", "blend_s", "write_s")
        return {name: round(getattr(self, name), 3) for name in names}


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
# Reader, writer and polygon threads of a CPU run give way to the model's threads (Linux nice, per thread):
# they still run whenever a core is idle, and their work is a few percent of the model's.
BACKGROUND_NICE = 5
MAX_CPU_MODEL_CALLS = 2
READ_GROUP = 8  # tiles per read: 1/8 of the overlap re-decoded, and reads that do not grow with the width


class _Stop(Exception):
    """Another stage failed: leave quietly, its error is reported."""


class _Pipeline:
    """Bounded queues plus a shared stop flag and the first error raised by any stage."""

    def __init__(self, nice: int = 0) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.nice = nice

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
                lower_priority(self.nice)
                target()
            except BaseException as exc:
                self.fail(exc)

        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(t)  # before it starts: an interrupt from here on still joins it
        t.start()
        return t


def lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (Linux: per thread; elsewhere a no-op)."""
    if nice <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:  # another OS, or a sandbox that refuses: run at the normal priority
        pass


def default_readers(device_type: str) -> int:
    """Reader threads: one beside a CPU model (it is model-bound); on a GPU several, to keep it fed."""
    from s5cli.training.data import usable_cores

    return 1 if device_type == "cpu" else max(1, min(4, usable_cores() // 2))


def cpu_model_calls(threads: int) -> tuple[int, int]:
    """(concurrent model calls, torch threads each) for a CPU with `threads` torch threads to give.

    Two calls side by side, each on half the threads: one call's intra-op threads meet at a barrier
    after every operator, so a thread preempted by anything (our reader, another process) stalls all
    of them; two independent calls only lose what was preempted. On the shared 2-core machines two
    single-threaded calls ran vit-tiny 1.3x to 4.5x faster than one two-threaded call, the more so the
    busier the machine (docs/performance.md). Two, not more: each call holds a batch of activations.
    """
    calls = max(1, min(MAX_CPU_MODEL_CALLS, threads))
    return calls, max(1, threads // calls)


class ModelCalls:
    """Runs model calls in submission order, inline or side by side.

    Inline on a GPU (its kernels are asynchronous anyway); on a CPU in a small pool of threads, each
    with its share of torch's threads.
    """

    def __init__(self, call: Callable[..., Any], device: torch.device) -> None:
        import torch

        self.call = call
        self.pool: ThreadPoolExecutor | None = None
        self.depth = 0  # calls in flight before the caller must take the oldest result
        self.restore_threads: int | None = None
        if device.type == "cpu":
            self.restore_threads = torch.get_num_threads()
            calls, per_call = cpu_model_calls(self.restore_threads)
            torch.set_num_threads(per_call)  # also the blend's, in the calling thread
            self.pool = ThreadPoolExecutor(calls, "s5-model", initializer=torch.set_num_threads, initargs=(per_call,))
            self.depth = calls

    def submit(self, *args: Any) -> Future:
        """Start a call (or make it, inline)."""
        if self.pool is not None:
            return self.pool.submit(self.call, *args)
        done: Future = Future()
        done.set_result(self.call(*args))
        return done

    def close(self) -> None:
        """Stop the pool and give torch its threads back."""
        import torch

        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.restore_threads is not None:
            torch.set_num_threads(self.restore_threads)


def predict_source(
    source: WindowSource,
    model_fn: ModelFn | DeviceModel,
    num_classes: int,
    sink: RowSink,
    tile_size: int,
    overlap: int,
    batch_size: int = 4,
    bands: list[int] | None = None,
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
    description: str = "predict",
    readers: int | None = None,
) -> EngineStats:
    """Predict every pixel of `source` tile by tile and stream finished rows to `sink`.

    Args:
        source: the window reader (rasterio dataset or DataArray).
        model_fn: a Predictor (blends on its device), or any function from a batch of [0, 1] tiles to
            class probabilities (softmax) of the same tile size, as numpy arrays (blends on the CPU).
        num_classes: K, at most 255 (class 255 means "no prediction").
        sink: receives finished rows.
        tile_size: tile side in pixels (the model's input size).
        overlap: pixels shared by neighbouring tiles (blended), in [0, tile_size).
        batch_size: tiles per model call.
        bands: 1-based bands to read (None: all).
        normalise: raw (C, h, w) -> float32 [0, 1]; None: data already in [0, 1].
        description: progress bar label.
        readers: reader threads (None: one beside a CPU model, up to 4 beside a GPU; 0: read in the
            calling thread, between batches).
    """
    import torch

    from s5cli.inference.stitch import RowBand
    from s5cli.inference.transfer import DeviceTimer, Download, Uploader

    if not 0 < num_classes <= 255:
        raise InputError(f"class rasters hold up to 255 classes; this head has {num_classes}")
    if not 0 <= overlap < tile_size:
        raise InputError(f"overlap must be in [0, {tile_size}) pixels, got {overlap}")
    width, height = source.width, source.height
    windows = window_grid(width, height, tile_size, overlap)
    on_device = hasattr(model_fn, "probabilities")
    device: torch.device = model_fn.device if on_device else torch.device("cpu")  # type: ignore[union-attr]
    band = RowBand(width, height, tile_size, num_classes, overlap, device)
    stats = EngineStats(pixels=width * height, band_bytes=band.nbytes)
    pipe = _Pipeline(nice=BACKGROUND_NICE if device.type == "cpu" else 0)
    strips = list(iter_rows(windows))
    n_readers = min(default_readers(device.type) if readers is None else readers, len(strips))
    tile_qs: list[queue.Queue] = [queue.Queue(maxsize=2 * batch_size) for _ in range(n_readers)]
    rows_q: queue.Queue = queue.Queue(maxsize=2)
    read_lock = threading.Lock()  # one dataset handle: GDAL reads must not run concurrently
    busy = {"read": 0.0, "write": 0.0}
    timer = DeviceTimer(device)
    upload = Uploader(device)
    start = time.perf_counter()

    def reader(k: int) -> None:
        for strip in strips[k::n_readers]:
            for item in _strip_tiles(source, strip, bands, normalise, read_lock, busy):
                pipe.put(tile_qs[k], item)
            pipe.put(tile_qs[k], _END)  # end of this strip

    def writer() -> None:
        while True:
            item = pipe.get(rows_q)
            if item is _END:
                break
            row0, download = item
            t0 = time.perf_counter()
            classes, conf = download.result()
            sink.write(row0, classes, conf)
            busy["write"] += time.perf_counter() - t0

    def tiles() -> Iterator[Tile]:
        if n_readers == 0:
            for strip in strips:
                yield from _strip_tiles(source, strip, bands, normalise, read_lock, busy)
            return
        for k in range(len(strips)):
            while True:
                t0 = time.perf_counter()
                item = pipe.get(tile_qs[k % n_readers])
                stats.wait_s += time.perf_counter() - t0
                if item is _END:
                    break
                yield item

    def forward(xs: list[np.ndarray], valid: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        batch, masks = upload(xs), upload(valid)
        token = timer.start()
        if on_device:
            probs = model_fn.probabilities(batch)  # type: ignore[union-attr]
        else:
            probs = torch.from_numpy(np.ascontiguousarray(model_fn(batch.numpy())))  # type: ignore[operator]
        timer.stop(token)
        return probs, masks

    def blend(pending: list[Tile], result: Future | None) -> None:
        probs, masks = result.result() if result is not None else (None, None)
        t0 = time.perf_counter()
        k = 0
        for win, x, _ in pending:
            if win.row_off > band.row0:
                emit(int(win.row_off))
            if x is not None:
                band.add(win, probs[k], masks[k])  # type: ignore[index]
                k += 1
        stats.blend_s += time.perf_counter() - t0
        stats.tiles += k
        stats.skipped += len(pending) - k

    def emit(until_row: int) -> None:
        row0, classes, conf = band.finish(until_row)
        pipe.put(rows_q, (row0, Download([classes, conf])))

    calls = ModelCalls(forward, device)
    inflight: deque[tuple[list[Tile], Future | None]] = deque()
    try:
        for k in range(n_readers):
            pipe.thread(lambda k=k: reader(k), f"s5-reader-{k}")
        pipe.thread(writer, "s5-writer")
        with progress_bar(description, total=len(windows)) as bar:
            for pending in _batches(tiles(), batch_size):
                xs = [x for _, x, _ in pending if x is not None]
                valid = [v for _, x, v in pending if x is not None]
                inflight.append((pending, calls.submit(xs, valid) if xs else None))
                while len(inflight) > calls.depth:
                    done = inflight.popleft()
                    blend(*done)
                    bar.advance(len(done[0]))
                    mp = width * height * (stats.tiles + stats.skipped) / len(windows) / 1e6
                    bar.set_rate(f"{mp / max(time.perf_counter() - start, 1e-9):.2f} MP/s")
            while inflight:
                blend(*inflight.popleft())
            t0 = time.perf_counter()
            while band.row0 < height:
                emit(height)
            stats.blend_s += time.perf_counter() - t0
            pipe.put(rows_q, _END)
    except BaseException as exc:
        pipe.fail(exc)
    finally:
        calls.close()
        pipe.join()
    if pipe.errors:
        raise pipe.errors[0]
    stats.forward_s = timer.total()
    stats.read_s, stats.write_s = busy["read"], busy["write"]
    stats.total_s = time.perf_counter() - start
    return stats


def _batches(tiles: Iterator[Tile], batch_size: int) -> Iterator[list[Tile]]:
    """Groups of tiles holding `batch_size` to compute.

    Skipped (all-nodata) tiles ride along in order; a long run of them is passed on without waiting
    for a full batch.
    """
    pending: list[Tile] = []
    n_compute = 0
    for item in tiles:
        pending.append(item)
        n_compute += item[1] is not None
        if n_compute >= batch_size or len(pending) >= 4 * batch_size:
            yield pending
            pending, n_compute = [], 0
    if pending:
        yield pending


def _strip_tiles(
    source: WindowSource,
    strip: list[Window],
    bands: list[int] | None,
    normalise: Callable[[np.ndarray], np.ndarray] | None,
    lock: threading.Lock,
    busy: dict[str, float],
) -> Iterator[Tile]:
    """The tiles of one row of windows, read READ_GROUP tiles at a time (their overlaps decoded once).

    A group, not the whole strip: the read's memory then stays the same whatever the scene width.
    """
    for k in range(0, len(strip), READ_GROUP):
        group = strip[k : k + READ_GROUP]
        t0 = time.perf_counter()
        row0, col0 = int(group[0].row_off), int(group[0].col_off)
        col1 = max(int(w.col_off + w.width) for w in group)
        with lock:
            data, valid = source.read(Window(col0, row0, col1 - col0, int(group[0].height)), bands)
        busy["read"] += time.perf_counter() - t0
        for win in group:
            t0 = time.perf_counter()
            cols = slice(int(win.col_off) - col0, int(win.col_off + win.width) - col0)
            tile_valid = valid[:, cols]
            item: Tile = (win, None, None)
            if tile_valid.any():
                tile = data[:, :, cols]
                x = normalise(tile) if normalise is not None else np.ascontiguousarray(tile, dtype=np.float32)
                item = (win, x, np.ascontiguousarray(tile_valid))
            busy["read"] += time.perf_counter() - t0
            yield item
