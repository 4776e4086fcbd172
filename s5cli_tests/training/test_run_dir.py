import os
import re
from pathlib import Path

import pytest
import yaml

from s5cli.errors import InputError, OutputExistsError
from s5cli.finetune.config import FinetuneConfig
from s5cli.training.run_dir import (
    RunDir,
    absolute_paths,
    check_run_dir,
    read_run_config,
    run_config_text,
    start_run,
)


def _finished(root: Path) -> RunDir:
    run = RunDir(root)
    start_run(run, "a: 1\n")
    run.last.write_bytes(b"last")
    run.model.write_bytes(b"model")
    return run


def test_existing_run_needs_resume_or_overwrite(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    start_run(run, "a: 1\n")
    run.state_path(4).write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        check_run_dir(run.root)
    assert check_run_dir(run.root, resume=True).root == run.root
    assert check_run_dir(run.root, overwrite=True).root == run.root
    with pytest.raises(InputError, match="contradict"):
        check_run_dir(run.root, resume=True, overwrite=True)
    (tmp_path / "empty").mkdir()
    assert check_run_dir(tmp_path / "empty").root == tmp_path / "empty"  # an empty folder is no run


def test_a_finished_run_cannot_be_resumed_and_says_where_its_model_is(tmp_path: Path) -> None:
    run = _finished(tmp_path / "run")
    run.state_path(8).write_bytes(b"x")  # even with a state of its last iteration
    expected = f"this run is finished, nothing to resume; its model is {run.model}"
    with pytest.raises(InputError, match=re.escape(expected)):
        check_run_dir(run.root, resume=True)


@pytest.mark.parametrize("make", [False, True])
def test_a_run_without_a_state_has_nothing_to_resume(tmp_path: Path, make: bool) -> None:
    run = RunDir(tmp_path / "run")
    if make:
        start_run(run, "a: 1\n")
    with pytest.raises(InputError, match=r"nothing to resume: no training state in .*states"):
        check_run_dir(run.root, resume=True)


def test_start_run_creates_the_run_and_replaces_an_overwritten_one_only_then(tmp_path: Path) -> None:
    run = _finished(tmp_path / "run")
    (run.root / "notes.txt").write_text("mine")
    check_run_dir(run.root, overwrite=True)  # checking changes nothing
    assert run.last.read_bytes() == b"last"
    start_run(run, "b: 2\n", overwrite=True)
    assert sorted(p.name for p in run.root.iterdir()) == ["config.yaml", "notes.txt", "states"]
    assert run.config.read_text() == "b: 2\n" and (run.root / "notes.txt").read_text() == "mine"


def test_start_run_on_a_full_disk_keeps_the_old_run_and_leaves_no_new_folder(tmp_path: Path, monkeypatch) -> None:
    import errno

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    old = _finished(tmp_path / "old")
    before = {p.name: p.read_bytes() for p in old.root.iterdir() if p.is_file()}
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        start_run(old, "b: 2\n", overwrite=True)
    assert {p.name: p.read_bytes() for p in old.root.iterdir() if p.is_file()} == before
    new = RunDir(tmp_path / "a" / "b" / "new")
    with pytest.raises(OSError, match="No space left"):
        start_run(new, "b: 2\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # the folders it made are gone


def test_latest_state_and_pruning(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    start_run(run, "a: 1\n")
    for it in (20, 100, 3):
        run.state_path(it).write_bytes(b"x")
    (run.states_dir / "state_junk.pt").write_bytes(b"x")
    assert run.latest_state() == run.states_dir / "state_00000100.pt"
    run.prune_states(2)
    assert [it for it, _ in run.states()] == [20, 100]


def test_a_file_is_not_a_run_dir(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_run_dir(f, resume=True)


def test_config_yaml_paths_are_relative_to_the_run_and_read_back_absolute(tmp_path: Path, monkeypatch) -> None:
    """A run resumes from any working folder, and after its project folder was moved (the demo's rename)."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    monkeypatch.chdir(project)
    cfg = FinetuneConfig(
        output=Path("runs/x"),
        datasets=["potsdam", "data/trees.yaml"],
        data_root=Path("data"),
        dataset_settings={"potsdam": {"root": str(tmp_path / "elsewhere" / "potsdam")}},
        model={"init": "runs/s4p/model.pt"},
    )
    run = RunDir(Path("runs/x"))
    start_run(run, run_config_text(cfg, run))
    saved = yaml.safe_load(run.config.read_text())
    assert saved["output"] == "."
    assert saved["datasets"] == ["potsdam", "../../data/trees.yaml"]
    assert saved["data_root"] == "../../data" and saved["model"]["init"] == "../s4p/model.pt"
    assert saved["dataset_settings"]["potsdam"]["root"] == "../../../elsewhere/potsdam"
    moved = tmp_path / "moved"
    (project).rename(moved)
    monkeypatch.chdir("/")
    back = read_run_config(RunDir(moved / "runs" / "x"), FinetuneConfig)
    assert back["output"] == str(moved / "runs" / "x") and back["data_root"] == str(moved / "data")
    assert back["datasets"] == ["potsdam", str(moved / "data" / "trees.yaml")]
    assert back["model"]["init"] == str(moved / "runs" / "s4p" / "model.pt")
    assert back["dataset_settings"]["potsdam"]["root"] == str(tmp_path / "elsewhere" / "potsdam")
    assert absolute_paths({"datasets": ["/a/b.yaml", "c.yml"]}, FinetuneConfig, "/r")["datasets"] == [
        "/a/b.yaml",
        "/r/c.yml",
    ]
