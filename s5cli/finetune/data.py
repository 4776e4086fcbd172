"""Fine-tuning data: each dataset's training views, batches, heads and validation split.

Every dataset is repeated to the longest one's length (S5's id-list repetition, datasets/mixing.py) and
gets its own resumable stream (training/data.py), so each step draws one batch per dataset and an epoch
is one pass over the longest. A draw's augmentation is a pure function of its key (index, seed): the
S5 transforms (datasets/augment.py, torch RNG) run under a forked RNG seeded from the key, so batches
do not depend on the worker count and a resume restarts them exactly.
- segmentation: rescale 0.5-2.0, 512 crop (mask padded with ignore), h/v flips, rot90, colour jitter,
  grayscale, blur (docs/method.md);
- detection: long side resized to 1024 (S5 Resize, keep ratio), h/v flips; polygons -> rotated boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from s5cli.datasets.augment import Compose, detection_augment, resize_sample, segmentation_augment
from s5cli.datasets.base import HeadLabels
from s5cli.datasets.collate import collate_detection, collate_segmentation
from s5cli.datasets.info import DatasetInfo
from s5cli.errors import ConfigError, InputError
from s5cli.finetune.config import DatasetSettings, FinetuneConfig
from s5cli.models.spec import HeadSpec
from s5cli.training.data import SampleKey


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of the run: its record, folder, splits, options, head and loss settings."""

    name: str
    info: DatasetInfo
    root: Path
    split: str
    val_split: str | None
    options: dict[str, Any]
    settings: DatasetSettings
    head: HeadSpec

    @property
    def task(self) -> str:
        """The task: segmentation or detection."""
        return self.info.task


def plan_datasets(cfg: FinetuneConfig) -> list[DatasetPlan]:
    """Resolve every dataset of the config (unknown names, missing folders: InputError before any work)."""
    from s5cli.datasets.registry import check_settings_keys, is_dataset_yaml, resolve_dataset

    plans = []
    for entry in cfg.datasets:
        own = cfg.settings_for(entry) if not is_dataset_yaml(entry) else None
        name, dinfo, root = resolve_dataset(entry, cfg.data_root, own.root if own else None)
        if own is None:
            own = cfg.settings_for(name)
        if any(p.name == name for p in plans):
            raise ConfigError(f"a dataset is named twice in datasets: {cfg.datasets}")
        if dinfo.task not in ("segmentation", "detection"):
            raise InputError(f"{name} has no labels to fine-tune on (a {dinfo.task} dataset)")
        val = own.val_split if own.val_split is not None else dinfo.val_split
        val = None if val in (None, "none", "") else val
        size = cfg.crop_size if dinfo.task == "segmentation" else cfg.det_size
        detection = dict(cfg.model.detection) if dinfo.task == "detection" else {}
        head = HeadSpec.from_dataset(dinfo, size, options=detection)
        split = own.split or dinfo.train_split
        plans.append(DatasetPlan(name, dinfo, Path(root), split, val, dict(own.options), own, head))
    check_settings_keys(cfg.dataset_settings, [p.name for p in plans])
    return plans


class ResizeLong:
    """Resize so that the long side is `size` (S5 detection: Resize 1024, keep_ratio)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The resized sample (polygons scaled along)."""
        h, w = sample["image"].shape[-2:]
        s = self.size / max(h, w)
        return resize_sample(sample, max(1, round(h * s)), max(1, round(w * s)))


class TrainViews(Dataset):
    """A dataset seen through training keys (index, seed): the augmented sample with the keys a step needs."""

    def __init__(self, base: Dataset, transform: Compose, keep: tuple[str, ...], name: str) -> None:
        self.base, self.transform, self.keep, self.name = base, transform, keep, name

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        sample = self.base[key[0]]
        missing = [k for k in self.keep if k not in sample]
        if missing:
            what = ", ".join(missing)
            raise InputError(f"{self.name}: this split has no labels ({what} missing)", sample.get("path"))
        with torch.random.fork_rng(devices=[]):  # the key alone decides the augmentation
            torch.manual_seed(key[1])
            out = self.transform(sample)
        return {k: out[k] for k in self.keep}


def collate_seg(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Images (B, C, H, W) and masks (B, H, W)."""
    batch = collate_segmentation(samples)
    return {"image": batch["image"], "mask": batch["mask"]}


def collate_det(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Images (B, C, H, W) and per-image targets {"boxes" (N, 5) rotated boxes, "labels" (N,)}."""
    from s5cli.geometry.boxes import polygons_to_rboxes

    batch = collate_detection(samples)
    targets = [
        {"boxes": polygons_to_rboxes(p.float()).reshape(-1, 5), "labels": lab.long()}
        for p, lab in zip(batch["polygons"], batch["labels"])
    ]
    return {"image": batch["image"], "targets": targets}


def train_view(plan: DatasetPlan, base: Dataset, cfg: FinetuneConfig) -> tuple[TrainViews, Any]:
    """(keyed augmented dataset, collate function) of one dataset."""
    if plan.task == "segmentation":
        return TrainViews(base, segmentation_augment(cfg.crop_size), ("image", "mask"), plan.name), collate_seg
    transform = Compose([ResizeLong(cfg.det_size), detection_augment()])
    return TrainViews(base, transform, ("image", "polygons", "labels"), plan.name), collate_det


def load_split(plan: DatasetPlan, split: str) -> Dataset:
    """The loader of one training split with the plan's options, masks in the head's class ids."""
    from s5cli.datasets.registry import get_dataset

    labels = HeadLabels(plan.info.classes, plan.head.classes)
    return get_dataset(plan.name, plan.root, split, transforms=labels, **plan.options)
