"""Greedy non-maximum suppression for horizontal and rotated boxes, per class, in plain torch.

Greedy NMS keeps box j (boxes sorted by score) unless a *kept* higher-scored box overlaps it by
more than the threshold. Both versions walk the kept boxes in score order, each round dropping the
live boxes the next kept one overlaps, so the Python loop runs once per kept box. Horizontal boxes
get their whole IoU matrix up front (cheap); rotated boxes are clipped lazily (see rotated_nms).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from s5cli.geometry.boxes import hbox_iou, rboxes_to_hboxes
from s5cli.geometry.iou import rotated_iou_aligned


def keep_from_iou(iou: Tensor, iou_threshold: float) -> Tensor:
    """Greedy-NMS keep mask (N,) from the IoU matrix (N, N) of boxes sorted by decreasing score."""
    over = iou > iou_threshold
    keep = torch.zeros(iou.shape[0], dtype=torch.bool, device=iou.device)
    alive = torch.arange(iou.shape[0], device=iou.device)
    while alive.numel():  # one round per kept box: it removes every live box it overlaps
        i, rest = alive[0], alive[1:]
        keep[i] = True
        alive = rest[~over[i, rest]]
    return keep


def _nms(boxes: Tensor, scores: Tensor, iou_threshold: float, iou_fn: Callable[[Tensor], Tensor]) -> Tensor:
    order = scores.argsort(descending=True, stable=True)
    if order.numel() == 0:
        return order
    return order[keep_from_iou(iou_fn(boxes[order]), iou_threshold)]


def nms(hboxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the horizontal boxes (N, 4) kept by greedy NMS, by decreasing score."""
    return _nms(hboxes, scores, iou_threshold, lambda b: hbox_iou(b, b))


def rotated_nms(rboxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the rotated boxes (N, 5) kept by greedy NMS with exact rotated IoU, by decreasing score.

    Exact IoU is far dearer than a horizontal one, so instead of the full matrix this walks the kept boxes in
    score order and clips each only against the still-alive boxes its enclosing box touches: crowded,
    heavily overlapping candidates (an untrained head, dense scenes) cost about N x kept pairs, not N^2.
    """
    order = scores.argsort(descending=True, stable=True)
    boxes = rboxes[order]
    hboxes = rboxes_to_hboxes(boxes)
    alive = torch.arange(order.numel(), device=rboxes.device)
    kept = []
    while alive.numel():
        i, rest = alive[0], alive[1:]
        kept.append(i)
        touch = (
            (torch.minimum(hboxes[i, 2:], hboxes[rest, 2:]) - torch.maximum(hboxes[i, :2], hboxes[rest, :2])) > 0
        ).all(1)
        near = rest[touch]
        if near.numel():
            iou = rotated_iou_aligned(boxes[i].expand(near.numel(), 5), boxes[near])
            drop = torch.zeros_like(touch)
            drop[touch] = iou > iou_threshold
            rest = rest[~drop]
        alive = rest
    return order[torch.stack(kept)] if kept else order


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS within each group (class, level): (N, 4) horizontal or (N, 5) rotated boxes.

    Returns the kept indices over all groups, by decreasing score.
    """
    fn = nms if boxes.shape[-1] == 4 else rotated_nms
    keep = [
        torch.nonzero(groups == g, as_tuple=True)[0][fn(boxes[groups == g], scores[groups == g], iou_threshold)]
        for g in torch.unique(groups)
    ]
    if not keep:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    kept = torch.cat(keep)
    return kept[scores[kept].argsort(descending=True, stable=True)]
