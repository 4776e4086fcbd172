"""Interruption: SIGKILL mid-run then --resume (exact weights) or a rerun; a full disk while writing.

Killed runs are real processes (`python -m s5cli ...`); references and resumes run in this process with
one thread, as the killed ones do (OMP_NUM_THREADS=1), so the weights must match bit for bit.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyogrio
import pytest
import rasterio
import torch

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import DATA, REPO, invoke, one_line_error, succeeded

PRETRAIN_TINY = REPO / "configs" / "pretrain" / "tiny.yaml"
FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, like the killed subprocesses: the same float reductions in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def kill_when(args: list, ready: Callable[[], bool], log: Path, timeout: float = 240.0) -> None:
    """Start `python -m s5cli ARGS`, SIGKILL it as soon as `ready()` holds; fail if it ends first."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s5cli", "-q", *map(str, args)],
            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                assert proc.poll() is None, f"ended (exit {proc.returncode}) before the kill:\n{log.read_text()}"
                assert time.monotonic() < deadline, "never became ready"
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()


def newest_state(run: Path) -> int:
    """Iteration of the newest training state in a run directory (0: none yet)."""
    states = [int(p.stem.split("_")[1]) for p in (run / "states").glob("state_*.pt")] if run.is_dir() else []
    return max(states, default=0)


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict of a final checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path, note: str) -> None:
    """Every tensor equal (torch.equal), same names."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys(), note
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert different == [], f"{note}: {len(different)} tensors differ, e.g. {different[:3]}"


def _after(condition: Callable[[], bool], seconds: float) -> Callable[[], bool]:
    """A condition that holds `seconds` after `condition` first held."""
    since: list[float] = []

    def ready() -> bool:
        if not since and condition():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= seconds

    return ready


def _kill_resume_compare(runner, tmp_path: Path, command: str, base: list, iterations: int) -> None:
    """An uninterrupted run; the same run killed at a random moment after a random state, then resumed."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    succeeded(invoke(runner, "-q", command, *base, "-o", whole))
    rng = random.Random()
    step, pause = rng.randrange(2, iterations // 2 + 1, 2), rng.uniform(0.0, 0.2)  # mid-step or mid-save
    note = f"killed {pause:.3f} s after state {step} of {iterations}"
    kill_when([command, *base, "-o", cut], _after(lambda: newest_state(cut) >= step, pause), tmp_path / "kill.log")
    assert not (cut / "last.pt").exists() and newest_state(cut) >= step, note
    succeeded(invoke(runner, "-q", command, "-o", cut, "--resume"))  # the config is the run's own
    assert_same_weights(whole / "last.pt", cut / "last.pt", note)
    assert sorted(p.name for p in (cut / "states").iterdir() if p.name.startswith(".")) == []  # no temp left


def test_pretrain_killed_and_resumed_equals_an_uninterrupted_run(runner, tmp_path: Path) -> None:
    base = [
        "--config", PRETRAIN_TINY, "--data-root", DATA, "--unlabeled-folder", DATA / "million-aid",
        "--iterations", 16, "--checkpoint-every", 2, "--eval-every", 0, "--amp", "off",
    ]  # fmt: skip
    _kill_resume_compare(runner, tmp_path, "pretrain", base, 16)


def test_finetune_killed_and_resumed_equals_an_uninterrupted_run(runner, tmp_path: Path) -> None:
    base = [
        "--config", FINETUNE_TINY, "--datasets", "potsdam,dior-r", "--data-root", DATA,
        "--iterations", 16, "--checkpoint-every", 2, "--eval-every", 0, "--amp", "off",
    ]  # fmt: skip
    _kill_resume_compare(runner, tmp_path, "finetune", base, 16)


# ---- predict ----------------------------------------------------------------------------------------


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_predict_killed_mid_scene_leaves_no_output_and_the_rerun_cleans_up(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "big.tif", width=2048, height=2048, nodata_border=0)  # ~2 s of vit-nano
    out = tmp_path / "out"
    out.mkdir()
    args = [scene, "-o", out / "o.gpkg", "--raster", out / "o.tif", "--checkpoint", ckpts["seg"]]

    def predicting() -> bool:  # the working class raster exists: tiles are being predicted and stitched
        return any(p.suffix == ".tif" for d in out.glob(".s5-predict.tmp-*") for p in d.iterdir())

    kill_when(["predict", *args], _after(predicting, 0.3), tmp_path / "kill.log")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []  # no output at all
    stale = _hidden(out)
    assert stale and all(".tmp-" in name for name in stale)  # SIGKILL leaves hidden temps: no code runs
    result = invoke(runner, "predict", *args, "--json")
    succeeded(result)
    assert sorted(p.name for p in out.iterdir()) == ["o.gpkg", "o.qml", "o.tif", "o.tif.aux.xml"]  # no stale temps
    with rasterio.open(out / "o.tif") as cog:
        assert cog.shape == (2048, 2048) and (cog.read(1, window=((0, 64), (0, 64))) != 255).all()
    assert pyogrio.read_info(out / "o.gpkg", layer="big")["features"] > 0


def test_stale_temps_of_live_processes_and_other_hosts_are_kept(tmp_path: Path) -> None:
    from s5cli.geo.files import atomic_output, clean_stale_temps, temp_prefix

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = temp_prefix("x").rsplit("@", 1)[1]
    stale = tmp_path / f".a.tmp-{dead_pid}@{host}abc.tif"
    stale_dir = tmp_path / f".s5-predict.tmp-{dead_pid}@{host}xyz"
    mine = tmp_path / f"{temp_prefix('b')}def.tif"
    elsewhere = tmp_path / f".c.tmp-{dead_pid}@another_host-ghi.tif"
    user = tmp_path / ".notes.tmp-1.txt"
    for path in (stale, mine, elsewhere, user):
        path.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "work.tif").write_text("x")
    assert sorted(clean_stale_temps(tmp_path)) == sorted([stale, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, elsewhere, user))
    stale.write_text("x")  # an atomic write cleans its folder first
    with atomic_output(tmp_path / "d.txt") as tmp:
        tmp.write_text("done")
    assert not stale.exists() and (tmp_path / "d.txt").read_text() == "done"


# ---- a full disk ------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_predict_on_a_full_disk(runner, tmp_path: Path, ckpts, monkeypatch) -> None:
    from s5cli.inference import sinks

    scene = scenes.make_scene(tmp_path / "s.tif", width=200, height=200)
    out = tmp_path / "out"
    args = [scene, "-o", out / "o.gpkg", "--raster", out / "o.tif", "--checkpoint", ckpts["seg"]]
    with monkeypatch.context() as patch:  # the working raster's writer fails (scratch folder beside the outputs)
        patch.setattr(sinks.GeoTiffSink, "write", _enospc)
        line = one_line_error(invoke(runner, "predict", *args), "No space left on device")
    assert line == f"error: {out / 'o.gpkg'}: No space left on device"
    assert sorted(out.iterdir()) == []
    with monkeypatch.context() as patch:  # GDAL's own error while writing the COG, with the disk (nearly) full
        from rasterio.errors import RasterioIOError

        from s5cli.inference import scene as scene_module

        def gdal_fails(*args, **kwargs):
            raise RasterioIOError("Write failed. See previous exception for details.")

        patch.setattr(scene_module, "write_cog", gdal_fails)
        patch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
        line = one_line_error(invoke(runner, "predict", *args), "No space left on device")
    assert line == f"error: {out / 'o.tif'}: No space left on device"
    assert sorted(out.iterdir()) == []
    succeeded(invoke(runner, "predict", *args))  # space again: the same command completes


def test_checkpoint_save_on_a_full_disk(runner, tmp_path: Path, ckpts, monkeypatch) -> None:
    out = tmp_path / "out"
    real_save = torch.save

    def half_written(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04" + b"\0" * 1000)  # a partial zip, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", half_written)
        line = one_line_error(invoke(runner, "export", ckpts["seg"], "--dataset", "demo", "-o", out / "e.pt"))
    assert line == f"error: {out / 'e.pt'}: No space left on device"  # the output, not its hidden temp
    assert sorted(out.iterdir()) == []

    def zip_writer_fails(obj, f, *args, **kwargs):  # what torch raises when a write comes up short
        real_save(obj, f, *args, **kwargs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 19008 vs 18896")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", zip_writer_fails)
        patch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
        line = one_line_error(invoke(runner, "export", ckpts["seg"], "--dataset", "demo", "-o", out / "e.pt"))
    assert line == f"error: {out / 'e.pt'}: No space left on device"
    assert sorted(out.iterdir()) == []
    # A training state: the run stops with one line; the states written before stay whole.
    base = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--eval-every", 0]
    run = out / "run"
    calls = {"n": 0}

    def second_state_fails(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            _enospc()
        real_save(obj, f, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", second_state_fails)
        result = invoke(runner, "-q", "finetune", *base, "--iterations", 4, "--checkpoint-every", 1, "-o", run)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and lines[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert lines[-1].endswith("state_00000002.pt: No space left on device"), lines[-1]
    assert sorted(p.name for p in (run / "states").iterdir()) == ["state_00000001.pt"]
    succeeded(invoke(runner, "-q", "finetune", "-o", run, "--resume"))  # and it resumes from it
    assert (run / "model.pt").is_file()


def _can_mount_tmpfs() -> bool:
    root = sys.platform == "linux" and hasattr(os, "geteuid") and os.geteuid() == 0
    return root and shutil.which("mount") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root to mount a small tmpfs")
def test_predict_on_a_real_full_tmpfs(tmp_path: Path, ckpts) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        scene = scenes.make_scene(tmp_path / "big.tif", width=1500, height=1500, nodata_border=0)
        for target in (["--raster", small / "o.tif"], ["-o", small / "o.gpkg"]):
            proc = subprocess.run(
                [sys.executable, "-m", "s5cli", "predict", scene, *target, "--checkpoint", ckpts["seg"]],
                cwd=REPO, env=ENV, capture_output=True, text=True,
            )  # fmt: skip
            lines = proc.stderr.splitlines()
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            # GDAL may print its own diagnostics first; ours is the last line, and the only error line
            assert [ln for ln in lines if ln.startswith("error: ")] == lines[-1:], proc.stderr
            assert lines[-1].endswith("No space left on device"), proc.stderr
            assert sorted(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)])
