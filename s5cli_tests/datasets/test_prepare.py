import json
from pathlib import Path

import pytest
import torch

from s5cli.cli import app
from s5cli.datasets.prepare import prepare_dataset
from s5cli.datasets.registry import get_dataset
from s5cli.errors import InputError, OutputExistsError


def test_dota_patches_load_like_the_raw_layout(data_dir: Path, tmp_path: Path) -> None:
    root = data_dir / "dota-v2.0"
    counts = prepare_dataset("dota-v2.0", root, tmp_path / "out", patch_size=32, gap=8)
    assert counts == {"train": 5, "val": 4, "test": 2}
    names = sorted(p.name for p in (tmp_path / "out" / "train" / "images").iterdir())
    assert names[:2] == ["P0000__32__0___0.png", "P0000__32__0___8.png"]
    raw = get_dataset("dota-v2.0", root, "train", patch_size=32, gap=8)
    cut = get_dataset("dota-v2.0", tmp_path / "out", "train", patch_size=32)
    assert len(cut) == len(raw) == 5
    by_name = {Path(cut[i]["path"]).stem: cut[i] for i in range(len(cut))}
    for i in range(len(raw)):
        a = raw[i]
        b = by_name[f"{Path(a['path']).stem}__32__{a['window'][0]}___{a['window'][1]}"]
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["truncated"], b["truncated"])
        assert torch.equal(a["difficult"], b["difficult"])
        assert torch.allclose(a["polygons"], b["polygons"])
    assert not (tmp_path / "out" / "test" / "labelTxt").exists()


def test_isaid_patches(data_dir: Path, tmp_path: Path) -> None:
    counts = prepare_dataset("isaid", data_dir / "isaid", tmp_path / "out", splits=["val"], patch_size=32, gap=16)
    raw = get_dataset("isaid", data_dir / "isaid", "val", crop_size=32, stride=16)
    cut = get_dataset("isaid", tmp_path / "out", "val", crop_size=32)
    assert counts == {"val": len(raw)} and len(cut) == len(raw)
    assert sorted(torch.cat([cut[i]["mask"].flatten() for i in range(len(cut))]).unique().tolist()) == sorted(
        torch.cat([raw[i]["mask"].flatten() for i in range(len(raw))]).unique().tolist()
    )


def test_refusals(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="potsdam needs no preparing"):
        prepare_dataset("potsdam", data_dir / "potsdam", tmp_path / "p")
    (tmp_path / "exists").mkdir()
    with pytest.raises(OutputExistsError):
        prepare_dataset("dota-v1.0", data_dir / "dota-v1.0", tmp_path / "exists")
    with pytest.raises(InputError, match="gap"):
        prepare_dataset("dota-v1.0", data_dir / "dota-v1.0", tmp_path / "g", patch_size=32, gap=40)
    assert not (tmp_path / "p").exists() and not (tmp_path / "g").exists()


def test_cli(runner, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "patches"
    args = ["prepare", "dota-v1.0", "--data-root", str(data_dir), "-o", str(out), "--patch-size", "32", "--gap", "8"]
    result = runner.invoke(app, [*args, "--splits", "val", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["patches"] == {"val": 4}
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    wrong = runner.invoke(app, ["prepare", "dota-v1.0", "--root", str(data_dir / "loveda"), "-o", str(tmp_path / "w")])
    assert wrong.exit_code == 2 and "does not look like dota-v1.0" in wrong.output
