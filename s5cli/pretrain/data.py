"""S4P data sources: the labeled segmentation dataset and the unlabeled images (manifest or folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from s5cli.errors import ConfigError
from s5cli.pretrain.config import PretrainConfig


def labeled_root(cfg: PretrainConfig) -> Path:
    """The labeled dataset's folder (or YAML): `--labeled` as a YAML, `labeled.root`, or found under --data-root."""
    from s5cli.datasets.registry import is_dataset_yaml, resolve_dataset

    lc = cfg.labeled
    if lc.root is None and lc.data_root is None and not is_dataset_yaml(lc.dataset):
        raise ConfigError(
            f"give --data-root (a folder holding {lc.dataset}/), labeled.root (the dataset folder) "
            "or --labeled YOUR_DATASET.yaml"
        )
    return resolve_dataset(lc.dataset, lc.data_root, lc.root)[2]


def labeled_info(cfg: PretrainConfig) -> Any:
    """The record of the labeled source; it must be a segmentation dataset."""
    from s5cli.datasets.registry import dataset_info

    info = dataset_info(cfg.labeled.dataset, labeled_root(cfg))
    if info.task != "segmentation":
        raise ConfigError(f"the labeled dataset '{info.name}' is a {info.task} dataset; S4P needs segmentation labels")
    return info


def labeled_source(cfg: PretrainConfig, split: str, head_classes: Sequence[str]) -> Dataset:
    """The labeled source's split, its masks in the head's class ids (classes the head lacks ignored)."""
    from s5cli.datasets.base import HeadLabels
    from s5cli.datasets.registry import get_dataset

    labels = HeadLabels(labeled_info(cfg).classes, head_classes)
    return get_dataset(cfg.labeled.dataset, labeled_root(cfg), split, transforms=labels, **cfg.labeled.options)


def unlabeled_source(cfg: PretrainConfig) -> Dataset:
    """The unlabeled images: a curate manifest's kept chips, or every image under a folder."""
    uc = cfg.unlabeled
    if uc.folder is not None:
        from s5cli.datasets.imagefolder import ImageFolder

        return ImageFolder(uc.folder, split="all", name="unlabeled")
    from s5cli.datasets.corpus import CorpusDataset

    return CorpusDataset(uc.manifest)
