"""Our checkpoint format: one torch file that rebuilds the model without any other input.

    {"format": "s5cli", "version": 1,
     "spec": ModelSpec as plain data (preset, heads with classes and palettes, input bands/mean/std/gsd),
     "state_dict": {name: tensor}, "config": resolved config dict or None, "extra": dict,
     "checksum": {"algorithm": "crc32", "value": int}}

Everything stored is tensors, dicts, lists, tuples, str, int, float, bool or None, so the file loads
with `torch.load(weights_only=True)`: a file whose pickle would import anything else (and so could
run code) is refused before anything of it runs. Optimizer and scheduler state dicts fit this rule.

A file is checked before any of it is used: the checksum of the tensors (names, dtypes, shapes and
bytes; files written before it existed have none and skip this step), real and finite weights, a valid
spec, and every tensor's shape against the model the spec describes, worked out on the meta device, so
that a crafted spec (a 65536 px position embedding) allocates nothing before it is refused.
"""

from __future__ import annotations

import argparse
import enum
import os
import pickle
import zipfile
import zlib
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
CHECKSUM = "crc32"  # detects flipped or truncated tensor bytes; zlib's crc32 runs at about 2 GB/s


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
    state = {k: v.detach() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec.model_dump(mode="json"),
        "state_dict": state,
        "config": plain(config, "config"),
        "extra": plain(extra or {}, "extra"),
        "checksum": {"algorithm": CHECKSUM, "value": tensor_checksum(state)},
    }
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def tensor_checksum(state: dict[str, torch.Tensor]) -> int:
    """CRC-32 of a state dict: every tensor's name, dtype, shape and bytes, in name order."""
    crc = 0
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        crc = zlib.crc32(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode(), crc)
        if tensor.numel():
            crc = zlib.crc32(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()), crc)
    return crc


def check_tensors(state: dict, path: str | os.PathLike[str]) -> None:
    """Every entry is a real tensor with finite values (NaN or inf weights would predict garbage)."""
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise InputError(f"weights entry '{name}' is a {type(tensor).__name__}, not a tensor", path)
        if tensor.is_complex():
            raise InputError(f"weights entry '{name}' holds complex numbers ({tensor.dtype})", path)
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InputError(f"weights entry '{name}' holds {bad} NaN or infinite value(s)", path)


def _check_checksum(ckpt: dict, path: str | os.PathLike[str]) -> None:
    """Verify the stored checksum (checkpoints written before it existed have none)."""
    stored = ckpt.get("checksum")
    if stored is None:
        return
    if not isinstance(stored, dict) or stored.get("algorithm") != CHECKSUM or not isinstance(stored.get("value"), int):
        raise InputError(f"checksum entry is not a {CHECKSUM} value", path)
    if tensor_checksum(ckpt["state_dict"]) != stored["value"]:
        raise InputError("the weights do not match their checksum: the file is corrupted", path)


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
    check_tensors(ckpt["state_dict"], path)
    _check_checksum(ckpt, path)
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


def check_shapes(spec: ModelSpec, state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """The weights are exactly the tensors of the model `spec` describes (built on the meta device: no memory)."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    except (ValueError, RuntimeError, TypeError) as exc:  # e.g. options no layer can be built with
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"checkpoint spec describes no buildable model ({first})", path) from None
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise InputError(f"weights do not fit the spec: missing {missing[:3]}, unexpected {unexpected[:3]}", path)
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise InputError(
                f"weights do not fit the spec: '{name}' is {tuple(state[name].shape)}, the spec makes it {shape}", path
            )


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[S5Model, ModelSpec, dict]:
    """Rebuild the model of a checkpoint (eval mode) on `device`; returns (model, spec, checkpoint minus weights)."""
    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt, path)
    check_shapes(spec, ckpt["state_dict"], path)
    try:
        with torch.device(device):
            model = build_model(spec)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (MemoryError, torch.OutOfMemoryError):
        raise InputError(f"not enough memory for this model ({spec.preset}) on {device}", path) from None
    rest = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model.eval(), spec, rest
