"""Score one model head on one dataset split: predictions by an eval mode, then the dataset's metric.

The one scoring path: `s5 evaluate`, and the validation of `s5 pretrain` and `s5 finetune`. Samples
are sharded over ranks (every world_size-th one); segmentation confusion matrices are summed and
detection records gathered across ranks, so every rank returns the same result. Metric conventions
are the dataset's (metrics/): segmentation mIoU / mF1 / OA from one confusion matrix per split,
detection mAP VOC07 at IoU 0.5.
Heads and labels meet by class name: a head's predictions are scored as the label classes of the same
names, and label classes the head does not predict (ISPRS clutter) are not scored (IGNORE).
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
from s5cli.datasets.info import IGNORE, Mode
from s5cli.scoring.modes import Autocast, detect, detect_patches, segment
from s5cli.scoring.paper import segment_paper
from s5cli.training.distributed import DistContext, all_gather_objects, all_reduce_sum


@dataclass(frozen=True)
class EvalSettings:
    """How one dataset is predicted."""

    mode: Mode
    size: int  # segmentation tile, or detection input / patch size
    flip: bool = False
    overlap: float = 0.5  # slide mode
    gap: int = 200  # detection patches
    merge_iou: float | None = None  # detection patches: merge NMS IoU; None: local evaluation's (detection.patches)
    batch_size: int = 4
    max_images: int | None = None
    paper: bool = False  # segmentation: the authors' evaluation, quirks included (scoring/paper.py)


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


class _SegmentationScore:
    """Confusion matrix over the label classes of a split: predictions are head class maps (H, W)."""

    def __init__(self, info: Any, head_classes: list[str], paper: bool = False) -> None:
        from s5cli.metrics.segmentation import PaperScores, metrics_for

        self.paper = paper
        if paper:  # S5's intersectionAndUnion: the head's K classes, the ignored class's id as ignore index
            ignore = info.classes.index(info.ignored[0]) if info.ignored else IGNORE
            self.cm: Any = PaperScores(head_classes, ignore)
        else:
            self.cm = metrics_for(info)
        self.label_of = torch.tensor([info.classes.index(c) for c in head_classes])  # head id -> label id
        self.target = torch.arange(256)  # label id -> itself, or IGNORE when the head does not predict it
        self.target[[i for i, c in enumerate(info.classes) if c not in head_classes]] = IGNORE

    def predict(self, model: nn.Module, image: torch.Tensor, name: str, s: EvalSettings, autocast: Autocast) -> Any:
        if self.paper:
            probs = segment_paper(
                model,
                image,
                name,
                s.mode,
                s.size,
                overlap=s.overlap,
                flip=s.flip,
                autocast=autocast,  # type: ignore[arg-type]
            )
        else:
            probs = segment(
                model, image, name, s.mode, s.size,  # type: ignore[arg-type]
                overlap=s.overlap, flip=s.flip, autocast=autocast, batch_size=s.batch_size,
            )  # fmt: skip
        return probs.argmax(0).cpu()

    def add(self, sample: dict[str, Any], pred: Any) -> bool:
        if "mask" not in sample:
            return False
        mask = sample["mask"].long()
        target = mask if self.paper else self.target[mask.clamp(0, IGNORE)]  # the paper scores raw label ids
        self.cm.update(self.label_of[pred], target)
        return True

    def reduce(self, dist: DistContext) -> None:
        matrix = torch.from_numpy(self.cm.matrix)
        all_reduce_sum(matrix, dist)
        self.cm.matrix = matrix.numpy()

    def result(self, base: dict[str, Any], metric: str) -> DatasetResult:
        summary = self.cm.summary()
        values = {k: _clean(summary[k]) for k in ("mIoU", "mF1", "OA")}
        rows = [
            {"class": c, "IoU": summary["IoU"][c], "F1": summary["F1"][c], "excluded": c in summary["excluded"]}
            for c in self.cm.class_names
        ]
        score = values.get(metric) if base["labeled"] else None
        return DatasetResult(metric=metric, score=score, values=values, per_class=rows, **base)


class _DetectionScore:
    """Rotated-box mAP of a split: predictions are {"boxes", "scores", "labels"} in image pixels."""

    def __init__(self, info: Any, head_classes: list[str]) -> None:
        from s5cli.metrics.detection import evaluator_for

        self.evaluator = evaluator_for(info)

    def predict(self, model: nn.Module, image: torch.Tensor, name: str, s: EvalSettings, autocast: Autocast) -> Any:
        if s.mode == "patches":
            pred = detect_patches(model, image, name, s.size, s.gap, autocast, merge_iou=s.merge_iou)
        else:
            pred = detect(model, image, name, s.size, autocast)
        return {k: v.cpu() for k, v in pred.items()}

    def add(self, sample: dict[str, Any], pred: Any) -> bool:
        if "polygons" not in sample:
            return False
        self.evaluator.add(pred, sample)
        return True

    def reduce(self, dist: DistContext) -> None:
        self.evaluator.images = [img for part in all_gather_objects(self.evaluator.images, dist) for img in part]

    def result(self, base: dict[str, Any], metric: str) -> DatasetResult:
        res = self.evaluator.compute()
        rows = [
            {"class": c, "AP": _clean(res.ap[c]), "num_gt": res.num_gt[c], "num_det": res.num_det[c]}
            for c in self.evaluator.class_names
        ]
        score = _clean(res.map) if base["labeled"] else None
        return DatasetResult(metric=metric, score=score, values={"mAP": score}, per_class=rows, **base)


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    info: Any,
    head: Any,
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
    """Predict every sample of `dataset` with `head` and score it with the dataset's metric.

    Args:
        model: an S5Model (eval mode) on `device`.
        info: the dataset's record (label classes, metric).
        head: the HeadSpec predicting (its name routes the model, its classes meet the labels by name).
        dataset: samples {"image", "mask"} or {"image", "polygons", "labels", "difficult"}; labels optional.
        settings: eval mode and sizes.
        split: the split's name (reported).
        device: where images go.
        autocast: the autocast context factory.
        dist: shard over ranks and reduce; None for one process.
        on_prediction: called with (sample, class map (H, W) or detection dict) for each sample.
        show_progress: a progress bar (main rank only).
    """
    dist = dist or DistContext(device=device)
    n = len(dataset)  # type: ignore[arg-type]
    if settings.max_images is not None:
        n = min(n, settings.max_images)
    if info.task == "segmentation":
        score: Any = _SegmentationScore(info, list(head.classes), settings.paper)
    else:
        score = _DetectionScore(info, list(head.classes))
    labeled = torch.zeros((), dtype=torch.float64)
    mine = range(dist.rank, n, dist.world_size)
    bar_ctx = progress_bar(f"evaluate {info.name}", total=len(mine)) if show_progress and dist.is_main else None
    with bar_ctx or nullcontext() as bar:
        for i in mine:
            sample = dataset[i]
            pred = score.predict(model, sample["image"].to(device), head.name, settings, autocast)
            labeled += float(score.add(sample, pred))
            if on_prediction is not None:
                on_prediction(sample, pred)
            if bar is not None:
                bar.advance(1)
    all_reduce_sum(labeled, dist)
    score.reduce(dist)
    base = {
        "dataset": info.name,
        "task": info.task,
        "split": split,
        "mode": settings.mode,
        "images": n,
        "labeled": bool(labeled > 0),
    }
    return score.result(base, info.metric)
