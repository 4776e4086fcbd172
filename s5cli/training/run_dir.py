"""The run directory of a training stage and what lives in it.

```
RUN_DIR/
├── config.yaml          the resolved config (also stored inside every checkpoint)
├── metrics.csv          one row per log interval / validation (logs.MetricsLog)
├── curves.png           the columns of metrics.csv against the iteration
├── checkpoints/         state_00002000.pt ...: resumable training states (train_state.py)
├── tensorboard/         event files, when tensorboard is installed
├── checkpoint.pt        the final model in the s5cli checkpoint format (predict / finetune --init)
└── best.pt              (finetune) the model at the best validation score so far
```
A new run refuses an existing directory unless `--overwrite` (which removes only the files above)
or `--resume` (which continues from the newest state in `checkpoints/`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s5cli.errors import InputError, OutputExistsError
from s5cli.geo.files import atomic_output

_STATE_RE = re.compile(r"^state_(\d{8})\.pt$")
_OURS = ("config.yaml", "metrics.csv", "curves.png", "checkpoint.pt", "best.pt", "checkpoints", "tensorboard")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        """The resolved config."""
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        """The metrics table."""
        return self.root / "metrics.csv"

    @property
    def curves(self) -> Path:
        """The PNG plot of the metrics."""
        return self.root / "curves.png"

    @property
    def checkpoints(self) -> Path:
        """Folder of resumable training states."""
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event folder."""
        return self.root / "tensorboard"

    @property
    def final(self) -> Path:
        """The final model checkpoint."""
        return self.root / "checkpoint.pt"

    @property
    def best(self) -> Path:
        """The model with the best validation score (finetune)."""
        return self.root / "best.pt"

    def state_path(self, iteration: int) -> Path:
        """Path of the training state saved after `iteration` iterations."""
        return self.checkpoints / f"state_{iteration:08d}.pt"

    def states(self) -> list[tuple[int, Path]]:
        """Saved training states, oldest first, as (iteration, path)."""
        if not self.checkpoints.is_dir():
            return []
        found = []
        for p in self.checkpoints.iterdir():
            m = _STATE_RE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_state(self) -> Path | None:
        """The newest training state, or None."""
        states = self.states()
        return states[-1][1] if states else None

    def prune_states(self, keep: int) -> None:
        """Delete all but the newest `keep` states (keep <= 0 keeps all)."""
        if keep <= 0:
            return
        for _, path in self.states()[:-keep]:
            path.unlink(missing_ok=True)

    def write_text(self, path: Path, text: str) -> None:
        """Replace a file in the run dir atomically."""
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def discard(self) -> None:
        """Remove this run's files (only ours), and the folder itself when nothing else is left in it."""
        _remove_ours(self.root)
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _remove_ours(root: Path) -> None:
    for name in _OURS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_run_dir(root: str | os.PathLike[str], resume: bool = False, overwrite: bool = False) -> RunDir:
    """Validate the run directory before any work (no writes): exists -> needs --resume or --overwrite."""
    run = RunDir(Path(root))
    if resume and overwrite:
        raise InputError("--resume and --overwrite contradict each other; give one", run.root)
    if run.root.exists():
        if not run.root.is_dir():
            raise InputError("is not a folder", run.root)
        if not resume and not overwrite and any(run.root.iterdir()):
            raise OutputExistsError(run.root)
    return run


def prepare_run_dir(root: str | os.PathLike[str], resume: bool = False, overwrite: bool = False) -> RunDir:
    """Create the run directory; with overwrite, remove the previous run's files (only ours)."""
    run = check_run_dir(root, resume, overwrite)
    if overwrite and run.root.is_dir():
        _remove_ours(run.root)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    return run


def config_changes(run: RunDir, new: dict[str, Any], free: tuple[str, ...] = ()) -> list[str]:
    """Top-level config keys whose values differ from the run's saved config.yaml (keys in `free` skipped)."""
    if not run.config.is_file():
        return []
    from s5cli.config import read_yaml

    old = {k: v for k, v in read_yaml(run.config).items() if k not in free}
    cur = {k: v for k, v in new.items() if k not in free}
    return sorted(k for k in set(old) | set(cur) if old.get(k) != cur.get(k))


def begin_run(run: RunDir, cfg: Any, resume_free: tuple[str, ...] = ()) -> None:
    """Rank 0, before training: warn about a resume with another config or no state, then write config.yaml."""
    from s5cli.config import config_to_dict, dump_config
    from s5cli.console import warn

    if cfg.resume:
        changed = config_changes(run, config_to_dict(cfg), resume_free)
        if changed:
            warn(f"resuming with a config that differs from the run's in: {', '.join(changed)}")
        if run.latest_state() is None:
            warn(f"{run.root}: no training state to resume from; starting from iteration 0")
    prepare_run_dir(run.root, cfg.resume, cfg.overwrite)
    run.write_text(run.config, dump_config(cfg))
