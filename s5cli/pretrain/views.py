"""S4P training views, built from the shared S5 augmentations (s5cli.datasets.augment).

- labeled: the weak view (rescale 0.5-2.0, crop with mask padding 255, h/v flips) -> {"image", "mask"};
- unlabeled: the weak view, the strong view on top of it (colour jitter p=0.8, grayscale p=0.2,
  blur p=0.5), the ignore map (255 where the crop is padding: the official code tags it 254 and
  turns it into ignore, S4_Pretrain/dataset/semi_sup.py) and a CutMix box (p=0.5)
  -> {"image_w", "image_s", "ignore", "box"}.
The augmentations draw from torch's RNG; each draw here runs on a forked RNG seeded with the key's
sample seed (training/data.py), so a view is a pure function of (seed, epoch, position): the same
with any number of workers, and the training process's own RNG is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils.data import Dataset

from s5cli.config import StrictConfig
from s5cli.datasets.augment import cutmix_box, strong_view, weak_view
from s5cli.datasets.info import IGNORE
from s5cli.errors import InputError
from s5cli.training.data import SampleKey


class ViewConfig(StrictConfig):
    """Augmentation settings (defaults = S4P, docs/method.md)."""

    scale_range: tuple[float, float] = (0.5, 2.0)
    cutmix_p: float = 0.5
    cutmix_area: tuple[float, float] = (0.02, 0.4)
    cutmix_ratio: tuple[float, float] = (0.3, 1 / 0.3)


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block on torch's CPU RNG seeded with `seed`, restoring the previous state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class LabeledViews(Dataset):
    """A segmentation dataset -> {"image": (C, s, s), "mask": (s, s) int64} weak views."""

    def __init__(self, base: Dataset, size: int, cfg: ViewConfig) -> None:
        self.base = base
        self.weak = weak_view(size, cfg.scale_range)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        sample = self.base[key[0]]
        if "mask" not in sample:
            raise InputError("this split has no labels", sample.get("path"))
        with seeded_torch(key[1]):
            out = self.weak({"image": sample["image"], "mask": sample["mask"].long()})
        return {"image": out["image"].contiguous(), "mask": out["mask"].contiguous()}


class UnlabeledViews(Dataset):
    """An image dataset -> {"image_w", "image_s": (C, s, s), "ignore": (s, s) uint8, "box": (s, s) bool}."""

    def __init__(self, base: Dataset, size: int, cfg: ViewConfig) -> None:
        self.base, self.size, self.cfg = base, size, cfg
        self.weak, self.strong = weak_view(size, cfg.scale_range), strong_view()

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        sample = self.base[key[0]]
        c = self.cfg
        with seeded_torch(key[1]):
            weak = self.weak({"image": sample["image"]})  # adds "valid": False on padding
            strong = self.strong({"image": weak["image"]})["image"]
            box = cutmix_box(self.size, c.cutmix_p, c.cutmix_area, c.cutmix_ratio)
        ignore = torch.where(weak["valid"], 0, IGNORE).to(
            torch.uint8
        )  # uint8: a quarter of the bytes between processes
        return {"image_w": weak["image"].contiguous(), "image_s": strong.contiguous(), "ignore": ignore, "box": box}
