"""How a head is scored on a dataset: its protocol (the dataset record's), the head's trained input, and overrides.

One function works this out for `s5 evaluate` and for the validation during pre-training and fine-tuning,
so that a model is validated exactly as it will be evaluated. `Validator` is that validation: every
dataset's score and their mean, as the training engine logs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn
from torch.utils.data import Dataset

from s5cli.datasets.info import DatasetInfo
from s5cli.detection.patches import SUBMISSION_MERGE_IOU
from s5cli.errors import InputError
from s5cli.models.presets import check_input_size
from s5cli.models.spec import HeadSpec
from s5cli.scoring.score import DatasetResult, EvalSettings, evaluate_dataset

Protocol = Literal["standard", "paper"]


@dataclass(frozen=True)
class Choices:
    """What the user chose; None everywhere means the dataset's protocol and the head's trained input."""

    split: str | None = None
    mode: str | None = None  # segmentation: crop, slide or resize
    flip: bool | None = None
    overlap: float | None = None  # slide: share of a tile between neighbouring windows
    tile_size: int | None = None  # segmentation tile
    det_size: int | None = None  # detection input / patch size
    patch_gap: int | None = None  # pixels shared by detection patches
    batch_size: int = 4
    max_images: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # loader options, over the protocol's
    on_patches: bool = False  # patches protocol: score the loader's patches, not merged whole images (fast)
    protocol: Protocol = "standard"  # "paper": the authors' evaluation, quirks included (scoring/paper.py)


@dataclass(frozen=True)
class Job:
    """One dataset to score: its record, the head, where it is and how."""

    info: DatasetInfo
    head: HeadSpec
    root: Path
    split: str
    options: dict[str, Any]
    settings: EvalSettings

    @property
    def name(self) -> str:
        """The dataset's name (= the head's)."""
        return self.info.name

    def load(self) -> Dataset:
        """The split's loader (folders and files are checked here, before any image is predicted)."""
        from s5cli.datasets.registry import get_dataset

        return get_dataset(self.info.name, self.root, self.split, **self.options)


def check_head(head: HeadSpec, info: DatasetInfo, where: str | None = None) -> None:
    """A head fits a dataset: same task, and it predicts the record's head classes (or every label class)."""
    if head.task != info.task:
        raise InputError(f"the {info.name} head is a {head.task} head but {info.name} is a {info.task} dataset", where)
    if list(head.classes) not in (list(info.head_classes), list(info.classes)):
        raise InputError(
            f"the {info.name} head's classes {head.classes} are not the dataset's ({list(info.head_classes)})", where
        )


def plan_job(
    info: DatasetInfo,
    head: HeadSpec,
    root: str | Path,
    choices: Choices = Choices(),
    preset: str | None = None,
    bands: Sequence[str] | None = None,
) -> Job:
    """The split, loader options and eval settings of one dataset (all user errors surface here).

    With the model's `preset`, the tile or patch size is checked against the smallest input it takes.
    `bands` are the ones the head was trained on: where the loader has a band option returning them
    (Potsdam IRRG), it is read so unless the options choose.
    """
    proto = info.protocol
    if proto is None:
        raise InputError(f"{info.name} has no labels to score")
    segmentation = info.task == "segmentation"
    trained = head.input
    size = (choices.tile_size if segmentation else choices.det_size) or trained.size
    if preset is not None:
        check_input_size(preset, size, "tile size" if segmentation else "patch size")
    mode = (choices.mode or proto.mode) if segmentation else proto.mode
    options = dict(proto.options)
    if bands is not None and tuple(bands) != info.bands:
        read_so = [k for k, v in info.band_options.items() if tuple(v) == tuple(bands)]
        if read_so:
            options["bands"] = read_so[0]
    if proto.windows and mode == "crop":
        options.update(crop_size=size, stride=size)  # the loader cuts the tiles the crop mode predicts
    gap = choices.patch_gap if choices.patch_gap is not None else round(trained.overlap * size)
    if not 0 <= gap < size:
        raise InputError(f"the patch gap ({gap} px) must be smaller than the patch size ({size} px)")
    if mode == "patches" and choices.on_patches:
        options.update(patch_size=size, gap=gap)
        mode = "detect"
    options.update(choices.options)
    flip = choices.flip if choices.flip is not None else proto.flip
    overlap = next(v for v in (choices.overlap, proto.overlap, trained.overlap) if v is not None)
    split = choices.split or proto.split
    server = split == proto.submission_split  # DOTA's server files are merged at another IoU than local scores
    settings = EvalSettings(
        mode=mode,  # type: ignore[arg-type]
        size=size,
        flip=bool(flip) and segmentation,
        overlap=overlap,
        gap=gap,
        batch_size=choices.batch_size,
        max_images=choices.max_images,
        merge_iou=SUBMISSION_MERGE_IOU if server else None,
        paper=choices.protocol == "paper" and segmentation,
    )
    return Job(info, head, Path(root), split, options, settings)


class Validator:
    """Scores every job during training: {"<dataset>_<metric>": score, ..., "mean": their mean} (fractions).

    `select` names one metric for the mean instead of each dataset's own (the paper's model selection
    averages mIoU, Potsdam included).
    """

    def __init__(self, jobs: list[Job], select: str | None = None) -> None:
        self.jobs = [(job, job.load()) for job in jobs]
        self.select = select

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def __call__(self, net: nn.Module, ctx: Any) -> dict[str, float]:
        """Score the unwrapped model on every rank (samples sharded over ranks, results reduced)."""
        values: dict[str, float] = {}
        scores = []
        for job, dataset in self.jobs:
            res = evaluate_dataset(
                net, job.info, job.head, dataset, job.settings, split=job.split, device=ctx.device,
                autocast=ctx.autocast, dist=ctx.dist, show_progress=False,
            )  # fmt: skip
            score = math.nan if res.score is None else res.score
            values[result_key(res)] = score
            if self.select is not None and res.values.get(self.select) is not None:
                values[f"{res.dataset}_{self.select}"] = score = float(res.values[self.select])  # type: ignore[arg-type]
            if not math.isnan(score):
                scores.append(score)
        values["mean"] = sum(scores) / len(scores) if scores else math.nan
        return values


def result_key(res: DatasetResult) -> str:
    """The metrics.csv column of a dataset's score, e.g. potsdam_mF1."""
    return f"{res.dataset}_{res.metric}"
