import json

import numpy as np
import torch

from s5cli.cli import app
from s5cli.models.checkpoint import load_checkpoint
from s5cli_tests.models.official_keys import official_mdf
from s5cli_tests.models.test_checkpoint import _Payload
from s5cli_tests.models.test_official import _mdf_model


def test_models_json_prints_the_paper_counts(runner):
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["preset"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"vit-b", "vit-l", "vit-h", "vit-tiny", "vit-nano"}
    paper = {"vit-b": (103.2, 160.4), "vit-l": (327.4, 435.0), "vit-h": (663.4, 824.5)}
    for preset, (single, multi) in paper.items():
        assert abs(rows[preset]["segmentation_single"] / 1e6 - single) <= 0.05
        assert abs(rows[preset]["segmentation_multi"] / 1e6 - multi) <= 0.05
    assert rows["vit-l"]["taps"] == [7, 11, 15, 23] and rows["vit-h"]["embed_dim"] == 1280


def test_models_table(runner):
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "vit-h" in result.stdout and "663.4" in result.stdout and "824.5" in result.stdout


def test_weights_import_missing_file_exits_2_with_one_line(runner, tmp_path):
    missing = tmp_path / "vit_b_s4p.pth"
    result = runner.invoke(app, ["weights", "import", str(missing), "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: {missing}: no such file or folder"
    assert all(not line.startswith("error") for line in lines[:-1]) and "Traceback" not in result.output
    assert not (tmp_path / "out.pt").exists()


def test_weights_import_cli_round_trip(runner, tmp_path):
    source = _mdf_model(seed=8)
    path = tmp_path / "mdf.pth"
    torch.save({"model": official_mdf(source), "previous_best_avg_mIoU": np.float64(70.0)}, path)
    out = tmp_path / "ours.pt"
    result = runner.invoke(app, ["weights", "import", str(path), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["datasets"] == ["vaihingen", "potsdam", "openearthmap", "loveda"] and report["unmapped"] == []
    _, spec, _ = load_checkpoint(out)
    assert spec.moe and spec.preset == "vit-nano"
    before = out.read_bytes()
    again = runner.invoke(app, ["weights", "import", str(path), "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr and out.read_bytes() == before
    text = runner.invoke(app, ["weights", "import", str(path), "-o", str(out), "--overwrite"])
    assert text.exit_code == 0 and "vit-nano" in text.stdout and "MoE-MDF" in text.stdout


def test_weights_import_refuses_a_pickle_payload(runner, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "meta": _Payload(marker)}, path)
    result = runner.invoke(app, ["weights", "import", str(path), "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 2 and "refused" in result.stderr
    assert not marker.exists()


def test_weights_import_of_an_mae_checkpoint_sums_up_its_decoder(runner, tmp_path):
    import argparse

    from s5cli.models.known_heads import known_head
    from s5cli.models.network import build_model
    from s5cli.models.spec import ModelSpec
    from s5cli_tests.models.official_keys import mae_decoder, timm_vit

    model = build_model(ModelSpec(preset="vit-nano", heads=[known_head("isaid", 16)]))
    state = {**timm_vit(model), **mae_decoder(model.backbone.embed_dim)}
    path = tmp_path / "vit-b-checkpoint-1599.pth"
    torch.save({"model": state, "epoch": 1599, "args": argparse.Namespace(model="mae_vit_base_patch16")}, path)
    result = runner.invoke(app, ["weights", "import", str(path), "-o", str(tmp_path / "ours.pt")])
    assert result.exit_code == 0, result.output
    assert (
        "not mapped: decoder_blocks.* (2 tensors)" in result.stderr
        and "not mapped: norm.* (2 tensors)" in result.stderr
    )
    assert "vit-nano (heads isaid)" in result.stdout
