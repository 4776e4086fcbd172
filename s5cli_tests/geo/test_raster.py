from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from s5cli.errors import InputError
from s5cli.geo.raster import describe_raster, open_raster, read_window, write_geotiff
from s5cli.geo.tiles import grid_starts, iter_rows, window_grid


def test_describe_projected(scene_u16: Path) -> None:
    info = describe_raster(scene_u16)
    assert (info.width, info.height, info.count, info.dtype) == (96, 80, 4, "uint16")
    assert info.crs.to_epsg() == 32633 and info.nodata == 0
    assert info.gsd == pytest.approx(0.5) and info.gsd_m == pytest.approx(0.5)
    assert info.is_georeferenced and not info.is_rotated


def test_no_crs(scene_no_crs: Path) -> None:
    info = describe_raster(scene_no_crs)
    assert info.crs is None and not info.is_georeferenced and info.gsd is None


@pytest.mark.parametrize("fixture", ["not_a_raster", "truncated_tif"])
def test_bad_files_are_input_errors(request: pytest.FixtureRequest, fixture: str) -> None:
    path = request.getfixturevalue(fixture)
    with pytest.raises(InputError) as info:
        with open_raster(path) as src:
            read_window(src, Window(0, 0, src.width, src.height))
    assert str(path) in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        describe_raster(tmp_path / "nope.tif")


def test_read_window_pads_outside(scene_rgb: Path) -> None:
    with open_raster(scene_rgb) as src:
        data, valid = read_window(src, Window(80, 70, 32, 32))
        full = src.read()
    assert data.shape == (3, 32, 32)
    assert np.array_equal(data[:, :10, :16], full[:, 70:80, 80:96])
    assert not valid[10:, :].any() and not valid[:, 16:].any()
    assert valid[:10, :16].all()
    # The nodata border is not valid.
    with open_raster(scene_rgb) as src:
        _, valid = read_window(src, Window(0, 0, 16, 16))
    assert not valid[:4].any() and valid[4:, 4:].all()


def test_write_geotiff_keeps_georef(tmp_path: Path, scene_rgb: Path) -> None:
    info = describe_raster(scene_rgb)
    out = tmp_path / "out.tif"
    write_geotiff(out, np.ones((info.height, info.width), np.uint8), info.crs, info.transform, nodata=255)
    with rasterio.open(out) as dst:
        assert dst.crs == info.crs and dst.transform == info.transform
        assert (dst.width, dst.height, dst.nodata) == (info.width, info.height, 255)
        assert dst.profile["tiled"] and dst.compression.name.lower() == "deflate"


@pytest.mark.parametrize(("length", "size", "stride"), [(100, 32, 24), (32, 32, 16), (10, 32, 32), (97, 16, 16)])
def test_grid_covers(length: int, size: int, stride: int) -> None:
    starts = grid_starts(length, size, stride)
    covered = np.zeros(max(length, size), bool)
    for s in starts:
        covered[s : s + size] = True
        assert s >= 0 and (s + size <= length or length < size)
    assert covered[:length].all()


def test_window_grid_rows() -> None:
    wins = window_grid(100, 70, 32, 8)
    rows = list(iter_rows(wins))
    assert sum(len(r) for r in rows) == len(wins)
    assert all(len({w.row_off for w in r}) == 1 for r in rows)
    with pytest.raises(ValueError):
        window_grid(10, 10, 8, 8)


def test_validity_is_gdals_dataset_mask_and_a_nodata_rule_keeps_the_alpha_band(tmp_path: Path) -> None:
    data = np.full((4, 20, 20), 50, np.uint8)
    data[3] = 255
    data[3, :5] = 0  # alpha: rows 0-4 transparent
    data[0, 8] = 0  # one band at the nodata value
    data[:3, 12] = 0  # every colour band at the nodata value
    profile = dict(driver="GTiff", width=20, height=20, count=4, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(0, 0, 1, 1), photometric="RGB", alpha="YES")  # fmt: skip
    with rasterio.open(tmp_path / "a.tif", "w", nodata=0, **profile) as dst:
        dst.write(data)
    with rasterio.open(tmp_path / "a.tif") as src:
        win = Window(0, 0, 20, 20)
        _, valid = read_window(src, win, [1, 2, 3])  # GDAL's dataset mask: here the alpha band's
        assert np.array_equal(valid, src.dataset_mask() > 0) and not valid[:5].any() and valid[5:].all()
        _, valid = read_window(src, win, [1, 2, 3], nodata="none")  # the alpha band still masks
        assert (~valid).sum() == 100 and not valid[:5].any()
        _, valid = read_window(src, win, [1, 2, 3], nodata=50)
        assert (~valid).sum() == 20 * 20 - 2 * 20 and valid[8].all() and valid[12].all()  # only 8, 12 differ


def test_non_finite_values_are_invalid_and_read_as_the_pad_value(tmp_path: Path) -> None:
    data = np.ones((2, 8, 8), np.float32)
    data[1, 2, 3] = np.nan
    data[0, 5, 5] = np.inf
    write_geotiff(tmp_path / "f.tif", data, None, from_origin(0, 0, 1, 1))
    with rasterio.open(tmp_path / "f.tif") as src:
        out, valid = read_window(src, Window(0, 0, 8, 8))
    assert (~valid).sum() == 2 and not valid[2, 3] and not valid[5, 5]
    assert np.isfinite(out).all() and out[:, 2, 3].tolist() == [0.0, 0.0]
