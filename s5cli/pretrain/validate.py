"""Validation mIoU of the labeled dataset's val split, sharded over ranks.

Each val sample (a window of the dataset, any size) is padded right/bottom to a multiple of 16 with
zeros, predicted whole (the ViT resamples its position embedding to any grid), and the padding is
cut off again. Confusion matrices are summed over the split and over ranks; IoU per class follows
the MMSeg rule (classes with no pixel in either prediction or label are skipped), and the classes
the dataset excludes from its mean (iSAID: background, as S4P's validation) are left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from s5cli.training.distributed import DistContext, all_reduce_sum
from s5cli.training.engine import StepContext

IGNORE = 255


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows = label, columns = prediction; labels outside 0..K-1 are skipped."""
    valid = (target >= 0) & (target < num_classes)
    idx = target[valid] * num_classes + pred[valid]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_from_confusion(cm: torch.Tensor, exclude: tuple[int, ...] = ()) -> float:
    """Mean IoU (0..1) over classes with a non-empty union, leaving out `exclude`; NaN if none."""
    cm = cm.double()
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    keep = [k for k in range(cm.shape[0]) if k not in exclude and union[k] > 0]
    if not keep:
        return math.nan
    return float((inter[keep] / union[keep]).mean())


@torch.no_grad()
def predict_window(model: nn.Module, image: torch.Tensor, head: str, ctx: StepContext) -> torch.Tensor:
    """Class map (H, W) of one image (C, H, W) in [0, 1]."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(image[None].to(ctx.device), (0, pw, 0, ph))
    with ctx.autocast():
        logits = model(x, head)
    return logits[0, :, :h, :w].float().argmax(0).cpu()


def validate(
    model: nn.Module,
    dataset: Dataset,
    head: str,
    num_classes: int,
    ctx: StepContext,
    exclude: tuple[int, ...] = (),
    max_images: int | None = None,
) -> dict[str, float]:
    """{"miou": ...} on a dataset of {"image", "mask"} samples; every rank takes every world_size-th one."""
    dist: DistContext = ctx.dist
    n = len(dataset)  # type: ignore[arg-type]
    if max_images is not None:
        n = min(n, max_images)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for i in range(dist.rank, n, dist.world_size):
        sample = dataset[i]
        pred = predict_window(model, sample["image"], head, ctx)
        cm += confusion(pred, sample["mask"].long(), num_classes)
    all_reduce_sum(cm, dist)
    return {"miou": miou_from_confusion(cm, exclude)}
