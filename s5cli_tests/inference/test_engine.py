from pathlib import Path

import numpy as np
import pytest
import rasterio

from s5cli.errors import InputError
from s5cli.geo.raster import read_window
from s5cli.geo.tiles import window_grid
from s5cli.inference.engine import ArraySink, predict_source
from s5cli.inference.normalize import Normaliser
from s5cli.inference.predictor import Predictor
from s5cli.inference.sources import RasterioSource
from s5cli.inference.stitch import tile_weights
from s5cli_tests.scenes import make_scene

NORM = Normaliser((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def run(path: Path, predictor: Predictor, tile: int = 32, overlap: int = 0, batch: int = 4) -> tuple[ArraySink, object]:
    with rasterio.open(path) as ds:
        src = RasterioSource(ds)
        sink = ArraySink(src.width, src.height)
        stats = predict_source(src, predictor, 3, sink, tile, overlap, batch, None, NORM)
    return sink, stats


def test_tile_by_tile_equals_one_by_one(tmp_path: Path, standin: Predictor) -> None:
    """Stitching adds nothing and loses nothing: the engine's map is each tile predicted alone."""
    path = make_scene(tmp_path / "s.tif", width=96, height=64, nodata_border=3)
    sink, stats = run(path, standin, tile=32, overlap=0, batch=4)
    assert stats.tiles == 6 and sorted(standin.model.calls) == [2, 4]  # two calls may run side by side
    expected = np.full((64, 96), 255, np.uint8)
    expected_conf = np.zeros((64, 96), np.uint8)
    with rasterio.open(path) as ds:
        for win in window_grid(96, 64, 32, 0):
            data, valid = read_window(ds, win)
            probs = standin(NORM(data)[None])[0]
            r, c = int(win.row_off), int(win.col_off)
            cls = probs.argmax(0).astype(np.uint8)
            conf = np.clip(np.rint(probs.max(0) * 255), 1, 255).astype(np.uint8)
            expected[r : r + 32, c : c + 32] = np.where(valid, cls, 255)
            expected_conf[r : r + 32, c : c + 32] = np.where(valid, conf, 0)
    assert np.array_equal(sink.classes, expected)
    assert np.abs(sink.conf.astype(int) - expected_conf).max() <= 1
    assert (sink.classes[:3] == 255).all() and (sink.classes[:, :3] == 255).all()
    assert len(np.unique(sink.classes[3:, 3:])) == 3  # the stand-in sees the content: all classes occur


def test_overlap_blends_like_whole_scene_accumulation(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=77, height=53, nodata_border=0, seed=3)
    sink, stats = run(path, standin, tile=32, overlap=12, batch=3)
    windows = window_grid(77, 53, 32, 12)
    assert stats.tiles == len(windows) == 12  # 4 columns (0, 20, 40, 45) x 3 rows (0, 20, 21)
    acc = np.zeros((3, 53, 77))
    wsum = np.zeros((53, 77))
    with rasterio.open(path) as ds:
        for win in windows:
            data, _ = read_window(ds, win)
            probs = standin(NORM(data)[None])[0]
            r, c = int(win.row_off), int(win.col_off)
            wt = tile_weights(win, 77, 53, 12)
            acc[:, r : r + 32, c : c + 32] += probs * wt
            wsum[r : r + 32, c : c + 32] += wt
    mean = acc / wsum
    top2 = np.sort(mean, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-5
    assert clear.mean() > 0.99
    assert np.array_equal(sink.classes[clear], mean.argmax(0)[clear])


def test_batch_size_does_not_change_the_map(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=70, height=45)
    one, _ = run(path, standin, overlap=8, batch=1)
    five, _ = run(path, standin, overlap=8, batch=5)
    assert np.array_equal(one.classes, five.classes)


def test_scene_smaller_than_a_tile(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=21, height=13, nodata_border=0)
    sink, stats = run(path, standin, tile=32, overlap=8)
    assert stats.tiles == 1 and sink.classes.shape == (13, 21) and (sink.classes != 255).all()


def test_all_nodata_tiles_never_reach_the_model(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=96, height=96, nodata_border=40)
    sink, stats = run(path, standin, tile=32, overlap=0, batch=2)
    assert stats.skipped == 5 and stats.tiles == 4  # the top row and left column of 3x3 tiles
    assert sum(standin.model.calls) == 4
    assert (sink.classes[:40] == 255).all() and (sink.classes[40:, 40:] != 255).all()


def test_band_memory_does_not_grow_with_height(tmp_path: Path, standin: Predictor) -> None:
    short = make_scene(tmp_path / "a.tif", width=64, height=40)
    tall = make_scene(tmp_path / "b.tif", width=64, height=400)
    assert run(short, standin)[1].band_bytes == run(tall, standin)[1].band_bytes == 3 * 32 * 64 * 4 + 32 * 64 * 5


class _FailingSource(RasterioSource):
    def __init__(self, ds, fail_at: int) -> None:
        super().__init__(ds)
        self.n = 0
        self.fail_at = fail_at

    def read(self, window, bands=None):
        self.n += 1
        if self.n == self.fail_at:
            raise InputError("cannot read window", "s.tif")
        return super().read(window, bands)


def test_reader_error_stops_everything(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=200, height=200)
    with rasterio.open(path) as ds, pytest.raises(InputError, match="cannot read window"):
        predict_source(_FailingSource(ds, 3), standin, 3, ArraySink(200, 200), 32, 0, 2, None, NORM)


def test_writer_and_model_errors_propagate(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=200, height=200)

    class BrokenSink(ArraySink):
        def write(self, row0, classes, conf):
            raise OSError(28, "No space left on device")

    def broken_model(x):
        raise RuntimeError("model blew up")

    with rasterio.open(path) as ds:
        with pytest.raises(OSError, match="No space"):
            predict_source(RasterioSource(ds), standin, 3, BrokenSink(200, 200), 32, 0, 2, None, NORM)
        with pytest.raises(RuntimeError, match="blew up"):
            predict_source(RasterioSource(ds), broken_model, 3, ArraySink(200, 200), 32, 0, 2, None, NORM)


def test_bad_arguments_are_input_errors(tmp_path: Path, standin: Predictor) -> None:
    path = make_scene(tmp_path / "s.tif", width=40, height=40)
    with rasterio.open(path) as ds:
        with pytest.raises(InputError, match="overlap"):
            predict_source(RasterioSource(ds), standin, 3, ArraySink(40, 40), 32, 32)
        with pytest.raises(InputError, match="255 classes"):
            predict_source(RasterioSource(ds), standin, 300, ArraySink(40, 40), 32, 0)
