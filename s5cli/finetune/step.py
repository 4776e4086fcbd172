"""The MoE-MDF training step: one batch per dataset, each through its expert and head, losses summed.

S5 (`md_finetune.py`, docs/method.md, MoE-MDF): every step runs one forward per dataset with that
dataset's expert, decoder and head, sums the per-dataset losses (segmentation: cross-entropy with the
ignore value; detection: the sum of the head's RPN and RoI losses) and does one backward. A dataset's loss
is multiplied by its weight, and by 0 before its start epoch (S5: Vaihingen until epoch 70); such a
dataset is not even forwarded. The per-dataset forwards run inside one module call (`MultiDatasetModel`),
so DistributedDataParallel sees one forward and one backward per step, whatever the number of datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s5cli.datasets.info import IGNORE


@dataclass(frozen=True)
class LossTerm:
    """How one dataset enters the total loss."""

    name: str
    task: str  # segmentation | detection
    num_classes: int
    weight: float = 1.0
    start_epoch: int = 0

    def factor(self, epoch: int) -> float:
        """The weight at an epoch (0 before the start epoch)."""
        return self.weight if epoch >= self.start_epoch else 0.0


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels; mask values past the head's classes are ignored (e.g. clutter)."""
    target = mask.long().masked_fill(mask >= logits.shape[1], IGNORE)
    if not (target != IGNORE).any():  # an all-ignore batch: a zero that keeps the graph (DDP needs the gradient)
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)


class MultiDatasetModel(nn.Module):
    """Wraps an S5Model; `forward(batches, factors)` returns the weighted total loss and per-dataset stats."""

    def __init__(self, net: nn.Module, terms: list[LossTerm]) -> None:
        super().__init__()
        self.net = net
        self.terms = terms

    def forward(
        self, batches: Mapping[str, dict[str, Any]], factors: Mapping[str, float]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum of factor * loss over the datasets with a non-zero factor (one forward each)."""
        total: torch.Tensor | None = None
        stats: dict[str, torch.Tensor] = {}
        for term in self.terms:
            factor = factors.get(term.name, 0.0)
            if factor == 0.0:
                continue
            batch = batches[term.name]
            if term.task == "segmentation":
                loss = segmentation_loss(self.net(batch["image"], term.name), batch["mask"])
            else:
                parts = self.net(batch["image"], term.name, batch["targets"])
                loss = torch.stack([v.float() for v in parts.values()]).sum()
                for key, value in parts.items():
                    stats[f"{term.name}/{key}"] = value.detach().float()
            stats[f"loss_{term.name}"] = loss.detach()
            total = factor * loss if total is None else total + factor * loss
        if total is None:
            raise ValueError("every dataset has weight 0 at this epoch: nothing to train")
        stats["loss"] = total.detach()
        return total, stats


def mdf_step(
    model: nn.Module,
    batches: Mapping[str, dict[str, Any]],
    terms: list[LossTerm],
    epoch: int,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One MDF step's loss and stats; `model` is a MultiDatasetModel (or DDP around one)."""
    factors = {t.name: t.factor(epoch) for t in terms}
    with autocast():
        return model(batches, factors)
