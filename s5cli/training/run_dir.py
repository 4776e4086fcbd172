"""The run directory of a training stage (pretrain, finetune): what lives in it and when it may change.

```
RUN_DIR/
├── model.pt       THE MODEL: pass it to predict, evaluate, export and finetune --init. The best
│                  validation mean so far when the run validates, else the final weights
├── last.pt        the weights after the last iteration: written when the run finishes
├── config.yaml    the resolved config; its paths are relative to RUN_DIR, so the folder can move with its data
├── metrics.csv    one row per log interval / validation (logs.MetricsLog)
├── curves.png     the columns of metrics.csv against the iteration
├── states/        state_00002000.pt ...: training states that --resume continues from; not models
└── tensorboard/   event files, when tensorboard is installed
```

The rules, in one place for both stages:
- A new run refuses a folder that holds anything unless `--overwrite`; `--resume` continues from the
  newest state in `states/`. A finished run (it has last.pt) cannot be resumed, and a run without a
  state has nothing to resume: both are errors that say so, before any work.
- Nothing is written before the first optimiser step of the process is done (`start_run`), so a run
  stopped earlier, by an error, Ctrl-C, SIGTERM, SIGKILL or a full disk, leaves nothing behind and
  an earlier run in the same folder stays byte-identical, even under `--overwrite`: its files are
  replaced only then.
"""

from __future__ import annotations

import os
import re
import shutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from s5cli.errors import InputError, OutputExistsError
from s5cli.geo.files import atomic_output, portable_path

_STATE_RE = re.compile(r"^state_(\d{8})\.pt$")
_OURS = ("config.yaml", "metrics.csv", "curves.png", "model.pt", "last.pt", "states", "tensorboard")
_CONFIG_HEADER = "# The run's resolved config. Relative paths are relative to this folder (the run directory).\n"


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
    def states_dir(self) -> Path:
        """Folder of resumable training states."""
        return self.root / "states"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event folder."""
        return self.root / "tensorboard"

    @property
    def model(self) -> Path:
        """The model to use: the best validation so far, else the final weights."""
        return self.root / "model.pt"

    @property
    def last(self) -> Path:
        """The weights after the last iteration; its presence marks a finished run."""
        return self.root / "last.pt"

    @property
    def finished(self) -> bool:
        """True when the run completed all its iterations."""
        return self.last.is_file()

    def state_path(self, iteration: int) -> Path:
        """Path of the training state saved after `iteration` iterations."""
        return self.states_dir / f"state_{iteration:08d}.pt"

    def states(self) -> list[tuple[int, Path]]:
        """Saved training states, oldest first, as (iteration, path)."""
        if not self.states_dir.is_dir():
            return []
        found = []
        for p in self.states_dir.iterdir():
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

    def share_last_as_model(self) -> None:
        """model.pt = last.pt, as a hard link where the file system has them (no second copy of the weights)."""
        with atomic_output(self.model, overwrite=True) as tmp:
            try:
                os.link(self.last, tmp)
            except OSError:
                shutil.copyfile(self.last, tmp)

    def write_text(self, path: Path, text: str) -> None:
        """Replace a file in the run dir atomically."""
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(text, encoding="utf-8")


def _remove_ours(root: Path) -> None:
    for name in _OURS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_run_dir(root: str | os.PathLike[str], resume: bool = False, overwrite: bool = False) -> RunDir:
    """Validate the run directory before any work (no writes); every refusal says what to do instead."""
    run = RunDir(Path(root))
    if resume and overwrite:
        raise InputError("--resume and --overwrite contradict each other; give one", run.root)
    if run.root.exists() and not run.root.is_dir():
        raise InputError("is not a folder", run.root)
    if resume:
        if run.finished:
            raise InputError(
                f"this run is finished, nothing to resume; its model is {run.model}"
                " (train again with --overwrite, or into another -o)",
                run.root,
            )
        if run.latest_state() is None:
            raise InputError(
                f"nothing to resume: no training state in {run.states_dir} (a run saves one every "
                "checkpoint_every iterations); start it again with --overwrite",
                run.root,
            )
    elif not overwrite and run.root.is_dir() and any(run.root.iterdir()):
        raise OutputExistsError(run.root)
    return run


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def start_run(run: RunDir, config_text: str, overwrite: bool = False) -> None:
    """Rank 0, once the first optimiser step is done: config.yaml written, an overwritten run's files replaced.

    The previous run's files go only once the new config.yaml is complete on disk (a full disk keeps
    them); a failure here removes the folders this call created.
    """
    created = _missing_folders(run.root)
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        with atomic_output(run.config, overwrite=True) as tmp:
            tmp.write_text(config_text, encoding="utf-8")
            if overwrite:
                _remove_ours(run.root)
        run.states_dir.mkdir(exist_ok=True)
    except BaseException:
        for folder in created:  # deepest first; what another process put there stays
            if folder.is_dir() and folder == run.root:
                _remove_ours(folder)
            try:
                folder.rmdir()
            except OSError:
                break
        raise


# ---- config.yaml: paths relative to the run directory ------------------------------------------------


def _holds_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(_holds_path(arg) for arg in typing.get_args(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _map_paths(data: Any, cls: type[BaseModel], convert: Any, entries: tuple[str, ...], prefix: str = "") -> Any:
    """A copy of config data with every Path field, and every dataset YAML among `entries`, passed through `convert`."""
    from s5cli.datasets.registry import is_dataset_yaml

    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, info in cls.model_fields.items():
        value = out.get(name)
        if value is None:
            continue
        dotted = f"{prefix}{name}"
        annotation = info.annotation
        origin = typing.get_origin(annotation)
        if _holds_path(annotation) and origin is list and isinstance(value, list):
            out[name] = [convert(v) if isinstance(v, str) else v for v in value]
        elif _holds_path(annotation) and origin is not dict and isinstance(value, str):
            out[name] = convert(value)
        elif dotted in entries:
            values = value if isinstance(value, list) else [value]
            mapped = [convert(v) if isinstance(v, str) and is_dataset_yaml(v) else v for v in values]
            out[name] = mapped if isinstance(value, list) else mapped[0]
        for model in _models_in(annotation):
            if origin is dict and isinstance(value, dict):
                out[name] = {k: _map_paths(v, model, convert, entries, f"{dotted}.{k}.") for k, v in value.items()}
            elif isinstance(value, dict):
                out[name] = _map_paths(value, model, convert, entries, f"{dotted}.")
    return out


def _dataset_entries(cls: type[BaseModel]) -> tuple[str, ...]:
    return tuple(getattr(cls, "DATASET_ENTRIES", ()))


def absolute_paths(data: dict[str, Any], cls: type[BaseModel], base: str | os.PathLike[str]) -> dict[str, Any]:
    """Config data with its relative paths made absolute against `base` (the run dir, or the working folder)."""
    root = os.path.abspath(base)

    def convert(value: str) -> str:
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(root, value))

    return _map_paths(data, cls, convert, _dataset_entries(cls))


def relative_paths(data: dict[str, Any], cls: type[BaseModel], run: RunDir) -> dict[str, Any]:
    """Config data (paths relative to the working folder) with its paths relative to the run directory."""
    return _map_paths(data, cls, lambda value: portable_path(value, run.root), _dataset_entries(cls))


def run_config_text(cfg: BaseModel, run: RunDir) -> str:
    """config.yaml's text: the resolved config with its paths relative to the run directory."""
    from s5cli.config import config_to_dict

    data = relative_paths(config_to_dict(cfg), type(cfg), run)
    return _CONFIG_HEADER + yaml.safe_dump(data, sort_keys=False)


def read_run_config(run: RunDir, cls: type[BaseModel]) -> dict[str, Any]:
    """A run's saved config.yaml as config data, its paths absolute (so it resumes from any working folder)."""
    from s5cli.config import read_yaml

    return absolute_paths(read_yaml(run.config), cls, run.root)


def config_changes(run: RunDir, cfg: BaseModel, free: tuple[str, ...] = ()) -> list[str]:
    """Top-level config keys whose values differ from the run's saved config.yaml (keys in `free` skipped)."""
    from s5cli.config import config_to_dict

    if not run.config.is_file():
        return []
    old = {k: v for k, v in read_run_config(run, type(cfg)).items() if k not in free}
    new = absolute_paths(config_to_dict(cfg), type(cfg), os.getcwd())
    cur = {k: v for k, v in new.items() if k not in free}
    return sorted(k for k in set(old) | set(cur) if old.get(k) != cur.get(k))
