import json
from pathlib import Path

import numpy as np
import rasterio
import torch

from s5cli.models.checkpoint import load_checkpoint
from s5cli_tests import scenes
from s5cli_tests.test_finetune import invoke, one_thread, trained_run  # noqa: F401 - fixture


def test_exported_potsdam_model_equals_the_moe_path_and_runs_in_predict(runner, tmp_path_factory, tmp_path) -> None:
    run = trained_run(runner, tmp_path_factory)
    out = tmp_path / "potsdam.pt"
    result = invoke(runner, "export", [run / "checkpoint.pt", "--dataset", "potsdam", "-o", out])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    moe, moe_spec, _ = load_checkpoint(run / "checkpoint.pt")
    dense, spec, ckpt = load_checkpoint(out)
    assert moe_spec.moe and not spec.moe and [h.name for h in spec.heads] == ["potsdam"]
    assert spec.heads[0].classes == moe_spec.heads[0].classes and spec.input.tile_size == 32
    assert ckpt["extra"]["stage"] == "export" and ckpt["extra"]["dataset"] == "potsdam"
    assert not any(".experts." in k for k in dense.state_dict())
    x = torch.rand(2, 3, 48, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(dense(x, "potsdam"), moe(x, "potsdam"), rtol=1e-4, atol=1e-5)
    # the exported model predicts a georeferenced scene
    scene = scenes.make_scene(tmp_path / "scene.tif")
    raster, gpkg = tmp_path / "classes.tif", tmp_path / "scene.gpkg"
    args = [scene, "-o", gpkg, "--checkpoint", out, "--raster", raster, "--device", "cpu", "--json"]
    result = invoke(runner, "predict", args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["head"] == "potsdam"
    with rasterio.open(raster) as dst, rasterio.open(scene) as src:
        classes = dst.read(1)
        assert dst.crs == src.crs and dst.transform == src.transform and classes.shape == (src.height, src.width)
    assert set(np.unique(classes)) <= {0, 1, 2, 3, 4, 255}
    assert gpkg.is_file()


def test_export_errors_are_one_line_exit_2(runner, tmp_path_factory, tmp_path: Path) -> None:
    run = trained_run(runner, tmp_path_factory)
    ckpt = run / "checkpoint.pt"
    result = invoke(runner, "export", [ckpt, "--dataset", "vaihingen", "-o", tmp_path / "v.pt"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {ckpt}: no head for vaihingen in this checkpoint; it has: potsdam, loveda, dior-r"
    ]
    assert not (tmp_path / "v.pt").exists()
    existing = tmp_path / "loveda.pt"
    existing.write_bytes(b"keep")
    result = invoke(runner, "export", [ckpt, "--dataset", "LoveDA", "-o", existing])  # an alias of loveda
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {existing}: exists and won't be overwritten without --overwrite"
    ]
    result = invoke(runner, "export", [ckpt, "--dataset", "LoveDA", "-o", existing, "--overwrite"])
    assert result.exit_code == 0, result.output
    _, spec, _ = load_checkpoint(existing)
    assert [h.name for h in spec.heads] == ["loveda"] and not spec.moe
