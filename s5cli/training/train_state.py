"""Resumable training states: everything needed to continue a run exactly, loadable with weights_only.

A state file (`RUN_DIR/states/state_<iteration, 8 digits>.pt`) is a plain dict of tensors, numbers,
strings, lists and dicts, so `torch.load(weights_only=True)` reads it without running code:

| key        | content                                                                  |
|------------|--------------------------------------------------------------------------|
| format     | "s5cli-train-state", version 1                                           |
| iteration  | optimiser steps done                                                     |
| model      | the (unwrapped) model's state_dict                                       |
| optimizer  | optimizer.state_dict()                                                   |
| schedule   | {"iteration": n}                                                         |
| scaler     | GradScaler.state_dict() ({} when disabled)                               |
| ema        | {"module": state_dict, "updates": n} or None                             |
| rng        | one entry per rank: python (list of ints), numpy (tensor + ints), torch, cuda |
| data       | {stream name: {"epoch": e, "offset": batches consumed}}                  |
| config     | the resolved config as plain data                                        |
| world_size | ranks that wrote it (RNG states are restored only with the same count)   |
| best       | the best validation value so far (None before the first)                 |
| model_file | the run's model.pt relative to the state's folder (named when a state is given as a model) |

A state is not a model: predict, evaluate and export refuse it and name the run's model.pt
(models/checkpoint.py). A state that lacks an entry, or whose parts do not fit the run being resumed
(another model, another optimiser, a damaged RNG state), is an InputError naming the file and the part.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s5cli.errors import InputError, UntrustedFileError
from s5cli.geo.files import atomic_output
from s5cli.models.checkpoint import TRAIN_STATE_FORMAT as FORMAT

VERSION = 1
REQUIRED = ("iteration", "model", "optimizer", "schedule", "scaler", "rng", "data")


def capture_rng() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) RNG states as tensors and ints."""
    py_version, py_state, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # legacy global MT19937
    state: dict[str, Any] = {
        "python": [int(py_version), *(int(v) for v in py_state)],
        "python_gauss": None if py_gauss is None else float(py_gauss),
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the RNG states from `capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1:]), state["python_gauss"]))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: Path, state: dict[str, Any]) -> Path:
    """Write a training state atomically (a crash mid-write leaves the previous states intact)."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return path


def load_train_state(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a training state (weights_only=True); a foreign or broken file, or one lacking `required`: InputError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("no such training state", path) from None
    except pickle.UnpicklingError as exc:  # weights_only refused the pickle, or it is no pickle at all
        if "global" in str(exc).lower():
            raise UntrustedFileError(
                "refused: the file holds Python objects that could run code when loaded; "
                "only plain training states are accepted",
                path,
            ) from None
        raise InputError("cannot read this training state (not a PyTorch file)", path) from None
    except Exception as exc:  # unpickling errors come in many types; all mean "not ours"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read this training state ({first[:200]})", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError("is not an s5cli training state", path)
    if state.get("version", 0) > VERSION:
        raise InputError(f"training state version {state['version']} is newer than this s5cli reads", path)
    missing = [key for key in required if key not in state]
    if missing:
        raise InputError(f"this training state is incomplete (no {', '.join(missing)} entry); resume from an "
                         "older state, or start again with --overwrite", path)  # fmt: skip
    return state


@contextmanager
def restoring(path: Path, part: str, likely: str = "a damaged state") -> Iterator[None]:
    """Put one part of a state back; any failure is an InputError naming the file, the part and the likely cause."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot restore its {part} ({likely}?): {first}", path) from None
