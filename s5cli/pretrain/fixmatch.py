"""The S4P step: FixMatch with CutMix on a labeled and an unlabeled batch (docs/method.md, S4P).

1. CutMix: the partner's strong view is pasted into the strong view inside each sample's box.
   The partner is drawn independently (`partner: loader`: the next images of the shuffled
   unlabeled stream, each with its own augmentation; `partner: roll`: the batch rolled by one);
   the original pastes the *same* image under another augmentation, a quirk not copied
   (docs/method.md, differences).
2. Teacher: the same network in eval mode (or the EMA copy), no gradients, outside autocast, on
   cat(weak, partner weak); confidence and pseudo-label are max / argmax of the softmax; the
   pseudo-label, confidence and ignore maps are cut-mixed with the same box.
3. Student: train mode, ONE forward on cat(labeled, strong) under autocast (shared BN statistics).
4. loss_x = CE over non-ignored labeled pixels; loss_u = sum over confident (conf >= 0.95),
   non-ignored pixels of CE, divided by the number of NON-IGNORED pixels (not confident ones;
   util/train_utils.py::confidence_weighted_loss, clamped at 1 for an all-padding batch);
   loss = (loss_x + w * loss_u) / 2 with w = 1 in S4P. mask_ratio = confident / non-ignored.

Batches: labeled {"image": (B, C, H, W), "mask": (B, H, W) int64, ignore 255}; unlabeled and
partner {"image_w", "image_s": (B, C, H, W), "ignore": (B, H, W) 255 on padding, "box": (B, H, W)}.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from s5cli.config import StrictConfig
from s5cli.datasets.info import IGNORE
from s5cli.pretrain.views import ViewConfig
from s5cli.training.distributed import unwrap


class FixMatchConfig(StrictConfig):
    """S4P's semi-supervised settings (defaults = the official recipe)."""

    threshold: float = Field(0.95, ge=0.0, le=1.0)  # S4_Pretrain/configs/pretrain.yaml conf_thresh
    unlabeled_weight: float = 1.0  # lambda; total = (loss_x + lambda * loss_u) / 2
    teacher: Literal["same", "ema"] = "same"  # S4P: the student itself in eval mode; ema: UniMatch V2 style
    ema_decay: float = Field(0.996, ge=0.0, lt=1.0)  # UniMatch V2's cap on the EMA ratio
    partner: Literal["loader", "roll"] = "loader"  # other images of the unlabeled stream, or the batch rolled
    views: ViewConfig = Field(default_factory=ViewConfig)


Batch = dict[str, torch.Tensor]


def roll_partner(batch_u: Batch) -> Batch:
    """The unlabeled batch shifted by one sample: each image's partner is its neighbour."""
    return {k: v.roll(1, dims=0) for k, v in batch_u.items()}


@torch.no_grad()
def pseudo_labels(teacher: nn.Module, images: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, label), each (B, H, W), from the teacher in eval mode, fp32, without gradients."""
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.autocast(images.device.type, enabled=False):
            probs = teacher(images.float(), head).float().softmax(dim=1)  # (B, K, H, W)
        conf, label = probs.max(dim=1)
    finally:
        teacher.train(was_training)
    return conf, label


def fixmatch_step(
    model: nn.Module,
    batch_l: Batch,
    batch_u: Batch,
    partner_u: Batch | None,
    cfg: FixMatchConfig,
    *,
    head: str,
    teacher: nn.Module | None = None,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One S4P step: returns the loss to back-propagate and detached stats (loss, loss_x, loss_u, mask_ratio).

    Args:
        model: the student (possibly DDP-wrapped); also the teacher unless `teacher` is given.
        batch_l: labeled batch.
        batch_u: unlabeled batch (weak, strong, ignore, box).
        partner_u: the CutMix partner batch; None rolls `batch_u` by one.
        cfg: threshold and loss weight.
        head: the head (labeled dataset name) the model predicts with.
        teacher: an EMA model; None uses the student in eval mode.
        autocast: context factory for the student forward (the engine's precision).
    """
    partner = roll_partner(batch_u) if partner_u is None else partner_u
    x_l, y_l = batch_l["image"], batch_l["mask"]
    n_l, n_u = x_l.shape[0], batch_u["image_w"].shape[0]
    box = batch_u["box"].bool()  # (B, H, W)

    # 1. paste the partner's strong view into the box
    x_s = torch.where(box.unsqueeze(1), partner["image_s"], batch_u["image_s"])

    # 2. teacher on weak views of both; mix its outputs with the same box
    conf, label = pseudo_labels(teacher or unwrap(model), torch.cat([batch_u["image_w"], partner["image_w"]]), head)
    conf_u, conf_p = conf.split([n_u, n_u])
    label_u, label_p = label.split([n_u, n_u])
    conf = torch.where(box, conf_p, conf_u)
    label = torch.where(box, label_p, label_u)
    ignore = torch.where(box, partner["ignore"], batch_u["ignore"])

    # 3. one student forward on labeled + strong
    model.train()
    with autocast():
        logits = model(torch.cat([x_l, x_s]), head)
    logits_l, logits_u = logits.float().split([n_l, n_u])  # (B, K, H, W) each

    # 4. losses
    valid_l = y_l != IGNORE
    loss_x = F.cross_entropy(logits_l, y_l, ignore_index=IGNORE, reduction="sum") / valid_l.sum().clamp(min=1)
    valid_u = ignore != IGNORE
    confident = (conf >= cfg.threshold) & valid_u
    ce_u = F.cross_entropy(logits_u, label, reduction="none")  # (B, H, W)
    n_valid = valid_u.sum().clamp(min=1)
    loss_u = (ce_u * confident).sum() / n_valid
    loss = (loss_x + cfg.unlabeled_weight * loss_u) / 2
    stats = {
        "loss": loss.detach(),
        "loss_x": loss_x.detach(),
        "loss_u": loss_u.detach(),
        "mask_ratio": confident.sum().float() / n_valid,
    }
    return loss, stats
