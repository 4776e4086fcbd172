"""Issue 16 (1, 2): a model trained on 12-bit data at 0.3 m records how its data were read, and predict reads
a scene of another GSD the same way by default; options override; a 4-band dataset meets a 3-band init."""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.crs import CRS
from shapely.geometry import box

from s5cli.cli import app
from s5cli_tests.scenes import make_scene

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "finetune" / "tiny.yaml"
X0, Y0 = 500_000.0, 5_800_000.0  # make_scene's top-left corner


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


def twelve_bit_project(folder: Path, bands: list[int] | None = (2, 3, 4), scale: float | None = 4095) -> Path:
    """Two 4-band uint16 scenes holding 12-bit values (1..4000) at 0.3 m, in two UTM zones, WGS84 labels."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for name, epsg, seed in (("west", 32632, 1), ("east", 32633, 2)):
        make_scene(folder / f"{name}.tif", bands=4, dtype="uint16", gsd=0.3, crs=CRS.from_epsg(epsg), seed=seed)
        house = box(X0 + 3, Y0 - 9, X0 + 9, Y0 - 3)
        parts.append(gpd.GeoDataFrame({"kind": ["building"]}, geometry=[house], crs=f"EPSG:{epsg}").to_crs(4326))
    gpd.GeoDataFrame(np.concatenate([p.values for p in parts]), columns=["kind", "geometry"], crs=4326).to_file(
        folder / "labels.geojson", driver="GeoJSON"
    )
    cfg = {
        "name": "houses",
        "classes": ["background", "building"],
        "scenes": [{"path": "west.tif", "split": "train"}, {"path": "east.tif", "split": "val"}],
        "labels": "labels.geojson",
        "class_column": "kind",
        "background": "background",
        "tile_size": 32,
    }
    if bands is not None:
        cfg["bands"] = list(bands)
    if scale is not None:
        cfg["scale"] = scale
    path = folder / "houses.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def twelve_bit_model(tmp_path_factory) -> Path:
    """`s5 finetune` on the 12-bit project for 2 iterations (vit-nano, fresh weights)."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("twelve")
    project = twelve_bit_project(folder / "data")
    args = ["-q", "finetune", "--config", TINY, "--datasets", project, "-o", folder / "run", "--iterations", 2]
    result = invoke(CliRunner(), *args)
    assert result.exit_code == 0, result.output
    return folder / "run" / "model.pt"


def test_finetune_records_the_bands_scale_dtype_and_gsd_it_read(twelve_bit_model: Path) -> None:
    from s5cli.models.checkpoint import load_checkpoint

    _, spec, _ = load_checkpoint(twelve_bit_model)
    contract = spec.input.for_head("houses")
    assert contract.source_bands == [2, 3, 4] and contract.scale == 4095.0 and contract.dtype == "uint16"
    assert contract.gsd == pytest.approx(0.3) and len(contract.bands) == 3


def test_predict_applies_the_contract_by_default_and_options_override(
    runner, tmp_path: Path, twelve_bit_model: Path
) -> None:
    scene = make_scene(tmp_path / "coarse.tif", width=48, height=40, bands=4, dtype="uint16", gsd=0.6, seed=5)
    default = tmp_path / "default.tif"
    result = invoke(runner, "predict", scene, "--raster", default, "--checkpoint", twelve_bit_model, "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)["scenes"][0]
    assert info["working_factor"] == 2.0 and info["scene_gsd_m"] == pytest.approx(0.6)
    assert info["working_gsd_m"] == pytest.approx(0.3) and info["raw_range"] == [[0.0, 4095.0]] * 3
    err = " ".join(result.stderr.split())
    assert "reading band(s) 2, 3, 4" in err and "resampling from 0.6 m to the model's 0.3 m" in err
    assert "warning" not in err  # the 12-bit scene fits the 12-bit contract: nothing saturates
    with rasterio.open(scene) as src, rasterio.open(default) as out:
        assert (out.transform, out.width, out.height) == (src.transform, src.width, src.height)
        got = out.read(1)
    explicit = tmp_path / "explicit.tif"
    args = ["-b", "2,3,4", "--scale", 4095, "--gsd", 0.3]
    assert (
        invoke(runner, "predict", scene, "--raster", explicit, "--checkpoint", twelve_bit_model, *args).exit_code == 0
    )
    with rasterio.open(explicit) as out:
        assert np.array_equal(out.read(1), got)
    eight = tmp_path / "eight.tif"
    result = invoke(runner, "predict", scene, "--raster", eight, "--checkpoint", twelve_bit_model, "--scale", 255)
    assert result.exit_code == 0 and "warning" not in result.stderr  # the user's --scale is taken as given
    result = invoke(runner, "predict", scene, "--raster", tmp_path / "s.tif", "--checkpoint", twelve_bit_model,
                    "--stretch", "2,98", "--scale", 255)  # fmt: skip
    assert result.exit_code == 2 and "--scale or --stretch, not both" in result.stderr
    text = invoke(runner, "predict", scene, "--raster", tmp_path / "t.tif", "--checkpoint", twelve_bit_model)
    assert "resampled from 0.6 m to the model's 0.3 m, raw 0..4095 -> 0..1" in " ".join(text.stderr.split())


def test_a_four_band_dataset_meets_a_three_band_init(runner, tmp_path: Path) -> None:
    from s5cli.config import load_config
    from s5cli.datasets.registry import pixel_format
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.finetune.data import plan_datasets
    from s5cli.finetune.model import build_finetune_model
    from s5cli.models.checkpoint import save_checkpoint
    from s5cli_tests.models.tiny import tiny_model

    project = twelve_bit_project(tmp_path / "data", bands=None, scale=None)  # every band: 4
    init = save_checkpoint(tmp_path / "init.pt", tiny_model("isaid"))
    args = ["finetune", "--config", TINY, "--datasets", project, "--init", init, "-o", tmp_path / "run"]
    result = invoke(runner, *args)
    assert result.exit_code == 2 and not (tmp_path / "run").exists()
    line = " ".join(result.stderr.split())
    assert f"error: {project}: dataset 'houses' gives 4 band(s) but the init checkpoint takes 3 bands" in line
    assert f"choose 3 with `bands: [1, 2, 3]` in {project}" in line
    # Without an init, the model is built for the bands given.
    cfg = load_config(FinetuneConfig, TINY, {"datasets": [str(project)]})
    plans = plan_datasets(cfg)
    model = build_finetune_model(
        cfg, [p.head for p in plans], {p.head.name: pixel_format(p.info, p.root, p.options) for p in plans}
    )
    assert model.spec.input.source_bands == [1, 2, 3, 4] and model.spec.input.scale == 65535.0
    assert model.eval()(torch.rand(1, 4, 32, 32), "houses").shape == (1, 2, 32, 32)
