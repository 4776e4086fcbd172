"""The model side of predict: a checkpoint (or any module honouring the ModelSpec contract) as a batch function.

`Predictor(x)` takes a numpy batch (B, C, T, T) of [0, 1] tiles and returns softmax probabilities
(B, K, T, T) float32, under torch.inference_mode, with bf16 autocast on CUDA (bf16 is exact enough
for an argmax) and float32 on CPU (so that results do not depend on the CPU's
bf16 support). `Predictor.probabilities` is the same forward on a tensor already on the device, whose
result stays there: the predict engine blends on the device and moves only finished uint8 rows.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from s5cli.errors import InputError
from s5cli.models.spec import HeadSpec, InputSpec, ModelSpec
from s5cli.training.device import inference_precision, resolve_device


@dataclass
class Predictor:
    """A model, the head it predicts with and the device it runs on."""

    model: nn.Module
    spec: ModelSpec
    head: HeadSpec
    device: torch.device
    autocast: bool = True

    @property
    def contract(self) -> InputSpec:
        """How this head's training data were read (bands, scale, dtype, GSD): what predict applies by default."""
        return self.spec.input.for_head(self.head.name)

    @property
    def num_bands(self) -> int:
        """Input bands the model takes."""
        return len(self.spec.input.bands)

    def _amp(self) -> AbstractContextManager[object]:
        return inference_precision("auto" if self.autocast else "off", self.device).autocast()

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, T, T) float32 in [0, 1] on the device -> (B, K, T, T) float32 softmax, left on the device."""
        with torch.inference_mode(), self._amp():
            logits = self.model(batch, self.head.name)
            if not isinstance(logits, torch.Tensor) or logits.ndim != 4:  # a detection head returns a list
                raise InputError(f"head '{self.head.name}' does not return (B, K, H, W) segmentation logits")
            return torch.softmax(logits.float(), dim=1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, C, T, T) float32 in [0, 1] -> (B, K, T, T) float32 class probabilities on the host."""
        batch = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
        return self.probabilities(batch).cpu().numpy()

    def detect(self, x: np.ndarray) -> list[dict[str, torch.Tensor]]:
        """(B, C, T, T) float32 in [0, 1] -> per patch {"boxes" (M, 5) in patch pixels, "scores", "labels"}."""
        with torch.inference_mode(), self._amp():
            batch = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
            out = self.model(batch, self.head.name)
        if not isinstance(out, list):
            raise InputError(f"head '{self.head.name}' does not return per-image detections")
        return [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in det.items()} for det in out]


def predictor_for(
    model: nn.Module,
    spec: ModelSpec | None = None,
    dataset: str | None = None,
    device: str | torch.device | None = None,
) -> Predictor:
    """Wrap a loaded model (with a `.spec`, or given one) for predict; picks its head by dataset name."""
    spec = spec if spec is not None else getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise InputError("the model carries no ModelSpec (.spec); pass spec=")
    head = spec.head(dataset)
    if device is None:
        try:
            dev = next(model.parameters()).device
        except StopIteration:
            dev = torch.device("cpu")
    else:
        dev = torch.device(device) if not isinstance(device, str) else resolve_device(device)
    model = model.to(dev).eval()
    return Predictor(model=model, spec=spec, head=head, device=dev)


def load_predictor(checkpoint: str | os.PathLike[str], dataset: str | None = None, device: str = "auto") -> Predictor:
    """Load a checkpoint (weights only, never code) onto a device and pick its head."""
    from s5cli.models.checkpoint import load_checkpoint

    dev = resolve_device(device)
    model, spec, _ = load_checkpoint(checkpoint, device=dev)
    head = spec.head(dataset)
    return Predictor(model=model, spec=spec, head=head, device=dev)
