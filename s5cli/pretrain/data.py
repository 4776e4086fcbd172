"""S4P data: the labeled and unlabeled sources, wrapped so that each draw yields its S4P views.

The wrappers take the `(index, sample_seed)` keys of training/data.py and build every random view
from that seed, so a batch depends only on (seed, epoch, position).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from s5cli.errors import ConfigError, InputError
from s5cli.pretrain.config import PretrainConfig
from s5cli.pretrain.views import ViewConfig, labeled_views, unlabeled_views
from s5cli.training.data import SampleKey, seeded_rng


class LabeledViews(Dataset):
    """A segmentation dataset -> {"image", "mask"} weak views of `size` pixels."""

    def __init__(self, base: Dataset, size: int, cfg: ViewConfig) -> None:
        self.base, self.size, self.cfg = base, size, cfg

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        sample = self.base[key[0]]
        if "mask" not in sample:
            raise InputError("this split has no labels", sample.get("path"))
        return labeled_views(sample["image"], sample["mask"], seeded_rng(key), self.size, self.cfg)


class UnlabeledViews(Dataset):
    """An image dataset -> {"image_w", "image_s", "ignore", "box"} of `size` pixels."""

    def __init__(self, base: Dataset, size: int, cfg: ViewConfig) -> None:
        self.base, self.size, self.cfg = base, size, cfg

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        sample = self.base[key[0]]
        return unlabeled_views(sample["image"], seeded_rng(key), self.size, self.cfg)


def labeled_root(cfg: PretrainConfig) -> Path:
    """The labeled dataset's folder (or custom YAML): `labeled.root`, else found under `labeled.data_root`."""
    from s5cli.datasets.registry import find_dataset_root

    lc = cfg.labeled
    if lc.root is not None:
        return lc.root
    if lc.data_root is not None:
        return find_dataset_root(lc.data_root, lc.dataset)
    raise ConfigError("set labeled.root (the dataset folder) or labeled.data_root (a folder of datasets)")


def labeled_source(cfg: PretrainConfig, split: str) -> tuple[Dataset, Any]:
    """(dataset, DatasetInfo) of the labeled source for a split; it must be a segmentation dataset."""
    from s5cli.datasets.registry import dataset_info, get_dataset

    root = labeled_root(cfg)
    info = dataset_info(cfg.labeled.dataset, root)
    if info.task != "segmentation":
        raise ConfigError(f"labeled.dataset '{info.name}' is a {info.task} dataset; S4P needs segmentation labels")
    return get_dataset(cfg.labeled.dataset, root, split, **cfg.labeled.options), info


def unlabeled_source(cfg: PretrainConfig) -> Dataset:
    """The unlabeled images: a curate manifest's kept chips, or every image under a folder."""
    uc = cfg.unlabeled
    if uc.folder is not None:
        from s5cli.datasets.imagefolder import ImageFolder

        return ImageFolder(uc.folder, split="all", name="unlabeled")
    from s5cli.datasets.corpus import CorpusDataset

    return CorpusDataset(uc.manifest)
