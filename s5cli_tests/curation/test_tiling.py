from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import Affine

from s5cli.curation.inputs import Scene
from s5cli.curation.manifest import CANDIDATE, LOW_STD, NODATA
from s5cli.curation.phash import phash, to_hex
from s5cli.curation.tiling import TileSettings, tile_scene
from s5cli.errors import ConfigError
from s5cli_tests.curation.conftest import textured, write_tif
from s5cli_tests.scenes import UTM33, make_scene


def run(path: Path, corpus: Path, **kw):
    return tile_scene(Scene(0, str(path.resolve())), TileSettings(corpus=str(corpus), **kw))


def test_grid_counts_nodata_rule_and_georeferencing(tmp_path):
    scene = make_scene(tmp_path / "s.tif", width=96, height=80)  # 4-px nodata border top and left
    result = run(scene, tmp_path / "c", chip_size=32, max_nodata=0.1)
    assert result.error is None
    windows = [(r["row"], r["col"]) for r in result.rows]
    # rows 0, 32, 48 (last snaps to the edge) x cols 0, 32, 64
    assert windows == [(r, c) for r in (0, 32, 48) for c in (0, 32, 64)]
    by_window = {(r["row"], r["col"]): r for r in result.rows}
    assert by_window[0, 0]["nodata_fraction"] == (32 * 4 + 28 * 4) / 1024
    assert by_window[0, 32]["nodata_fraction"] == 4 * 32 / 1024
    assert by_window[32, 32]["nodata_fraction"] == 0.0
    nodata = {w for w, r in by_window.items() if r["reason"] == NODATA}
    assert nodata == {(0, 0), (0, 32), (0, 64), (32, 0), (48, 0)}
    assert all(by_window[w]["path"] is None for w in nodata)
    kept = [r for r in result.rows if r["reason"] == CANDIDATE]
    assert len(kept) == 4
    with rasterio.open(scene) as src:
        for row in kept:
            with rasterio.open(tmp_path / "c" / row["path"]) as chip:
                assert chip.crs == UTM33 == src.crs
                assert chip.transform == src.transform * Affine.translation(row["col"], row["row"])
                window = rasterio.windows.Window(row["col"], row["row"], 32, 32)
                np.testing.assert_array_equal(chip.read(), src.read(window=window))
                assert row["phash"] == to_hex(phash(chip.read()))
            assert row["crs"] == "EPSG:32633" and row["gsd"] == 0.5
            # footprint: the chip bounds, reprojected to lon/lat
            west, south, east, north = row["geometry"].bounds
            assert 14.99 < west < east < 15.01 and 52.3 < south < north < 52.4


def test_low_std_rule_records_the_value(tmp_path):
    data = textured(64, 64, seed=0)
    data[:, :, 32:] = 77  # the right half is flat
    scene = write_tif(tmp_path / "flat.tif", data)
    result = run(scene, tmp_path / "c", chip_size=32, min_std=2.0)
    reasons = {(r["row"], r["col"]): (r["reason"], r["std"]) for r in result.rows}
    assert reasons[0, 32] == (LOW_STD, 0.0) and reasons[32, 32] == (LOW_STD, 0.0)
    assert reasons[0, 0][0] == CANDIDATE and reasons[0, 0][1] > 30


def test_overlap(tmp_path):
    scene = write_tif(tmp_path / "s.tif", textured(64, 96, seed=1))
    result = run(scene, tmp_path / "c", chip_size=32, overlap_px=16)
    assert sorted({r["col"] for r in result.rows}) == [0, 16, 32, 48, 64]
    assert sorted({r["row"] for r in result.rows}) == [0, 16, 32]


def test_bands_selection(tmp_path):
    scene = make_scene(tmp_path / "s.tif", bands=4, dtype="uint16", nodata_border=0)
    result = run(scene, tmp_path / "c", chip_size=48, bands=(3, 2, 1))
    with rasterio.open(tmp_path / "c" / result.rows[0]["path"]) as chip, rasterio.open(scene) as src:
        assert chip.count == 3 and chip.dtypes[0] == "uint16"
        np.testing.assert_array_equal(chip.read(1), src.read(3, window=rasterio.windows.Window(0, 0, 48, 48)))
    with pytest.raises(ConfigError, match="band 5"):  # an option no scene can satisfy stops the run
        run(scene, tmp_path / "c2", chip_size=48, bands=(5,))


def test_plain_images_pass_through(tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(np.moveaxis(textured(40, 50, seed=2), 0, -1)).save(small)
    result = run(small, tmp_path / "c", chip_size=64)
    assert len(result.rows) == 1
    row = result.rows[0]
    assert (row["width"], row["height"]) == (50, 40) and row["path"].endswith(".png")
    assert row["crs"] is None and row["gsd"] is None and row["geometry"] is None
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c" / row["path"])), np.asarray(Image.open(small)))
    big = tmp_path / "big.jpg"
    Image.fromarray(np.moveaxis(textured(70, 100, seed=3), 0, -1)).save(big, quality=95)
    result = run(big, tmp_path / "c", chip_size=64)
    assert [(r["row"], r["col"]) for r in result.rows] == [(0, 0), (0, 36), (6, 0), (6, 36)]
    assert all(r["path"].endswith(".jpg") for r in result.rows)


def test_format_tif_for_plain_and_png_for_geotiff(tmp_path):
    png = tmp_path / "p.png"
    Image.fromarray(np.moveaxis(textured(32, 32, seed=4), 0, -1)).save(png)
    result = run(png, tmp_path / "c", chip_size=32, fmt="tif")
    assert result.rows[0]["path"].endswith(".tif")
    scene = write_tif(tmp_path / "g.tif", textured(32, 32, seed=5))
    result = run(scene, tmp_path / "c", chip_size=32, fmt="png")
    assert result.rows[0]["path"].endswith(".png") and result.rows[0]["crs"] == "EPSG:32633"


def test_jpeg_refuses_16_bit(tmp_path):
    scene = make_scene(tmp_path / "s.tif", dtype="uint16", nodata_border=0)
    result = run(scene, tmp_path / "c", chip_size=32, fmt="jpg")
    assert result.rows == [] and "use --format tif" in result.error


def test_resample_to_target_gsd(tmp_path):
    scene = write_tif(tmp_path / "s.tif", textured(80, 96, seed=6), gsd=0.5)
    result = run(scene, tmp_path / "c", chip_size=32, gsd=1.0)  # 96 x 80 at 0.5 m -> 48 x 40 at 1 m
    assert [(r["row"], r["col"]) for r in result.rows] == [(0, 0), (0, 16), (8, 0), (8, 16)]
    assert all(r["gsd"] == 1.0 for r in result.rows)
    with rasterio.open(tmp_path / "c" / result.rows[3]["path"]) as chip:
        assert chip.res == (1.0, 1.0)
        assert chip.transform.c == 500_000.0 + 16 and chip.transform.f == 5_800_000.0 - 8


def test_unreadable_scene_is_an_error_record(tmp_path, not_a_raster):
    result = run(not_a_raster, tmp_path / "c", chip_size=32)
    assert result.rows == [] and "not a readable raster" in result.error


@pytest.mark.parametrize("max_nodata", [1.0])
def test_all_nodata_chip_with_permissive_rule(tmp_path, max_nodata):
    data = np.zeros((3, 32, 32), np.uint8)
    scene = write_tif(tmp_path / "z.tif", data, nodata=0)
    result = run(scene, tmp_path / "c", chip_size=32, max_nodata=max_nodata)
    assert result.rows[0]["nodata_fraction"] == 1.0
    assert result.rows[0]["reason"] == LOW_STD and result.rows[0]["std"] == 0.0
