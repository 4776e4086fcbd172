from pathlib import Path

import numpy as np
import pytest
import rasterio

from s5cli.errors import InputError
from s5cli.geo.raster import describe_raster, unit_scale
from s5cli.inference.inputs import expand_scenes, resolve_bands, working_factor
from s5cli.inference.normalize import Normaliser, make_normaliser
from s5cli.inference.sources import RasterioSource
from s5cli.models.spec import InputSpec
from s5cli_tests.scenes import make_scene

RGB = InputSpec()


def test_expand_files_folders_globs_and_remote(tmp_path: Path) -> None:
    for name in ("b.tif", "a.TIF", "c.vrt", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    folder = expand_scenes([str(tmp_path)])
    assert [Path(p).name for p in folder] == ["a.TIF", "b.tif", "c.vrt"]
    globbed = expand_scenes([str(tmp_path / "*.tif"), str(tmp_path / "b.tif")])
    assert [Path(p).name for p in globbed] == ["b.tif"]  # duplicates dropped, order kept
    remote = "/vsicurl/https://example.com/scene.tif"
    assert expand_scenes([remote]) == [remote]  # handed to GDAL untouched


@pytest.mark.parametrize(
    ("item", "message"),
    [("missing.tif", "no such file"), ("*.jp2", "no file matches"), ("sub", "no raster")],
)
def test_expand_errors(tmp_path: Path, item: str, message: str) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match=message):
        expand_scenes([str(tmp_path / item)])


def test_resolve_bands() -> None:
    assert resolve_bands(3, None, RGB) == [1, 2, 3]
    assert resolve_bands(5, [4, 3, 2], RGB) == [4, 3, 2]
    assert resolve_bands(4, None, RGB, alpha=[4]) == [1, 2, 3]
    with pytest.raises(InputError, match=r"has 4 band\(s\) but the checkpoint takes 3 \(red, green, blue\).*-b 1,2,3"):
        resolve_bands(4, None, RGB, path="s.tif")
    with pytest.raises(InputError, match="selects 2"):
        resolve_bands(4, [1, 2], RGB)
    with pytest.raises(InputError, match="band 7 does not exist"):
        resolve_bands(4, [1, 2, 7], RGB)


def test_working_factor(tmp_path: Path, scene_rgb: Path, scene_no_crs: Path) -> None:
    half = describe_raster(scene_rgb)  # 0.5 m
    assert working_factor(half, "auto", InputSpec(gsd=0.25)) == 2.0
    assert working_factor(half, "auto", InputSpec(gsd=0.51)) == 1.0  # within 5%
    assert working_factor(half, "auto", InputSpec(gsd=None)) == 1.0
    assert working_factor(half, "native", InputSpec(gsd=0.25)) == 1.0
    assert working_factor(half, 1.0, InputSpec(gsd=0.25)) == 0.5
    with pytest.raises(InputError, match="more than 16x"):
        working_factor(half, "auto", InputSpec(gsd=0.01))
    bare = describe_raster(scene_no_crs)
    assert working_factor(bare, "auto", InputSpec(gsd=0.25)) == 1.0
    with pytest.raises(InputError, match="GSD is unknown"):
        working_factor(bare, 0.3, InputSpec())


def test_normaliser_scale_and_dtype() -> None:
    norm = Normaliser((0.0,), (200.0,))
    out = norm(np.array([[[0, 100, 250]]], np.uint16))
    assert out.dtype == np.float32 and out.tolist() == [[[0.0, 0.5, 1.0]]]
    assert unit_scale("uint8") == 255 and unit_scale("uint16") == 65535 and unit_scale("float32") == 1.0


def test_make_normaliser(tmp_path: Path, scene_u16: Path, capsys) -> None:
    with rasterio.open(scene_u16) as ds:
        src = RasterioSource(ds)
        by_dtype = make_normaliser(src, InputSpec(bands=list("abcd"), mean=[0] * 4, std=[1] * 4, scale=None), None)
        assert by_dtype.hi == (65535.0,) * 4
        make_normaliser(src, InputSpec(bands=list("abc")), [1, 2, 3])  # 12-bit values over a 255 scale
        err = " ".join(capsys.readouterr().err.split())
        assert "divides raw values by 255" in err and "saturate" in err and "--stretch 2,98" in err
        make_normaliser(src, InputSpec(bands=list("abc"), scale=4095.0, dtype="uint16"), [1, 2, 3])
        assert capsys.readouterr().err == ""  # the training scale fits the scene: no warning
        stretched = make_normaliser(src, InputSpec(), [1, 2, 3], stretch=(2, 98))
        data = ds.read([1, 2, 3])
        valid = ds.read_masks(1) > 0
        for b in range(3):  # this scene is small: the decimated read is the whole scene
            lo, hi = np.percentile(data[b][valid], [2, 98])
            assert (stretched.lo[b], stretched.hi[b]) == pytest.approx((lo, hi))
            assert 100 < lo < hi <= 4000


def test_stretch_reads_a_decimated_overview(tmp_path: Path) -> None:
    path = make_scene(tmp_path / "big.tif", width=3000, height=200, dtype="uint16")
    seen = []
    with rasterio.open(path) as ds:
        src = RasterioSource(ds)
        original = src.decimated

        def spy(max_side, bands=None):
            data, valid = original(max_side, bands)
            seen.append(data.shape)
            return data, valid

        src.decimated = spy
        make_normaliser(src, InputSpec(), [1, 2, 3], stretch=(2, 98))
    assert seen == [(3, 68, 1024)]


def test_gdal_options_bound_the_cache_and_tune_remote_reads() -> None:
    from s5cli.inference.predict import gdal_options

    # rasterio passes an integer cache size to GDAL as bytes: 256 (meant as MB) was a 256-byte cache.
    assert gdal_options(["a.tif"]) == {"GDAL_CACHEMAX": 128 * 2**20}
    remote = gdal_options(["a.tif", "/vsicurl/https://x.org/b.tif"])
    assert remote["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR" and remote["VSI_CACHE"] == "TRUE"


def test_float_reflectance_with_an_8bit_checkpoint_warns(tmp_path: Path, capsys) -> None:
    path = make_scene(tmp_path / "f.tif", dtype="float32", nodata_border=0)
    with rasterio.open(path) as ds:
        norm = make_normaliser(RasterioSource(ds), InputSpec(), [1, 2, 3])
        assert norm.hi == (255.0,) * 3  # the checkpoint's contract is honoured...
        err = " ".join(capsys.readouterr().err.split())  # ...with a warning
        assert "nearly black" in err and "--scale 1" in err
        make_normaliser(RasterioSource(ds), InputSpec(scale=1.0), [1, 2, 3])
        assert capsys.readouterr().err == ""
