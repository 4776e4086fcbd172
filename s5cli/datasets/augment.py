"""The S5 augmentations as callables on sample dicts, with polygons moved along with the pixels.

docs/method.md, S4P and MoE-MDF (S4_Pretrain/dataset/transform.py, RS_Finetune dataset/finetune.py):
- weak (geometry): random rescale 0.5-2.0 (bilinear image, nearest mask), random crop padded with
  image 0 / mask 255, horizontal and vertical flips p=0.5 (fine-tuning adds rot90 p=0.5);
- strong (colour, on top of weak): ColorJitter(0.5, 0.5, 0.5, 0.25) p=0.8, grayscale p=0.2,
  Gaussian blur p=0.5 with sigma ~ U(0.1, 2.0) (the colour transforms live in colour.py);
- CutMix box p=0.5: area fraction U(0.02, 0.4), aspect U(0.3, 1/0.3), inside the crop.

Every random draw uses torch's RNG, so ``torch.manual_seed`` and DataLoader worker seeding make runs
repeatable. Geometric transforms also move ``"mask"`` and ``"valid"`` (bool (H, W), True on pixels that
come from the image; RandomCrop adds it, pre-training turns padding into ignore with it) and the
``"polygons"`` of detection samples. Flips keep corners clockwise on screen (p1, p4, p3, p2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from s5cli.datasets.base import IGNORE, Sample, Transform
from s5cli.datasets.collate import collate_detection, collate_segmentation
from s5cli.datasets.colour import ColorJitter, RandomBlur, RandomGrayscale
from s5cli.datasets.draws import rand, randint, uniform
from s5cli.datasets.polygons import clip_to_window, make_clockwise

__all__ = [
    "ColorJitter",
    "Compose",
    "RandomApply",
    "RandomBlur",
    "RandomCrop",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomRescale",
    "RandomRot90",
    "RandomVerticalFlip",
    "Resize",
    "collate_detection",
    "collate_segmentation",
    "cutmix_box",
    "detection_augment",
    "resize_sample",
    "segmentation_augment",
    "strong_view",
    "weak_view",
]

_MAPS = ("mask", "valid")  # per-pixel keys moved with the image (nearest-neighbour)
_OBJECT_KEYS = ("labels", "difficult", "truncated")


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        for t in self.transforms:
            sample = t(sample)
        return sample


class RandomApply:
    """Apply a transform with probability p."""

    def __init__(self, transform: Transform, p: float) -> None:
        self.transform, self.p = transform, p

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        return self.transform(sample) if rand() < self.p else sample


def resize_sample(sample: Sample, height: int, width: int) -> Sample:
    """Resize image (bilinear, antialiased like PIL), mask/valid (nearest) and polygons to (height, width)."""
    out = dict(sample)
    image = sample["image"]
    h, w = image.shape[-2:]
    if (h, w) == (height, width):
        return out
    out["image"] = F.interpolate(image[None], (height, width), mode="bilinear", align_corners=False, antialias=True)[0]
    for key in _MAPS:
        if key in sample:
            m = sample[key]
            out[key] = F.interpolate(m[None, None].float(), (height, width), mode="nearest")[0, 0].to(m.dtype)
    if "polygons" in sample:
        scale = torch.tensor([width / w, height / h] * 4, dtype=torch.float32)
        out["polygons"] = sample["polygons"] * scale
    return out


class RandomRescale:
    """Rescale by a factor drawn uniformly in [min_scale, max_scale] (S5: 0.5-2.0 of the long side)."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        self.min_scale, self.max_scale = min_scale, max_scale

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        s = uniform(self.min_scale, self.max_scale)
        h, w = sample["image"].shape[-2:]
        return resize_sample(sample, max(1, round(h * s)), max(1, round(w * s)))


class Resize:
    """Resize to a fixed size (detection: DIOR-R's 800 px to 1024)."""

    def __init__(self, height: int, width: int | None = None) -> None:
        self.height, self.width = height, width or height

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        return resize_sample(sample, self.height, self.width)


class RandomCrop:
    """Random size x size crop; smaller images are padded right/bottom (image 0, mask 255, valid False).

    Polygons are clipped to the crop (kept when at least ``min_iof`` of their area is inside,
    flagged truncated when cut).
    """

    def __init__(self, size: int, min_iof: float = 0.7) -> None:
        self.size, self.min_iof = size, min_iof

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        out = dict(sample)
        image = sample["image"]
        h, w = image.shape[-2:]
        if "valid" not in out:
            out["valid"] = torch.ones((h, w), dtype=torch.bool)
        pad_h, pad_w = max(self.size - h, 0), max(self.size - w, 0)
        if pad_h or pad_w:
            out["image"] = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            if "mask" in out:
                out["mask"] = F.pad(out["mask"], (0, pad_w, 0, pad_h), value=IGNORE)
            out["valid"] = F.pad(out["valid"], (0, pad_w, 0, pad_h), value=False)
            h, w = h + pad_h, w + pad_w
        y, x = randint(0, h - self.size + 1), randint(0, w - self.size + 1)
        out["image"] = out["image"][..., y : y + self.size, x : x + self.size]
        for key in _MAPS:
            if key in out:
                out[key] = out[key][y : y + self.size, x : x + self.size]
        if "polygons" in out:
            polys = out["polygons"].numpy().astype(np.float64)
            clipped, keep, cut = clip_to_window(polys, (x, y, self.size, self.size), self.min_iof)
            idx = torch.from_numpy(keep)
            out["polygons"] = torch.from_numpy(clipped)
            for key in _OBJECT_KEYS:
                if key in out:
                    out[key] = out[key][idx]
            if "truncated" in out:
                out["truncated"] = out["truncated"] | torch.from_numpy(cut)
        return out


def _reorder(polys: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(make_clockwise(polys.numpy().astype(np.float32)))


class _RandomFlip:
    """Mirror along one image axis with probability p; the matching polygon coordinate c -> size - c."""

    _dim = -1  # -1: left-right (x, corners 0::2); -2: top-bottom (y, corners 1::2)

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        if rand() >= self.p:
            return sample
        dim = self._dim
        out = dict(sample)
        size = sample["image"].shape[dim]
        out["image"] = sample["image"].flip(dim)
        for key in _MAPS:
            if key in sample:
                out[key] = sample[key].flip(dim)
        if "polygons" in sample and len(sample["polygons"]):
            first = 0 if dim == -1 else 1  # x coordinates sit at even columns, y at odd ones
            polys = sample["polygons"].clone()
            polys[:, first::2] = size - polys[:, first::2]
            out["polygons"] = _reorder(polys)
        return out


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability p; x -> W - x for polygon corners."""

    _dim = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability p; y -> H - y for polygon corners."""

    _dim = -2


class RandomRot90:
    """Rotate 90 degrees counter-clockwise on screen with probability p: (x, y) -> (y, W - x)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        if rand() >= self.p:
            return sample
        out = dict(sample)
        w = sample["image"].shape[-1]
        out["image"] = torch.rot90(sample["image"], 1, dims=(-2, -1))
        for key in _MAPS:
            if key in sample:
                out[key] = torch.rot90(sample[key], 1, dims=(-2, -1))
        if "polygons" in sample and len(sample["polygons"]):
            polys = sample["polygons"]
            rotated = torch.empty_like(polys)
            rotated[:, 0::2] = polys[:, 1::2]
            rotated[:, 1::2] = w - polys[:, 0::2]
            out["polygons"] = rotated  # a rotation keeps the winding
        return out


def weak_view(crop_size: int, scale: tuple[float, float] = (0.5, 2.0), rot90: bool = False) -> Compose:
    """S5's weak view: rescale, crop with ignore padding, h/v flips (and rot90 for fine-tuning)."""
    steps: list[Callable[[Sample], Sample]] = [
        RandomRescale(*scale),
        RandomCrop(crop_size),
        RandomHorizontalFlip(0.5),
        RandomVerticalFlip(0.5),
    ]
    if rot90:
        steps.append(RandomRot90(0.5))
    return Compose(steps)


def strong_view() -> Compose:
    """S5's strong view, applied on top of a weak one: colour jitter p=0.8, grayscale p=0.2, blur p=0.5."""
    return Compose([RandomApply(ColorJitter(0.5, 0.5, 0.5, 0.25), 0.8), RandomGrayscale(0.2), RandomBlur(0.5)])


def segmentation_augment(crop_size: int = 512) -> Compose:
    """S5 fine-tuning augmentation: weak view with rot90, then the colour transforms (docs/method.md)."""
    return Compose([weak_view(crop_size, rot90=True), strong_view()])


def detection_augment(rot90: bool = False) -> Compose:
    """S5 detection augmentation: h/v flips p=0.5 (rot90 optional)."""
    steps: list[Callable[[Sample], Sample]] = [RandomHorizontalFlip(0.5), RandomVerticalFlip(0.5)]
    if rot90:
        steps.append(RandomRot90(0.5))
    return Compose(steps)


def cutmix_box(
    size: int | tuple[int, int],
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
) -> torch.Tensor:
    """A bool (H, W) CutMix box, all False with probability 1 - p (S5 obtain_cutmix_box, torch RNG).

    The area is a fraction U(area) of the crop and the aspect U(ratio); the top-left corner is drawn
    anywhere and redrawn (with a new aspect) until the box fits, as in the S5 code.
    """
    h, w = (size, size) if isinstance(size, int) else size
    box = torch.zeros((h, w), dtype=torch.bool)
    if rand() >= p:
        return box
    target = uniform(*area) * h * w
    for _ in range(1000):
        r = uniform(*ratio)
        bw, bh = int(math.sqrt(target / r)), int(math.sqrt(target * r))
        x, y = randint(0, w), randint(0, h)
        if x + bw <= w and y + bh <= h:
            box[y : y + bh, x : x + bw] = True
            return box
    # Practically unreachable (each try fits with probability > 1 %); keep the last size, clamped.
    bw, bh = min(bw, w), min(bh, h)
    box[h - bh :, w - bw :] = True
    return box
