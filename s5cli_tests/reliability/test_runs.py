"""Run directories under hostile use: resuming what cannot be resumed, stops before the first step, moved runs.

The rules (s5cli/training/run_dir.py): a finished run or a run without a training state refuses --resume
and says why; nothing is written before the first optimiser step, so a run stopped earlier (an error,
Ctrl-C, SIGTERM, a full disk) leaves nothing, and an earlier run in the folder stays byte-identical even
under --overwrite; a training state is not a model; config.yaml's paths follow the run when it moves.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import DATA, REPO, invoke, last_line_error, one_line_error, snapshot, succeeded

PRETRAIN_TINY = REPO / "configs" / "pretrain" / "tiny.yaml"
FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"
PRETRAIN = [
    "--config", PRETRAIN_TINY, "--data-root", DATA, "--iterations", 2, "--eval-every", 0,
    "--checkpoint-every", 0, "--amp", "off",
]  # fmt: skip
FINETUNE = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--iterations", 4]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny pre-training run without any training state (checkpoint_every 0)."""
    from typer.testing import CliRunner

    run = tmp_path_factory.mktemp("finished") / "run"
    succeeded(invoke(CliRunner(), "-q", "pretrain", *PRETRAIN, "--unlabeled-folder", DATA / "million-aid", "-o", run))
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml", "curves.png", "last.pt", "metrics.csv", "model.pt", "states",
    ]  # fmt: skip
    return run


@pytest.fixture()
def finished(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def test_resume_on_a_finished_run_is_refused_and_changes_nothing(runner, finished: Path) -> None:
    before = snapshot(finished)
    line = one_line_error(invoke(runner, "pretrain", "-o", finished, "--resume"))
    assert line == (
        f"error: {finished}: this run is finished, nothing to resume; its model is {finished / 'model.pt'} "
        "(train again with --overwrite, or into another -o)"
    )
    assert snapshot(finished) == before


def _junk_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "unlabeled"
    shutil.copytree(DATA / "million-aid", folder, ignore=shutil.ignore_patterns("data.py"))
    (folder / "train" / "junk.jpg").write_text("not a JPEG")  # read in the first batch
    return folder


def _stop_in_the_first_step(monkeypatch, how: str) -> None:
    from s5cli.pretrain import run as pretrain_run

    def stopped(*args, **kwargs):
        if how == "sigint":
            raise KeyboardInterrupt  # what Ctrl-C raises
        os.kill(os.getpid(), signal.SIGTERM)  # a real SIGTERM, as `timeout` and Slurm send it
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the step")

    monkeypatch.setattr(pretrain_run, "fixmatch_step", stopped)


@pytest.mark.parametrize("how", ["failure", "sigint", "sigterm"])
def test_overwrite_stopped_before_its_first_step_keeps_the_finished_run_byte_identical(
    runner, finished: Path, tmp_path: Path, monkeypatch, how: str
) -> None:
    before = snapshot(finished)
    folder = _junk_folder(tmp_path) if how == "failure" else DATA / "million-aid"
    if how != "failure":
        _stop_in_the_first_step(monkeypatch, how)
    result = invoke(runner, "-q", "pretrain", *PRETRAIN, "--unlabeled-folder", folder, "-o", finished, "--overwrite")
    if how == "failure":
        last_line_error(result, "junk.jpg: not a readable image")
    else:
        assert result.exit_code == {"sigint": 130, "sigterm": 143}[how], result.output
        assert result.stderr.splitlines()[-1] == {"sigint": "interrupted", "sigterm": "terminated"}[how]
        assert "Traceback" not in result.stderr
    assert snapshot(finished) == before


@pytest.mark.parametrize("how", ["sigint", "sigterm"])
def test_a_new_run_stopped_before_its_first_step_leaves_nothing(runner, tmp_path: Path, monkeypatch, how) -> None:
    _stop_in_the_first_step(monkeypatch, how)
    args = [*PRETRAIN, "--unlabeled-folder", DATA / "million-aid", "-o", tmp_path / "out" / "run"]
    result = invoke(runner, "-q", "pretrain", *args)
    assert result.exit_code == {"sigint": 130, "sigterm": 143}[how], result.output
    assert not (tmp_path / "out").exists()  # so nothing blocks the same command


def test_a_full_disk_at_the_first_write_leaves_no_run_folder(runner, tmp_path: Path, monkeypatch) -> None:
    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".config.tmp-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out" / "run"
    result = invoke(runner, "-q", "pretrain", *PRETRAIN, "--unlabeled-folder", DATA / "million-aid", "-o", out)
    assert last_line_error(result) == f"error: {out / 'config.yaml'}: No space left on device"
    assert sorted(tmp_path.iterdir()) == []


def test_a_run_without_a_state_has_nothing_to_resume(runner, tmp_path: Path, monkeypatch) -> None:
    from s5cli.errors import InputError
    from s5cli.pretrain import run as pretrain_run

    real, calls = pretrain_run.fixmatch_step, []

    def fails_in_the_second_step(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # two micro-batches per step: the first step completes
            raise InputError("a bad window", "scene.tif")
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_run, "fixmatch_step", fails_in_the_second_step)
    run = tmp_path / "run"
    last_line_error(invoke(runner, "-q", "pretrain", *PRETRAIN, "--unlabeled-folder", DATA / "million-aid", "-o", run))
    assert (run / "config.yaml").is_file() and not (run / "last.pt").exists()  # a step was done: the run stays
    before = snapshot(run)
    line = one_line_error(invoke(runner, "pretrain", "-o", run, "--resume"))
    assert line == (
        f"error: {run}: nothing to resume: no training state in {run / 'states'} (a run saves one every "
        "checkpoint_every iterations); start it again with --overwrite"
    )
    assert snapshot(run) == before
    line = one_line_error(invoke(runner, "pretrain", "-o", tmp_path / "nothing", "--resume"))
    assert "nothing to resume" in line and not (tmp_path / "nothing").exists()


# ---- states that cannot be resumed --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Potsdam fine-tuning run stopped after 2 iterations (its state: states/state_00000002.pt)."""
    from typer.testing import CliRunner

    run = tmp_path_factory.mktemp("stopped") / "run"
    result = invoke(CliRunner(), "-q", "finetune", *FINETUNE, "--stop-after", 2, "-o", run)
    succeeded(result)
    assert result.stdout == ""  # stopped: no model to name yet
    return run


def _state(run: Path) -> Path:
    return run / "states" / "state_00000002.pt"


def _another_model(state: dict) -> None:
    """The weights of another model (a DIOR-R detector) where the Potsdam run's are."""
    from s5cli.datasets.registry import DATASETS
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    head = HeadSpec(name="dior-r", task="detection", classes=list(DATASETS["dior-r"].classes))
    state["model"] = build_model(ModelSpec(preset="vit-nano", heads=[head], img_size=64)).state_dict()


def _corrupt_rng(state: dict) -> None:
    state["rng"][0]["torch"] = torch.zeros(7, dtype=torch.uint8)


STATE_CASES = {
    "another_model": (_another_model, "cannot restore its model weights (a state of another run or model?)"),
    "no_optimizer": (lambda s: s.pop("optimizer"), "this training state is incomplete (no optimizer entry)"),
    "corrupt_rng": (_corrupt_rng, "cannot restore its random-number states (a damaged state?)"),
}


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_a_state_that_does_not_fit_names_the_file_and_the_part(runner, stopped_run, tmp_path: Path, case) -> None:
    edit, fragment = STATE_CASES[case]
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    state = torch.load(_state(run), map_location="cpu", weights_only=True)
    edit(state)
    torch.save(state, _state(run))
    before = snapshot(run)
    line = last_line_error(invoke(runner, "-q", "finetune", "-o", run, "--resume"))
    assert line.startswith(f"error: {_state(run)}: {fragment}"), line
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "command", [["predict", "--checkpoint"], ["evaluate"], ["export"], ["finetune", "--init"], ["weights", "import"]]
)
def test_a_training_state_given_as_a_model_says_what_it_is_and_where_the_model_is(
    runner, stopped_run, finished: Path, tmp_path: Path, command: list[str]
) -> None:
    from s5cli.training.run_dir import RunDir

    scene = scenes.make_scene(tmp_path / "s.tif")
    finished_state = RunDir(finished).state_path(2)
    shutil.copy(_state(stopped_run), finished_state)  # a state beside a finished model
    for state, hint in (
        (finished_state, f"the run's model is {finished / 'model.pt'}"),
        (_state(stopped_run), "its run has no model yet: continue it with --resume, then use the run's model.pt"),
    ):
        args = {
            "predict": [scene, "-o", tmp_path / "o.gpkg", "--checkpoint", state],
            "evaluate": [state, "--datasets", "potsdam", "--data-root", DATA],
            "export": [state, "--dataset", "potsdam", "-o", tmp_path / "e.pt"],
            "finetune": [*FINETUNE, "--init", state, "-o", tmp_path / "new"],
            "weights": ["import", state, "-o", tmp_path / "w.pt"],
        }[command[0]]
        line = last_line_error(invoke(runner, "-q", command[0], *args))
        assert line == f"error: {state}: is a training state (what --resume continues from), not a model; {hint}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.tif"]  # `run` is the finished copy


# ---- a moved run ------------------------------------------------------------------------------------------


def test_a_moved_project_resumes_from_any_working_folder(runner, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    scenes.make_custom_dataset(project, "town")
    monkeypatch.chdir(project)  # every path relative, as a user types them
    args = ["--config", FINETUNE_TINY, "--datasets", "town.yaml", "--iterations", 2, "--eval-every", 0]
    succeeded(invoke(runner, "-q", "finetune", *args, "--stop-after", 1, "-o", "runs/town"))
    saved = yaml.safe_load(Path("runs/town/config.yaml").read_text())
    assert saved["datasets"] == ["../../town.yaml"] and saved["output"] == "."
    moved = tmp_path / "renamed"
    project.rename(moved)  # the demo renames its work folder the same way
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "-q", "finetune", "-o", moved / "runs" / "town", "--resume")
    succeeded(result)
    assert result.stdout.strip() == str(moved / "runs" / "town" / "model.pt")


# ---- predict's scratch folder under SIGTERM -------------------------------------------------------------


def test_predict_terminated_mid_scene_removes_its_scratch_folder(tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "big.tif", width=2048, height=2048, nodata_border=0)
    out = tmp_path / "out"
    out.mkdir()
    args = [scene, "-o", out / "o.gpkg", "--raster", out / "o.tif", "--checkpoint", ckpts["seg"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "s5cli", "-q", "predict", *map(str, args)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not any(p.suffix == ".tif" for d in out.glob(".s5-predict.tmp-*") for p in d.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "predict ended before the signal"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "terminated" and "Traceback" not in stderr
    assert sorted(out.iterdir()) == []  # no output, no temp file, no scratch folder


def test_evaluate_csv_on_a_full_disk_is_an_error(runner, ckpts, tmp_path: Path, monkeypatch) -> None:
    real = Path.write_text

    def full(self, *args, **kwargs):
        if ".tmp-" in self.name:
            real(self, "dataset,spl", encoding="utf-8")  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    args = [ckpts["potsdam"], "--datasets", "potsdam", "--data-root", DATA, "--max-images", 1]
    result = invoke(runner, "-q", "evaluate", *args, "-o", out / "metrics.csv", "--json")
    assert last_line_error(result) == f"error: {out / 'metrics.csv'}: No space left on device"
    assert result.stdout == "" and sorted(out.iterdir()) == []


# ---- a curate corpus left by a killed run -----------------------------------------------------------------


def test_a_corpus_left_by_a_sigkilled_curate_does_not_block_the_rerun(runner, tmp_path: Path) -> None:
    """SIGKILL before the first committed part: no code runs, so the rerun recognises the leftover."""
    from s5cli.curation.layout import lock_corpus

    scene = scenes.make_scene(tmp_path / "big.tif", width=1024, height=1024, nodata_border=0)
    out = tmp_path / "corpus"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}
    args = ["curate", scene, "-o", out, "--chip-size", 32, "--min-std", 0]  # 1024 chips: one part, at the end
    proc = subprocess.Popen(
        [sys.executable, "-m", "s5cli", "-q", *map(str, args)], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "images").is_dir() or not any((out / "images").rglob("*.tif")):
            assert proc.poll() is None and time.monotonic() < deadline, "curate ended before the kill"
            time.sleep(0.01)
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
    assert not list((out / "parts").rglob("part-*.json"))  # killed before its first committed part
    held = lock_corpus(out)  # while a live run holds the corpus, it is not a leftover
    one_line_error(invoke(runner, *args), "exists and won't be overwritten without --overwrite")
    held.close()
    result = invoke(runner, *args, "--json")
    succeeded(result)
    assert json.loads(result.stdout)["chips"] == 1024
