"""An exponential moving average of a model's weights (the optional EMA teacher of S4P).

UniMatch V2's rule (`unimatch_v2.py`): after every optimiser step,
`ema = r * ema + (1 - r) * student` with `r = min(1 - 1 / (step + 1), decay)`, applied to the
parameters and to floating-point buffers (BN statistics); integer buffers are copied.
The copy stays in eval mode and never needs gradients.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from s5cli.training.distributed import unwrap


class ModelEMA:
    """Keeps `module`, a frozen running average of a student model."""

    def __init__(self, model: nn.Module, decay: float = 0.996) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the student's current weights in (call after optimizer.step())."""
        self.updates += 1
        # Early on the average is short (1 - 1/(n+1)), so the teacher is not stuck at the init.
        r = min(1.0 - 1.0 / (self.updates + 1), self.decay)
        student = unwrap(model).state_dict()
        for name, value in self.module.state_dict().items():
            src = student[name].detach()
            if value.dtype.is_floating_point:
                value.mul_(r).add_(src.to(value.dtype), alpha=1.0 - r)
            else:
                value.copy_(src)

    def state_dict(self) -> dict[str, Any]:
        """Weights and the update count."""
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights and update count."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
