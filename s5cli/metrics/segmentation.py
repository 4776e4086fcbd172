"""Segmentation metrics from one confusion matrix accumulated over a whole split.

Per class (S5 ``evaluate.py`` / ``intersectionAndUnion``): IoU = I / (T + P - I), F1 = 2PR / (P + R)
= 2I / (T + P), with I the diagonal, T the target count (row sum), P the predicted count (column sum).
OA = trace / total. Rules, per dataset (docs/datasets.md: Potsdam, OpenEarthMap, iSAID):
- pixels whose target is ``ignore_index`` are not counted anywhere (neither row nor column);
- a class absent from both targets and predictions has IoU/F1 NaN and is skipped by the means;
- classes in ``exclude`` stay in the matrix (a car predicted as clutter is a missed car) but are
  left out of the means: ISPRS clutter, iSAID background. OpenEarthMap's class 0 "unknown" is
  counted, as S5 does. Values are fractions in [0, 1].
The matrix is an integer array that sums across processes: ``merge`` or ``all_reduce``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


class ConfusionMatrix:
    """K x K counts (rows = target class, columns = predicted class) and the metrics derived from them."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        exclude: Sequence[str | int] = (),
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        self.excluded = sorted({self.class_names.index(c) if isinstance(c, str) else int(c) for c in exclude})
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch of predicted and target class indexes (same shape; torch or numpy, any device)."""
        p, t = _as_tensor(pred), _as_tensor(target)
        if p.shape != t.shape:
            raise ValueError(f"prediction shape {tuple(p.shape)} != target shape {tuple(t.shape)}")
        p, t = p.reshape(-1).long(), t.reshape(-1).to(p.device).long()
        keep = t != self.ignore_index
        p, t = p[keep], t[keep]
        k = self.num_classes
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
            raise ValueError(f"target values must be in [0, {k}) or {self.ignore_index}")
        if p.numel() and (int(p.min()) < 0 or int(p.max()) >= k):
            raise ValueError(f"predicted values must be in [0, {k})")
        counts = torch.bincount(t * k + p, minlength=k * k)
        self.matrix += counts.cpu().numpy().reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts (same classes) into this one."""
        if other.matrix.shape != self.matrix.shape:
            raise ValueError("cannot merge confusion matrices with different class counts")
        self.matrix += other.matrix
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over every process of a torch.distributed group (no-op when not distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend = torch.distributed.get_backend()
            device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
            t = torch.from_numpy(self.matrix).to(device)
            torch.distributed.all_reduce(t)
            self.matrix = t.cpu().numpy()
        return self

    def reset(self) -> None:
        """Zero the counts."""
        self.matrix[:] = 0

    def _ratio(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.maximum(den, 1), np.nan)

    def iou(self) -> np.ndarray:
        """Per-class IoU (NaN for a class absent from targets and predictions)."""
        inter = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(1) + self.matrix.sum(0) - inter
        return self._ratio(inter, union)

    def f1(self) -> np.ndarray:
        """Per-class F1 = 2 I / (T + P) (NaN for a class absent from targets and predictions)."""
        inter = np.diag(self.matrix).astype(np.float64)
        return self._ratio(2 * inter, (self.matrix.sum(1) + self.matrix.sum(0)).astype(np.float64))

    def _mean(self, values: np.ndarray) -> float:
        used = np.delete(values, self.excluded)
        if used.size == 0 or np.isnan(used).all():
            return float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmean(used))

    def miou(self) -> float:
        """Mean IoU over the classes present, excluded classes left out."""
        return self._mean(self.iou())

    def mf1(self) -> float:
        """Mean F1 over the classes present, excluded classes left out."""
        return self._mean(self.f1())

    def oa(self) -> float:
        """Overall accuracy: correctly classified counted pixels / counted pixels."""
        total = int(self.matrix.sum())
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def summary(self) -> dict[str, Any]:
        """mIoU, mF1, OA, per-class IoU and F1 by class name (NaN as None), and the pixel count."""

        def clean(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        iou, f1 = self.iou(), self.f1()
        return {
            "mIoU": clean(self.miou()),
            "mF1": clean(self.mf1()),
            "OA": clean(self.oa()),
            "IoU": {n: clean(v) for n, v in zip(self.class_names, iou)},
            "F1": {n: clean(v) for n, v in zip(self.class_names, f1)},
            "excluded": [self.class_names[i] for i in self.excluded],
            "pixels": int(self.matrix.sum()),
        }


class PaperScores:
    """S5's own scoring (util/utils.py::intersectionAndUnion, evaluate.py), quirks included.

    Per image, predictions at pixels whose target is `ignore_index` are set to it; numpy histograms with
    bins 0..K count intersection, prediction and target areas, the last bin [K-1, K] closed, so an
    ignore index of K (ISPRS clutter) adds every ignored pixel to class K-1 as a correct one. Per class
    IoU = I / (U + 1e-10), F1 from precision I / (P + 1e-10) and recall I / (T + 1e-10) (0/0 is NaN),
    means over all K classes; OA = sum I / (sum T + 1e-10). Values are fractions.
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int) -> None:
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((4, self.num_classes), dtype=np.int64)  # intersection, union, target, output

    def update(self, pred: Any, target: Any) -> None:
        """Add one image's predicted and target ids (same shape)."""
        output = _as_tensor(pred).reshape(-1).cpu().numpy().astype(np.int64).copy()
        label = _as_tensor(target).reshape(-1).cpu().numpy().astype(np.int64)
        if output.shape != label.shape:
            raise ValueError(f"prediction shape {output.shape} != target shape {label.shape}")
        output[label == self.ignore_index] = self.ignore_index
        bins = np.arange(self.num_classes + 1)
        inter = np.histogram(output[output == label], bins=bins)[0]
        area_out = np.histogram(output, bins=bins)[0]
        area_tgt = np.histogram(label, bins=bins)[0]
        self.matrix += np.stack([inter, area_out + area_tgt - inter, area_tgt, area_out])

    def summary(self) -> dict[str, Any]:
        """mIoU, mF1, OA, per-class IoU and F1, as the authors' evaluate.py computes them (as fractions)."""
        inter, union, tgt, out = self.matrix.astype(np.float64)
        iou = inter / (union + 1e-10)
        recall, precision = inter / (tgt + 1e-10), inter / (out + 1e-10)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = 2 * precision * recall / (precision + recall)

        def clean(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        return {
            "mIoU": clean(float(np.mean(iou))),
            "mF1": clean(float(np.mean(f1))),
            "OA": clean(float(inter.sum() / (tgt.sum() + 1e-10))),
            "IoU": {n: clean(v) for n, v in zip(self.class_names, iou)},
            "F1": {n: clean(v) for n, v in zip(self.class_names, f1)},
            "excluded": [],
            "pixels": int(tgt.sum()),
        }


def metrics_for(dataset: Any) -> ConfusionMatrix:
    """An accumulator with a dataset's label classes, the ignore value and the classes left out of the means.

    Args:
        dataset: a dataset record (s5cli.datasets.info.DatasetInfo) or a registry name.
    """
    from s5cli.datasets.info import IGNORE
    from s5cli.datasets.registry import dataset_info
    from s5cli.errors import InputError

    info = dataset_info(dataset) if isinstance(dataset, str) else dataset
    if info.task != "segmentation":
        raise InputError(f"{info.name} is a {info.task} dataset; segmentation metrics do not apply")
    return ConfusionMatrix(len(info.classes), IGNORE, info.classes, info.excluded)
