"""`s5 demo` runs the whole chain and leaves every output where it says."""

import json
from pathlib import Path

import geopandas as gpd
import rasterio

from s5cli.cli import app


def test_demo_end_to_end(runner, tmp_path) -> None:
    workdir = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "--workdir",
            str(workdir),
            "--pretrain-iterations",
            "2",
            "--finetune-iterations",
            "2",
            "--scene-size",
            "160",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["step"] for s in summary["steps"]] == [
        "world", "curate", "pretrain", "finetune", "evaluate", "export", "predict"
    ]  # fmt: skip
    for path in summary["outputs"].values():
        assert Path(path).exists() and Path(path).is_relative_to(workdir), path
    assert {m["dataset"]: m["metric"] for m in summary["metrics"]} == {"landcover": "mIoU", "buildings": "mIoU"}
    scene = workdir / "world" / "scene_val.tif"
    with rasterio.open(scene) as src, rasterio.open(workdir / "outputs" / "landcover.tif") as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
    polygons = gpd.read_file(workdir / "outputs" / "landcover.gpkg")
    assert polygons.crs.to_epsg() == 32633
    assert not any(p.name.startswith(".demo") for p in tmp_path.iterdir())  # no temp folder left
    # built in a temp folder, then renamed: the run configs and the corpus still name files that exist
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.training.run_dir import RunDir, read_run_config

    finetune = read_run_config(RunDir(workdir / "runs" / "finetune"), FinetuneConfig)
    assert finetune["output"] == str(workdir / "runs" / "finetune")
    assert all(Path(d).is_file() and Path(d).is_relative_to(workdir) for d in finetune["datasets"])
    assert finetune["model"]["init"] == str(workdir / "runs" / "pretrain" / "model.pt")
    pretrain = read_run_config(RunDir(workdir / "runs" / "pretrain"), PretrainConfig)
    assert Path(pretrain["unlabeled"]["manifest"]).is_file() and Path(pretrain["labeled"]["dataset"]).is_file()
    sources = set(gpd.read_parquet(workdir / "corpus" / "manifest.parquet").source)
    assert sources and all((workdir / "corpus" / s).is_file() for s in sources)


def test_demo_refuses_existing_workdir(runner, tmp_path) -> None:
    (tmp_path / "demo").mkdir()
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--overwrite" in result.stderr
