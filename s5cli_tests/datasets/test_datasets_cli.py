import json
from pathlib import Path

from s5cli.cli import app

EXPECTED = {
    "potsdam": {"train": 2, "test": 2},
    "vaihingen": {"train": 2, "test": 2},
    "loveda": {"train": 3, "val": 2, "trainval": 5, "test": 3},
    "openearthmap": {"train": 3, "val": 2, "test": 2},
    "isaid": {"train": 2, "val": 2, "test": 2},
    "dior-r": {"train": 2, "val": 2, "trainval": 4, "test": 2},
    "dota-v1.0": {"train": 2, "val": 1, "trainval": 3, "test": 1},
    "dota-v1.5": {"train": 2, "val": 1, "trainval": 3, "test": 1},
    "dota-v2.0": {"train": 2, "val": 1, "trainval": 3, "test": 1},
    "million-aid": {"all": 5, "train": 3, "test": 2},
}


def test_json_finds_every_fake_dataset(runner, data_dir: Path) -> None:
    result = runner.invoke(app, ["datasets", "--data-root", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)["datasets"]}
    for name, samples in EXPECTED.items():
        assert entries[name]["found"] is True, name
        assert entries[name]["samples"] == samples, name
        assert entries[name]["problems"] == {}, name
        assert entries[name]["folder"] == str(data_dir / name)
    assert entries["custom"]["found"] is None


def test_registry_without_root(runner) -> None:
    result = runner.invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0
    entries = {e["name"]: e for e in json.loads(result.stdout)["datasets"]}
    assert entries["potsdam"]["metric"] == "mF1" and entries["dior-r"]["num_classes"] == 20
    assert "found" not in entries["potsdam"]
    table = runner.invoke(app, ["datasets"])
    assert table.exit_code == 0 and "openearthmap" in table.output


def test_missing_and_wrong_folders(runner, tmp_path: Path, data_dir: Path) -> None:
    result = runner.invoke(app, ["datasets", "--data-root", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such folder" in result.output and "Traceback" not in result.output
    (tmp_path / "potsdam").mkdir()  # a folder that is not Potsdam
    result = runner.invoke(app, ["datasets", "--data-root", str(tmp_path), "--json"])
    assert result.exit_code == 0
    potsdam = next(e for e in json.loads(result.stdout)["datasets"] if e["name"] == "potsdam")
    assert potsdam["found"] is False and potsdam["samples"] == {"train": None, "test": None}
    assert "does not look like potsdam: expected 2_Ortho_RGB" in potsdam["problems"]["train"]


def test_named_dataset_in_a_wrong_folder_exits_2(runner, tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "loveda").mkdir()
    result = runner.invoke(app, ["datasets", "--data-root", str(tmp_path), "--datasets", "loveda"])
    assert result.exit_code == 2
    assert "does not look like loveda: expected {Train,Val,Test}/{Urban,Rural}/images_png" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["datasets", "--data-root", str(tmp_path), "--datasets", "dior-r"])
    assert result.exit_code == 2 and "no dior-r folder here" in result.output
    result = runner.invoke(app, ["datasets", "--data-root", str(data_dir), "--datasets", "DIOR,loveda", "--json"])
    assert result.exit_code == 0
    assert [e["name"] for e in json.loads(result.stdout)["datasets"]] == ["dior-r", "loveda"]
