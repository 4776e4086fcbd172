"""Batching sample dicts: images stacked (padded right/bottom to the largest), objects kept as lists.

Padding follows the crop convention: image 0, mask 255 (ignored), valid False; polygons need no change
because padding is added on the right and bottom. ``"sizes"`` holds each sample's (H, W) before padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from s5cli.datasets.base import IGNORE, Sample

_PAD = {"image": 0.0, "mask": IGNORE, "valid": False}
_LISTS = ("dataset", "path", "window")


def _stack(tensors: list[torch.Tensor], pad_value: float | bool, height: int, width: int) -> torch.Tensor:
    padded = []
    for t in tensors:
        ph, pw = height - t.shape[-2], width - t.shape[-1]
        padded.append(F.pad(t, (0, pw, 0, ph), value=pad_value) if ph or pw else t)
    return torch.stack(padded)


def _collate(samples: Sequence[Sample], object_keys: tuple[str, ...]) -> dict[str, Any]:
    if not samples:
        raise ValueError("cannot collate an empty batch")
    sizes = [tuple(s["image"].shape[-2:]) for s in samples]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    batch: dict[str, Any] = {"sizes": sizes}
    for key, pad in _PAD.items():
        present = [key in s for s in samples]
        if all(present):
            batch[key] = _stack([s[key] for s in samples], pad, height, width)
        elif any(present):
            raise ValueError(f"some samples have '{key}' and some do not; batch labeled and unlabeled data apart")
    for key in object_keys:
        if any(key in s for s in samples):
            batch[key] = [s[key] for s in samples]
    for key in _LISTS:
        if any(key in s for s in samples):
            batch[key] = [s.get(key) for s in samples]
    return batch


def collate_segmentation(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack images (B, C, H, W) and masks (B, H, W); names, paths and windows as lists."""
    return _collate(samples, ())


def collate_detection(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack images (B, C, H, W); polygons, labels, difficult and truncated as lists of per-image tensors."""
    return _collate(samples, ("polygons", "labels", "difficult", "truncated"))
