"""Max-IoU assignment of boxes to ground truth and random positive/negative sampling (mmdet 2.x rules).

Assignments are a long tensor per box: -2 ignored, -1 negative (background), k >= 0 the index of
the ground-truth box it regresses to.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

IGNORED = -2
NEGATIVE = -1


def max_iou_assign(
    iou: Tensor | Callable[[int, int], Tensor],
    pos_iou: float,
    neg_iou: float,
    min_pos_iou: float,
    match_low_quality: bool,
    shape: tuple[int, int] | None = None,
    chunk: int = 1 << 16,
) -> Tensor:
    """Assign boxes (rows of iou (N, G)) to ground truths (columns) as mmdet's MaxIoUAssigner.

    - IoU < neg_iou with every GT: negative; max IoU >= pos_iou: positive for its best GT;
      in between: ignored;
    - with match_low_quality, every box that reaches a GT's highest IoU (when that is at least
      min_pos_iou) also becomes positive for that GT, later GTs winning ties, so every GT gets one.

    `iou` may instead be a function (start, stop) -> IoU rows (stop - start, G), with `shape` = (N, G):
    rows are then computed `chunk` at a time (twice with match_low_quality), so that 260k anchors
    against a thousand GTs never hold the whole matrix.
    """
    rows = iou if callable(iou) else (lambda start, stop: iou[start:stop])
    n, g = shape if callable(iou) else iou.shape
    device = rows(0, 0).device
    assigned = torch.full((n,), IGNORED, dtype=torch.long, device=device)
    if g == 0:
        assigned[:] = NEGATIVE
        return assigned
    if n == 0:
        return assigned
    spans = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    best_iou = torch.empty(n, device=device)
    best_gt = torch.empty(n, dtype=torch.long, device=device)
    gt_best = torch.full((g,), -1.0, device=device)
    for start, stop in spans:
        part = rows(start, stop)
        best_iou[start:stop], best_gt[start:stop] = part.max(dim=1)
        gt_best = torch.maximum(gt_best, part.max(dim=0).values.to(gt_best.dtype))
    assigned[(best_iou >= 0) & (best_iou < neg_iou)] = NEGATIVE
    positive = best_iou >= pos_iou
    assigned[positive] = best_gt[positive]
    if match_low_quality:
        eligible = gt_best >= min_pos_iou
        for start, stop in spans:
            part = rows(start, stop)
            hit = (part == gt_best.to(part.dtype)[None, :]) & eligible[None, :]
            gt_index = torch.arange(g, device=device).expand(stop - start, g)
            last = torch.where(hit, gt_index, torch.full_like(gt_index, -1)).max(dim=1).values
            assigned[start:stop] = torch.where(last >= 0, last, assigned[start:stop])
    return assigned


def random_sample(
    assigned: Tensor, num: int, pos_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Indices of sampled positives and negatives: at most num * pos_fraction positives, negatives fill to num."""
    pos = torch.nonzero(assigned >= 0, as_tuple=True)[0]
    neg = torch.nonzero(assigned == NEGATIVE, as_tuple=True)[0]
    num_pos = min(int(num * pos_fraction), pos.numel())
    pos = pos[torch.randperm(pos.numel(), generator=generator, device="cpu")[:num_pos].to(pos.device)]
    num_neg = min(num - num_pos, neg.numel())
    neg = neg[torch.randperm(neg.numel(), generator=generator, device="cpu")[:num_neg].to(neg.device)]
    return pos, neg
