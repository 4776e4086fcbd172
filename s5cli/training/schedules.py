"""Learning-rate schedules as pure functions of the iteration, applied to every param group.

- `cosine`: per-iteration cosine from the base lr to `min_lr_ratio * lr` (S4P: CosineAnnealingLR
  stepped every iteration to 0 over 120k iterations);
- `cosine_epoch`: the same curve, but held constant within an epoch (S5 finetune: cosine per epoch);
- `step`: multiply by `gamma` at each epoch milestone (S5 detection: steps at epochs 8 and 11);
- `constant`.
Any of them can start with a linear warm-up from `warmup_ratio * lr` (mmcv's rule: 500 iterations
at ratio 0.001 for the detection recipe, its lr_config). Each group's lr is `base_lr * factor(it)`, so
layer-wise decay scales survive. The schedule's only state is the iteration, so resuming is exact.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from s5cli.config import StrictConfig


class ScheduleConfig(StrictConfig):
    """How the lr moves over training."""

    name: Literal["cosine", "cosine_epoch", "step", "constant"] = "cosine"
    warmup_iters: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.001, ge=0.0, le=1.0)  # lr at iteration 0 = warmup_ratio * lr
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # cosine floor as a share of the base lr
    milestones: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)  # epochs, for `step`
    gamma: float = Field(0.1, gt=0.0)  # for `step`: the lr factor at each milestone


def lr_factor(cfg: ScheduleConfig, iteration: int, total_iters: int, iters_per_epoch: int = 1) -> float:
    """The multiplier of the base lr at `iteration` (0-based), warm-up included."""
    it = min(max(iteration, 0), total_iters)
    if cfg.name == "cosine":
        progress = it / max(total_iters, 1)
        factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    elif cfg.name == "cosine_epoch":
        epochs = max(math.ceil(total_iters / max(iters_per_epoch, 1)), 1)
        progress = (it // max(iters_per_epoch, 1)) / epochs
        factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    elif cfg.name == "step":
        epoch = it // max(iters_per_epoch, 1)
        factor = cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    else:
        factor = 1.0
    if it < cfg.warmup_iters:
        # mmcv linear warm-up: lr = regular_lr * (1 - (1 - it / warmup) * (1 - ratio))
        factor *= 1 - (1 - it / cfg.warmup_iters) * (1 - cfg.warmup_ratio)
    return factor


class LRSchedule:
    """Sets every param group's lr to `base_lr * factor(iteration)`; state = the iteration."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iters: int, iters_per_epoch: int = 1
    ) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.total_iters = total_iters
        self.iters_per_epoch = max(iters_per_epoch, 1)
        self.iteration = 0
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self._apply()

    def factor(self) -> float:
        """The current multiplier."""
        return lr_factor(self.cfg, self.iteration, self.total_iters, self.iters_per_epoch)

    def _apply(self) -> None:
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * f

    def step(self) -> None:
        """Advance one iteration (call after optimizer.step())."""
        self.iteration += 1
        self._apply()

    def peak_lr(self) -> float:
        """The current lr of the group with the largest base lr (the un-decayed one)."""
        group = max(self.optimizer.param_groups, key=lambda g: g["base_lr"])
        return float(group["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The iteration (all the state there is)."""
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the iteration and re-apply the lr."""
        self.iteration = int(state["iteration"])
        self._apply()
