"""Validation mIoU of the labeled dataset's val split, sharded over ranks.

Each val sample (a window of the dataset, any size) is padded right/bottom to a multiple of 16 with
zeros, predicted whole (the ViT resamples its position embedding to any grid), and the padding is
cut off again. The confusion matrix (s5cli.metrics.segmentation) is summed over the split and over
ranks; classes absent from both prediction and label are skipped (MMSeg rule), and the classes the
dataset excludes from its means (iSAID: background, as S4P's validation) are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from s5cli.metrics.segmentation import ConfusionMatrix
from s5cli.training.engine import StepContext


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
    metrics: ConfusionMatrix,
    ctx: StepContext,
    max_images: int | None = None,
) -> dict[str, float]:
    """{"miou": ...} on a dataset of {"image", "mask"} samples; rank r takes samples r, r + world, ..."""
    n = len(dataset)  # type: ignore[arg-type]
    if max_images is not None:
        n = min(n, max_images)
    metrics.reset()
    for i in range(ctx.dist.rank, n, ctx.dist.world_size):
        sample = dataset[i]
        metrics.update(predict_window(model, sample["image"], head, ctx), sample["mask"])
    if ctx.dist.distributed:
        metrics.all_reduce()
    return {"miou": metrics.miou()}
