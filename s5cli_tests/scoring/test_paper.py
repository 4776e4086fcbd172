"""The paper's protocol reproduces the authors' evaluate.py exactly; the standard one stays correct."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s5cli.metrics.segmentation import ConfusionMatrix, PaperScores
from s5cli.scoring.modes import segment
from s5cli.scoring.paper import segment_paper


def official_intersection_and_union(output, target, k, ignore_index):
    """The authors' util/utils.py::intersectionAndUnion, written out as a reference."""
    output = output.reshape(output.size).copy()
    target = target.reshape(target.size)
    output[np.where(target == ignore_index)[0]] = ignore_index
    intersection = output[np.where(output == target)[0]]
    inter, _ = np.histogram(intersection, bins=np.arange(k + 1))
    out, _ = np.histogram(output, bins=np.arange(k + 1))
    tgt, _ = np.histogram(target, bins=np.arange(k + 1))
    return inter, out + tgt - inter, tgt, out


def test_paper_scores_equal_the_official_code_and_count_clutter_as_car() -> None:
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 5, (40, 40)) for _ in range(3)]  # a 5-class ISPRS head
    targets = [rng.integers(0, 6, (40, 40)) for _ in range(3)]  # labels with clutter = 5
    targets[0][:5] = 255  # eroded boundaries
    scores = PaperScores(["imp", "bld", "low", "tree", "car"], ignore_index=5)
    sums = np.zeros((4, 5))
    for p, t in zip(preds, targets):
        scores.update(torch.from_numpy(p), torch.from_numpy(t))
        sums += np.stack(official_intersection_and_union(p, t, 5, 5))
    inter, union, tgt, out = sums
    iou = inter / (union + 1e-10)
    acc, prec = inter / (tgt + 1e-10), inter / (out + 1e-10)
    summary = scores.summary()
    assert summary["mIoU"] == pytest.approx(np.mean(iou))
    assert summary["mF1"] == pytest.approx(np.mean(2 * prec * acc / (prec + acc)))
    assert summary["OA"] == pytest.approx(inter.sum() / (tgt.sum() + 1e-10))
    clutter = sum(int((t == 5).sum()) for t in targets)
    assert scores.matrix[0, 4] >= clutter  # every clutter pixel is a correct car pixel
    # the standard protocol scores the same predictions with clutter ignored: car is much worse there
    cm = ConfusionMatrix(6, 255, ["imp", "bld", "low", "tree", "car", "clutter"], ["clutter"])
    for p, t in zip(preds, targets):
        cm.update(p, np.where(t == 5, 255, t))
    assert cm.iou()[4] < summary["IoU"]["car"] - 0.2


def test_absent_classes_count_as_iou_zero_in_the_paper() -> None:
    scores = PaperScores(["a", "b", "c"], ignore_index=255)
    scores.update(torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long))
    assert scores.summary()["mIoU"] == pytest.approx(1 / 3)  # classes b and c count as 0
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((4, 4)), np.zeros((4, 4)))
    assert cm.miou() == 1.0  # the standard rule skips them


class Ramp(nn.Module):
    """logits (B, 2, H, W) that depend on the absolute position in the window: seams show."""

    def forward(self, x: torch.Tensor, head: str | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        ramp = torch.linspace(-3, 3, w).view(1, 1, 1, w).expand(x.shape[0], 1, h, w)
        return torch.cat([ramp + x[:, :1] * 0.5, -ramp + x[:, 1:2]], dim=1)


def test_paper_slide_adds_the_last_windows_again() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 64, 64)
    model = Ramp()
    got = segment_paper(model, image, "x", "slide", 32, overlap=0.5, autocast=_null)
    # the authors' loop: starts min(a * 16, 32) for a = 0..4 -> 0, 16, 32, 32, 32 (the last three times)
    ref = torch.zeros(2, 64, 64)
    for a in range(5):
        for b in range(5):
            r, c = min(a * 16, 32), min(b * 16, 32)
            ref[:, r : r + 32, c : c + 32] += model(image[None, :, r : r + 32, c : c + 32]).softmax(1)[0]
    torch.testing.assert_close(got, ref)
    std = segment(model, image, "x", "slide", 32, overlap=0.5)  # each window once, divided by the count
    assert not torch.allclose(std * 9, got)


def test_paper_resize_and_flips() -> None:
    image = torch.rand(3, 40, 56)
    model = Ramp()
    got = segment_paper(model, image, "x", "resize", 32, autocast=_null)
    small = F.interpolate(image[None], size=(32, 32), mode="bilinear", align_corners=True)
    ref = F.interpolate(model(small).softmax(1), size=(40, 56), mode="bilinear", align_corners=True)[0]
    torch.testing.assert_close(got, ref)
    crop = segment_paper(model, image[:, :32, :32], "x", "crop", 32, flip=True, autocast=_null)
    x = image[None, :, :32, :32]
    views = [model(x).softmax(1), model(x.flip(-1)).softmax(1).flip(-1), model(x.flip(-2)).softmax(1).flip(-2)]
    torch.testing.assert_close(crop, torch.stack(views).mean(0)[0])


def _null():
    from contextlib import nullcontext

    return nullcontext()
