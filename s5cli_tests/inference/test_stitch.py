import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from s5cli.geo.tiles import window_grid
from s5cli.inference.stitch import WEIGHT_FLOOR, RowBand, ramp, tile_weights


def test_ramp_shape() -> None:
    w = ramp(32, 8, False, False)
    assert w.dtype == np.float32 and w.shape == (32,)
    assert (w > 0).all() and w.min() >= WEIGHT_FLOOR
    assert np.allclose(w, w[::-1])
    assert (w[8:24] == 1).all() and w[0] < 0.05 and w[7] > 0.95
    assert (np.diff(w[:8]) > 0).all()
    assert (ramp(32, 0, False, False) == 1).all()


def test_flat_sides_on_the_scene_border() -> None:
    w = ramp(32, 8, True, False)
    assert (w[:24] == 1).all() and w[-1] < 0.05
    corner = tile_weights(Window(0, 0, 32, 32), width=100, height=100, overlap=8)
    assert corner[0, 0] == 1 and corner[-1, -1] < 0.01
    single = tile_weights(Window(0, 0, 32, 32), width=20, height=20, overlap=8)
    assert (single == 1).all()  # one tile covers the whole scene: nothing to blend


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 120),
    height=st.integers(1, 120),
    tile=st.sampled_from([16, 32]),
    overlap_frac=st.sampled_from([0.0, 0.25, 0.5]),
)
def test_band_equals_whole_scene_accumulation(width: int, height: int, tile: int, overlap_frac: float) -> None:
    """Streaming by row bands gives what accumulating the whole scene at once gives."""
    k = 3
    overlap = int(tile * overlap_frac)
    rng = np.random.default_rng(width * 1000 + height)
    windows = window_grid(width, height, tile, overlap)
    full_s = np.zeros((k, max(height, tile), max(width, tile)), np.float64)
    full_w = np.zeros((max(height, tile), max(width, tile)), np.float64)
    band = RowBand(width, height, tile, k, overlap)
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    for win in windows:
        probs = rng.dirichlet(np.ones(k), size=(tile, tile)).transpose(2, 0, 1).astype(np.float32)
        if win.row_off > band.row0:
            rows.append(band.flush(int(win.row_off)))
        band.add(win, probs, np.ones((tile, tile), bool))
        r, c = int(win.row_off), int(win.col_off)
        wt = tile_weights(win, width, height, overlap)
        full_s[:, r : r + tile, c : c + tile] += probs * wt
        full_w[r : r + tile, c : c + tile] += wt
    rows.append(band.flush(height))
    classes = np.concatenate([c for _, c, _ in rows])
    conf = np.concatenate([f for _, _, f in rows])
    assert [r0 for r0, _, _ in rows] == sorted({r0 for r0, _, _ in rows})
    assert classes.shape == (height, width)
    assert (classes != 255).all()
    mean = full_s[:, :height, :width] / full_w[:height, :width]
    top2 = np.sort(mean, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4  # ignore float32-vs-float64 near-ties
    assert np.array_equal(classes[clear], mean.argmax(0)[clear])
    assert np.abs(conf.astype(int) - np.rint(mean.max(0) * 255)).max() <= 1


def test_band_rejects_tiles_out_of_order() -> None:
    band = RowBand(64, 64, 32, 2, 8)
    band.flush(24)
    with pytest.raises(ValueError):
        band.add(Window(0, 0, 32, 32), None, np.ones((32, 32), bool))


def test_unpredicted_and_invalid_pixels_are_nodata() -> None:
    band = RowBand(40, 10, 16, 2, 0)
    probs = np.zeros((2, 16, 16), np.float32)
    probs[1] = 1.0
    valid = np.ones((16, 16), bool)
    valid[0, 0] = False
    band.add(Window(0, 0, 16, 16), probs, valid)  # columns 16..39 get no tile
    _, classes, conf = band.flush(10)
    assert classes[0, 0] == 255 and conf[0, 0] == 0
    assert (classes[1:, :16] == 1).all() and (conf[1:, :16] == 255).all()
    assert (classes[:, 16:] == 255).all() and (conf[:, 16:] == 0).all()
