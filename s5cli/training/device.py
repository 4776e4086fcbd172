"""Where and in which precision a model runs: the device choice and the mixed-precision policy.

Every stage asks here: training, predict, curation's teacher and evaluation.
- Device: `auto` is CUDA when available, else the CPU; `cuda` is this process's local GPU (torchrun's
  LOCAL_RANK); `cuda:N` is kept.
- Training (`resolve_precision`): `auto` follows S4P (AMP with a GradScaler on GPU): fp16 + GradScaler
  on CUDA; on CPU bfloat16 where the processor has native bf16 (AVX512-BF16 or AMX: bf16 ViT forwards
  1.2-1.6x faster on such CPUs), else float32. `off` disables autocast everywhere.
- Inference (`inference_precision`): `auto` is bfloat16 on CUDA (exact enough for an argmax, no loss to
  scale) and float32 on the CPU, so that CPU results do not depend on the processor.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch

from s5cli.errors import ConfigError
from s5cli.training.launch import torchrun_env

AmpMode = Literal["auto", "bf16", "fp16", "off"]


@dataclass(frozen=True)
class Precision:
    """The resolved autocast setting for one device."""

    device_type: str  # "cpu" or "cuda"
    dtype: torch.dtype | None  # None: no autocast (float32)

    @property
    def use_scaler(self) -> bool:
        """fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not."""
        return self.dtype == torch.float16

    @property
    def name(self) -> str:
        """'bf16', 'fp16' or 'fp32' (for logs)."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")  # type: ignore[arg-type]

    def autocast(self) -> AbstractContextManager[object]:
        """An autocast context for this device (a no-op context for fp32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is enabled only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.use_scaler)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(mode: AmpMode | str, device: torch.device) -> Precision:
    """Turn an amp mode ('auto', 'bf16', 'fp16', 'off') into the autocast dtype for a device."""
    kind = device.type
    if mode == "off":
        return Precision(kind, None)
    if mode == "auto":
        if kind == "cuda":
            return Precision(kind, torch.float16)
        return Precision(kind, torch.bfloat16 if cpu_has_native_bf16() else None)
    if mode == "bf16":
        if kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("amp 'bf16' asked for but this GPU has no bfloat16; use 'fp16' or 'auto'")
        return Precision(kind, torch.bfloat16)
    if mode == "fp16":
        if kind != "cuda":
            raise ConfigError("amp 'fp16' needs a CUDA device; on CPU use 'bf16', 'auto' or 'off'")
        return Precision(kind, torch.float16)
    raise ConfigError(f"amp '{mode}' is not one of auto, bf16, fp16, off")


def inference_precision(mode: AmpMode | str, device: torch.device) -> Precision:
    """The autocast setting for predictions: `auto` is bf16 on CUDA (fp16 without bf16), float32 on the CPU."""
    if mode != "auto":
        return resolve_precision(mode, device)
    if device.type != "cuda":
        return Precision(device.type, None)
    return Precision("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' -> this process's local GPU; 'cuda:N' kept."""
    if local_rank is None:
        launch = torchrun_env()
        local_rank = launch.local_rank if launch is not None else 0
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' asked for but no CUDA GPU is available; use --device cpu")
        if name == "cuda":
            return torch.device("cuda", local_rank)
        try:
            index = int(name.split(":", 1)[1])
        except (IndexError, ValueError):
            raise ConfigError(f"device '{name}' is not auto, cpu, cuda or cuda:N") from None
        return torch.device("cuda", index)
    raise ConfigError(f"device '{name}' is not auto, cpu, cuda or cuda:N")
