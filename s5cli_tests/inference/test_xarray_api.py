from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray

from s5cli.errors import InputError
from s5cli.inference.predictor import Predictor
from s5cli.inference.xarray_api import predict_dataarray
from s5cli_tests.scenes import make_scene


def test_lazy_dataarray_matches_the_cli_raster(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    from s5cli.cli import app

    scene = make_scene(tmp_path / "s.tif", width=150, height=97, nodata_border=5)
    cog = tmp_path / "c.tif"
    args = ["predict", str(scene), "--raster", str(cog), "--checkpoint", str(tiny_ckpt), "--sieve", "0"]
    result = runner.invoke(app, args)  # the raw map: predict_dataarray does not sieve
    assert result.exit_code == 0, result.stderr
    da = rioxarray.open_rasterio(scene, chunks={"x": 64, "y": 64})
    assert da.chunks is not None  # dask-backed: windows are computed as they are read
    classes = predict_dataarray(da, tiny_ckpt)
    with rasterio.open(cog) as out:
        assert np.array_equal(classes.values, out.read(1))
    assert classes.dtype == np.uint8 and classes.dims == ("y", "x")
    assert np.array_equal(classes.x, da.x) and np.array_equal(classes.y, da.y)
    assert classes.rio.crs == da.rio.crs and classes.rio.transform() == da.rio.transform()
    assert classes.attrs["class_names"] == ["ground", "building", "tree"] and classes.attrs["_FillValue"] == 255


def test_confidence_and_loaded_model(tmp_path: Path, standin: Predictor) -> None:
    scene = make_scene(tmp_path / "s.tif", width=70, height=40, nodata_border=0)
    da = rioxarray.open_rasterio(scene)
    out = predict_dataarray(da, standin.model, tile_size=32, overlap=0.25, batch_size=2, confidence=True)
    assert set(out.data_vars) == {"classes", "confidence"}
    conf = out["confidence"].values
    assert np.nanmin(conf) >= 1 / 3 - 1e-6 and np.nanmax(conf) <= 1.0
    assert out["classes"].shape == (40, 70) and (out["classes"].values != 255).all()


def test_unknown_option_is_refused(tmp_path: Path, standin: Predictor) -> None:
    da = rioxarray.open_rasterio(make_scene(tmp_path / "s.tif", width=32, height=32))
    with pytest.raises(InputError, match="tile_sise"):
        predict_dataarray(da, standin, tile_sise=32)
