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
    result = invoke(runner, "export", [run / "model.pt", "--dataset", "potsdam", "-o", out])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    moe, moe_spec, _ = load_checkpoint(run / "model.pt")
    dense, spec, ckpt = load_checkpoint(out)
    assert moe_spec.moe and not spec.moe and [h.name for h in spec.heads] == ["potsdam"]
    assert spec.heads[0].classes == moe_spec.heads[0].classes and spec.heads[0].input.size == 32
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
    ckpt = run / "model.pt"
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
    assert spec.input.gsd == 0.3 and spec.input.heads == {}  # LoveDA's own contract, not the MoE model's first
    result = invoke(runner, "export", [ckpt, "-o", tmp_path / "any.pt"])
    assert (
        result.exit_code == 2 and "several heads (potsdam, loveda, dior-r); choose one with --dataset" in result.output
    )
    single = tmp_path / "single.pt"  # one head: --dataset is not needed
    assert invoke(runner, "export", [existing, "-o", single]).exit_code == 0
    assert [h.name for h in load_checkpoint(single)[1].heads] == ["loveda"]


def test_moe_ffn_merged_fc2_matches_the_two_part_ffn_and_tracks_weight_changes() -> None:
    import torch.nn.functional as F

    from s5cli.models.ffn import PartialExpertFFN

    torch.manual_seed(0)
    ffn = PartialExpertFFN(8, 32, expert_width=3, num_experts=2)
    x = torch.randn(2, 5, 8)

    def two_part(k: int) -> torch.Tensor:
        h = F.gelu(ffn.fc1(x))
        return torch.cat([ffn.fc2(h), ffn.experts[k](h)], dim=-1)

    with torch.no_grad():
        torch.testing.assert_close(ffn(x, 1), two_part(1))
        cached = ffn._merged[1]
        ffn(x, 1)
        assert ffn._merged[1] is cached  # reused while the weights are unchanged
        torch.testing.assert_close(ffn(x, 0), two_part(0))  # another expert replaces the cache
        ffn.experts[0].weight.add_(1.0)  # an in-place update (optimizer step, load_state_dict) invalidates it
        torch.testing.assert_close(ffn(x, 0), two_part(0))
    with torch.inference_mode():
        torch.testing.assert_close(ffn(x, 1), two_part(1))
    with torch.no_grad():
        torch.testing.assert_close(ffn(x, 1), two_part(1))  # a cache made in inference mode still serves
    ffn.train()
    assert ffn._merged is None
    out = ffn(x, 1)  # with autograd: merged on the fly, gradients reach the shared and the expert rows
    out.sum().backward()
    assert ffn.fc2.weight.grad is not None and ffn.experts[1].weight.grad is not None
    assert ffn.experts[0].weight.grad is None
