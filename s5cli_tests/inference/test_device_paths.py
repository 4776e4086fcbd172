"""The engine's device-side code paths, run on the CPU: the same code a GPU runs, minus the GPU."""

from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from s5cli.geo.tiles import window_grid
from s5cli.inference.engine import ArraySink, cpu_model_calls, predict_source
from s5cli.inference.normalize import Normaliser
from s5cli.inference.predictor import Predictor
from s5cli.inference.sources import RasterioSource
from s5cli.inference.stitch import RowBand, tile_weights
from s5cli.inference.transfer import DeviceTimer, Download, Uploader
from s5cli_tests.scenes import make_scene

NORM = Normaliser((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def _run(path: Path, model: object, readers: int | None = None, overlap: int = 8) -> ArraySink:
    with rasterio.open(path) as ds:
        src = RasterioSource(ds)
        sink = ArraySink(src.width, src.height)
        predict_source(src, model, 3, sink, 32, overlap, 3, None, NORM, readers=readers)  # type: ignore[arg-type]
    return sink


def test_device_blend_equals_host_blend(tmp_path: Path, standin: Predictor) -> None:
    """A Predictor blends on its device (tensors end to end); a plain numpy function on the host: same map."""
    path = make_scene(tmp_path / "s.tif", width=90, height=70, nodata_border=5)
    on_device = _run(path, standin)
    on_host = _run(path, lambda x: standin(x))
    assert np.array_equal(on_device.classes, on_host.classes)
    assert np.array_equal(on_device.conf, on_host.conf)


def test_readers_inline_or_threaded_give_the_same_map(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=100, height=90, nodata_border=0, seed=4)
    inline = _run(path, standin, readers=0)
    for readers in (1, 3):
        threaded = _run(path, standin, readers=readers)
        assert np.array_equal(inline.classes, threaded.classes) and np.array_equal(inline.conf, threaded.conf)


def test_band_argmax_agrees_with_a_float64_numpy_blend() -> None:
    """The torch band (float32, argmax on its device) against whole-scene float64 numpy sums."""
    width, height, tile, overlap, k = 150, 110, 32, 12, 6
    rng = np.random.default_rng(7)
    band = RowBand(width, height, tile, k, overlap, torch.device("cpu"))
    acc = np.zeros((k, height, width))
    wsum = np.zeros((height, width))
    rows = []
    for win in window_grid(width, height, tile, overlap):
        probs = rng.dirichlet(np.ones(k), size=(tile, tile)).transpose(2, 0, 1).astype(np.float32)
        if win.row_off > band.row0:
            rows.append(band.flush(int(win.row_off)))
        band.add(win, torch.from_numpy(probs), torch.ones((tile, tile), dtype=torch.bool))
        r, c = int(win.row_off), int(win.col_off)
        wt = tile_weights(win, width, height, overlap)
        acc[:, r : r + tile, c : c + tile] += probs * wt
        wsum[r : r + tile, c : c + tile] += wt
    while band.row0 < height:
        rows.append(band.flush(height))
    classes = np.concatenate([c for _, c, _ in rows])
    assert (classes == (acc / wsum).argmax(0)).mean() >= 0.9999


def test_model_calls_split_the_threads() -> None:
    assert cpu_model_calls(1) == (1, 1)
    assert cpu_model_calls(2) == (2, 1)
    assert cpu_model_calls(8) == (2, 4)


def test_timer_counts_overlapping_calls_once() -> None:
    timer = DeviceTimer(torch.device("cpu"))
    timer.spans = [(0.0, 1.0), (0.5, 1.5), (2.0, 3.0), (2.2, 2.4)]
    assert timer.total() == 2.5


def test_upload_and_download_on_the_cpu_share_memory() -> None:
    upload = Uploader(torch.device("cpu"))
    tiles = [np.full((3, 4, 4), i, np.float32) for i in range(3)]
    batch = upload(tiles)
    assert batch.shape == (3, 3, 4, 4) and batch.dtype == torch.float32 and batch[2, 0, 0, 0] == 2
    masks = upload([np.ones((4, 4), bool), np.zeros((4, 4), bool)])
    assert masks.dtype == torch.bool and masks.sum() == 16
    classes = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
    got = Download([classes, classes + 1]).result()
    assert [a.dtype for a in got] == [np.uint8, np.uint8] and got[1][1, 2] == 6


def test_torch_threads_are_given_back(tmp_path: Path, standin: Predictor) -> None:
    before = torch.get_num_threads()
    path = make_scene(tmp_path / "s.tif", width=64, height=64)
    _run(path, standin)
    assert torch.get_num_threads() == before


def test_strip_reads_cover_a_scene_narrower_than_a_tile(tmp_path: Path, standin: Predictor) -> None:
    """A strip is as wide as a tile when the scene is narrower: padded past the edge, as tile reads were."""
    path = make_scene(tmp_path / "s.tif", width=20, height=50, nodata_border=0)
    sink = _run(path, standin)
    assert sink.classes.shape == (50, 20) and (sink.classes != 255).all()
    with rasterio.open(path) as ds:
        data, _ = RasterioSource(ds).read(Window(0, 0, 32, 32))
    top = standin(NORM(data)[None])[0].argmax(0)
    assert np.array_equal(sink.classes[:10], top[:10, :20])  # rows only the first tile covers
