"""Our checkpoint format: one torch file that rebuilds the model without any other input.

    {"format": "s5cli", "version": 1,
     "spec": ModelSpec as plain data (preset, heads with classes and palettes, input bands/mean/std/gsd),
     "state_dict": {name: tensor}, "config": resolved config dict or None, "extra": dict}

Everything stored is tensors, dicts, lists, tuples, str, int, float, bool or None, so the file loads
with `torch.load(weights_only=True)`: a file whose pickle would import anything else (and so could
run code) is refused before anything of it runs. Optimizer and scheduler state dicts fit this rule.
"""

from __future__ import annotations

import argparse
import enum
import os
import pickle
import zipfile
from pathlib import Path, PurePath
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from s5cli.errors import InputError, UntrustedFileError
from s5cli.geo.files import atomic_output, check_input
from s5cli.models.network import S5Model, build_model
from s5cli.models.spec import ModelSpec, upgrade_spec

FORMAT = "s5cli"
VERSION = 1
# A training state (training/train_state.py): what --resume continues from, not a model.
TRAIN_STATE_FORMAT = "s5cli-train-state"


def plain(value: Any, where: str = "checkpoint") -> Any:
    """Convert a value to the types weights_only loading accepts; anything else is a TypeError naming it."""
    if type(value).__module__ == "numpy":  # numpy scalars (np.float64 is also a float) and arrays, e.g. metrics
        return torch.from_numpy(value) if getattr(value, "shape", ()) else value.item()
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, enum.Enum):
        return plain(value.value, where)
    if isinstance(value, bool | int | float | str):  # other subclasses of the builtins
        return type(value).__mro__[-2](value)
    if isinstance(value, dict):
        return {k if type(k) in (int, str) else str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored in a checkpoint")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: S5Model,
    config: dict | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write model spec, weights, resolved config and extra state (e.g. training state) atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec.model_dump(mode="json"),
        "state_dict": {k: v.detach() for k, v in model.state_dict().items()},
        "config": plain(config, "config"),
        "extra": plain(extra or {}, "extra"),
    }
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def official_globals() -> list:
    """The harmless non-tensor types released S5, MAE and mmcv-runner files hold, which safe_load may rebuild.

    - numpy scalars and dtypes (e.g. S5's best-mIoU float64): values rebuilt from raw bytes;
    - argparse.Namespace (MAE's training checkpoints keep their command line under ``args``): an
      attribute bag whose values are unpickled under the same rules, so it can hold nothing else.
    Every other global is still refused before anything of the file runs.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    kinds = ("float64", "float32", "float16", "int64", "int32", "bool")
    return [scalar, np.dtype, *(type(np.dtype(k)) for k in kinds), argparse.Namespace]


def _unsafe_globals(path: Path) -> list[str]:
    try:  # scans the pickle opcodes without running them
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # legacy (non-zip) files cannot be scanned; the message stays generic
        return []


def safe_load(path: str | os.PathLike[str], allow: list | None = None) -> Any:
    """torch.load(weights_only=True) with our errors: pickled code -> UntrustedFileError, bad file -> InputError.

    Args:
        path: the file.
        allow: extra globals known to be harmless (official_globals() for released files).
    """
    p = check_input(path, "file")
    try:
        with torch.serialization.safe_globals(allow or []):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _unsafe_globals(p) if "Weights only load failed" in str(exc) else []
        if not found and "global" not in str(exc).lower():  # e.g. a text file: no pickle at all
            raise InputError("not a PyTorch checkpoint (unreadable pickle)", p) from None
        what = f" ({', '.join(found[:3])})" if found else ""
        raise UntrustedFileError(
            f"refused: the file holds Python objects{what} that could run code when loaded; "
            "only plain weights are accepted",
            p,
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"not a readable PyTorch checkpoint, or truncated ({first})", p) from None


def refuse_train_state(obj: Any, path: str | os.PathLike[str]) -> None:
    """A training state where a model is expected: an InputError that says so and names the run's model."""
    if not isinstance(obj, dict) or obj.get("format") != TRAIN_STATE_FORMAT:
        return
    model = obj.get("model_file")
    where = Path(os.path.normpath(Path(path).parent / model)) if isinstance(model, str) else None
    if where is not None and where.is_file():
        hint = f"the run's model is {where}"
    else:
        hint = "its run has no model yet: continue it with --resume, then use the run's model.pt"
    raise InputError(f"is a training state (what --resume continues from), not a model; {hint}", path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict:
    """Read one of our checkpoints (weights_only); anything else is an InputError naming the path."""
    ckpt = safe_load(path)
    refuse_train_state(ckpt, path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError("not an s5cli checkpoint (official S5 files are converted with `s5 weights import`)", path)
    if ckpt.get("version") != VERSION:
        raise InputError(f"checkpoint format version {ckpt.get('version')} is not supported (need {VERSION})", path)
    missing = [k for k in ("spec", "state_dict") if not isinstance(ckpt.get(k), dict)]
    if missing:
        raise InputError(f"checkpoint lacks {', '.join(missing)}", path)
    return ckpt


def checkpoint_spec(ckpt: dict, path: str | os.PathLike[str] = "checkpoint") -> ModelSpec:
    """The ModelSpec stored in a checkpoint dict."""
    extra = ckpt.get("extra") if isinstance(ckpt.get("extra"), dict) else {}
    try:
        return ModelSpec.model_validate(upgrade_spec(ckpt["spec"], extra.get("input_sizes")))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(f"checkpoint spec is invalid at '{where}': {err['msg']}", path) from None


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[S5Model, ModelSpec, dict]:
    """Rebuild the model of a checkpoint (eval mode) on `device`; returns (model, spec, checkpoint minus weights)."""
    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt, path)
    with torch.device(device):
        model = build_model(spec)
    try:
        result = model.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise InputError(f"weights do not fit the spec ({str(exc).splitlines()[-1].strip()[:160]})", path) from None
    if result.missing_keys or result.unexpected_keys:
        raise InputError(
            f"weights do not fit the spec: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}",
            path,
        )
    rest = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model.eval(), spec, rest
