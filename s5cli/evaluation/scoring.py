"""Score one model head on one dataset split: predictions by an eval mode, then the dataset's metric.

Used by `s5 evaluate` and by the fine-tuning validation. Samples are sharded over ranks (every
world_size-th one); segmentation confusion matrices are summed and detection records gathered across
ranks, so every rank returns the same result. Metric conventions are the dataset's (metrics/):
segmentation mIoU / mF1 / OA from one confusion matrix per split, detection mAP VOC07 at IoU 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from s5cli.console import progress_bar
from s5cli.evaluation.modes import Autocast, Mode, detect, detect_patches, segment
from s5cli.training.distributed import DistContext, all_gather_objects, all_reduce_sum


@dataclass(frozen=True)
class EvalSettings:
    """How one dataset is predicted."""

    mode: Mode
    size: int  # segmentation tile, or detection input / patch size
    flip: bool = False
    overlap: float = 0.5  # slide mode
    gap: int = 200  # detection patches
    batch_size: int = 4
    max_images: int | None = None


@dataclass
class DatasetResult:
    """A dataset's scores: the headline metric and the rest, as fractions (None where undefined)."""

    dataset: str
    task: str
    split: str
    mode: str
    metric: str  # the dataset's reported metric: mIoU, mF1 or mAP
    score: float | None
    images: int
    labeled: bool
    values: dict[str, float | None] = field(default_factory=dict)  # mIoU, mF1, OA / mAP
    per_class: list[dict[str, Any]] = field(default_factory=list)  # class, IoU, F1 / AP, num_gt, num_det

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe dict."""
        return asdict(self)


def _clean(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _segmentation_result(cm: Any, base: dict[str, Any], metric: str) -> DatasetResult:
    summary = cm.summary()
    values = {k: _clean(summary[k]) for k in ("mIoU", "mF1", "OA")}
    rows = [
        {"class": name, "IoU": summary["IoU"][name], "F1": summary["F1"][name], "excluded": name in summary["excluded"]}
        for name in cm.class_names
    ]
    score = values.get(metric) if base["labeled"] else None
    return DatasetResult(metric=metric, score=score, values=values, per_class=rows, **base)


def _detection_result(evaluator: Any, base: dict[str, Any], metric: str) -> DatasetResult:
    res = evaluator.compute()
    rows = [
        {"class": name, "AP": _clean(res.ap[name]), "num_gt": res.num_gt[name], "num_det": res.num_det[name]}
        for name in evaluator.class_names
    ]
    score = _clean(res.map) if base["labeled"] else None
    return DatasetResult(metric=metric, score=score, values={"mAP": score}, per_class=rows, **base)


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    info: Any,
    dataset: Dataset,
    settings: EvalSettings,
    *,
    split: str,
    device: torch.device,
    autocast: Autocast = nullcontext,
    dist: DistContext | None = None,
    on_prediction: Callable[[dict[str, Any], Any], None] | None = None,
    show_progress: bool = True,
) -> DatasetResult:
    """Predict every sample of `dataset` with the head `info.name` and score it with the dataset's metric.

    Args:
        model: an S5Model (eval mode) on `device`.
        info: the dataset's DatasetInfo (classes, ignore value, metric).
        dataset: samples {"image", "mask"} or {"image", "polygons", "labels", "difficult"}; labels optional.
        settings: eval mode and sizes.
        split: the split's name (reported).
        device: where images go.
        autocast: the autocast context factory.
        dist: shard over ranks and reduce; None for one process.
        on_prediction: called with (sample, class map (H, W) or detection dict) for each sample.
        show_progress: a progress bar (main rank only).
    """
    from s5cli.metrics.detection import DetectionEvaluator
    from s5cli.metrics.segmentation import metrics_for

    dist = dist or DistContext(device=device)
    n = len(dataset)  # type: ignore[arg-type]
    if settings.max_images is not None:
        n = min(n, settings.max_images)
    seg = info.task == "segmentation"
    cm = metrics_for(info) if seg else None
    evaluator = None if seg else DetectionEvaluator(list(info.classes))
    labeled = torch.zeros((), dtype=torch.float64)
    mine = range(dist.rank, n, dist.world_size)
    bar_ctx = progress_bar(f"evaluate {info.name}", total=len(mine)) if show_progress and dist.is_main else None
    with bar_ctx or nullcontext() as bar:
        for i in mine:
            sample = dataset[i]
            image = sample["image"].to(device)
            if seg:
                probs = segment(
                    model, image, info.name, settings.mode, settings.size,  # type: ignore[arg-type]
                    overlap=settings.overlap, flip=settings.flip, autocast=autocast, batch_size=settings.batch_size,
                )  # fmt: skip
                pred = probs.argmax(0).cpu()
                if "mask" in sample:
                    cm.update(pred, sample["mask"])  # type: ignore[union-attr]
                    labeled += 1
            else:
                if settings.mode == "patches":
                    pred = detect_patches(model, image, info.name, settings.size, settings.gap, autocast)
                else:
                    pred = detect(model, image, info.name, settings.size, autocast)
                pred = {k: v.cpu() for k, v in pred.items()}
                if "polygons" in sample:
                    evaluator.add(pred, sample)  # type: ignore[union-attr]
                    labeled += 1
            if on_prediction is not None:
                on_prediction(sample, pred)
            if bar is not None:
                bar.advance(1)
    all_reduce_sum(labeled, dist)
    if seg:
        matrix = torch.from_numpy(cm.matrix)  # type: ignore[union-attr]
        all_reduce_sum(matrix, dist)
        cm.matrix = matrix.numpy()  # type: ignore[union-attr]
    else:
        images = [img for part in all_gather_objects(evaluator.images, dist) for img in part]  # type: ignore[union-attr]
        evaluator.images = images  # type: ignore[union-attr]
    base = {
        "dataset": info.name,
        "task": info.task,
        "split": split,
        "mode": settings.mode,
        "images": n,
        "labeled": bool(labeled > 0),
    }
    return (_segmentation_result if seg else _detection_result)(cm if seg else evaluator, base, info.metric)
