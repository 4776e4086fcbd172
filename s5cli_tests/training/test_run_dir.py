from pathlib import Path

import pytest

from s5cli.errors import InputError, OutputExistsError
from s5cli.training.run_dir import check_run_dir, prepare_run_dir


def test_existing_run_needs_resume_or_overwrite(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "run")
    run.config.write_text("a: 1\n")
    with pytest.raises(OutputExistsError):
        check_run_dir(run.root)
    assert check_run_dir(run.root, resume=True).root == run.root
    with pytest.raises(InputError, match="contradict"):
        check_run_dir(run.root, resume=True, overwrite=True)


def test_overwrite_removes_only_run_files(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "run")
    run.config.write_text("a: 1\n")
    run.state_path(5).write_bytes(b"x")
    (run.root / "notes.txt").write_text("mine")
    prepare_run_dir(run.root, overwrite=True)
    assert not run.config.exists() and run.states() == []
    assert (run.root / "notes.txt").read_text() == "mine"


def test_latest_state_and_pruning(tmp_path: Path) -> None:
    run = prepare_run_dir(tmp_path / "run")
    for it in (20, 100, 3):
        run.state_path(it).write_bytes(b"x")
    (run.checkpoints / "state_junk.pt").write_bytes(b"x")
    assert run.latest_state() == run.checkpoints / "state_00000100.pt"
    run.prune_states(2)
    assert [it for it, _ in run.states()] == [20, 100]


def test_a_file_is_not_a_run_dir(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_run_dir(f, resume=True)
