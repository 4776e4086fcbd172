"""S4P views: the weak view (labeled and unlabeled), the strong view and the CutMix box.

Exactly the list in s5_method.md §1 / algorithms.md §1 (S4_Pretrain/dataset/semi_sup.py, transform.py):
- weak: long side rescaled by U[0.5, 2.0] (bilinear image, nearest mask), random crop with the image
  padded by 0 and the mask by 255 (labeled) or 254 (unlabeled, later ignore), h-flip and v-flip p=0.5;
- strong (unlabeled, on top of the weak view): ColorJitter(0.5, 0.5, 0.5, 0.25) p=0.8 in a random
  order of the four, RandomGrayscale p=0.2, Gaussian blur p=0.5 with sigma ~ U(0.1, 2.0);
- CutMix box p=0.5: area U(0.02, 0.4) of the crop, aspect U(0.3, 1/0.3), redrawn until it fits.
Every random draw comes from the numpy Generator passed in, which training/data.py seeds from
(seed, epoch, position): a view is a pure function of its key, whatever the worker count.
Images are float (C, H, W) in [0, 1]; colour operations that need RGB are skipped for other band counts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from s5cli.config import StrictConfig

UNLABELED_PAD = 254  # padding tag of unlabeled crops, turned into ignore (S4_Pretrain/dataset/semi_sup.py)
IGNORE = 255


class ViewConfig(StrictConfig):
    """Augmentation settings (defaults = S4P)."""

    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    vflip: float = 0.5  # S5's remote-sensing addition; UniMatch flips horizontally only
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.25)  # brightness, contrast, saturation, hue
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    cutmix_p: float = 0.5
    cutmix_area: tuple[float, float] = (0.02, 0.4)
    cutmix_ratio: tuple[float, float] = (0.3, 1 / 0.3)


def rescale(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, ratio: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize so that the long side is U[ratio] times the current one (image bilinear, mask nearest)."""
    h, w = image.shape[-2:]
    long = int(rng.integers(int(max(h, w) * ratio[0]), int(max(h, w) * ratio[1]), endpoint=True))
    long = max(long, 1)
    oh, ow = (long, max(1, int(w * long / h + 0.5))) if h > w else (max(1, int(h * long / w + 0.5)), long)
    if (oh, ow) == (h, w):
        return image, mask
    image = F.interpolate(image[None], size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)[0]
    mask = F.interpolate(mask[None, None].float(), size=(oh, ow), mode="nearest")[0, 0].to(mask.dtype)
    return image.clamp_(0.0, 1.0), mask


def random_crop(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, size: int, mask_pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad right/bottom to at least size x size (image 0, mask `mask_pad`), then crop at a random place."""
    h, w = image.shape[-2:]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        mask = F.pad(mask, (0, pw, 0, ph), value=mask_pad)
    h, w = image.shape[-2:]
    y = int(rng.integers(0, h - size, endpoint=True))
    x = int(rng.integers(0, w - size, endpoint=True))
    return image[:, y : y + size, x : x + size], mask[y : y + size, x : x + size]


def weak_view(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, size: int, cfg: ViewConfig, mask_pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale, crop, flips: image (C, size, size), mask (size, size)."""
    image, mask = rescale(image, mask, rng, cfg.scale_range)
    image, mask = random_crop(image, mask, rng, size, mask_pad)
    if rng.random() < cfg.hflip:
        image, mask = image.flip(-1), mask.flip(-1)
    if rng.random() < cfg.vflip:
        image, mask = image.flip(-2), mask.flip(-2)
    return image.contiguous(), mask.contiguous()


def _jitter(image: torch.Tensor, rng: np.random.Generator, strength: tuple[float, float, float, float]) -> torch.Tensor:
    b, c, s, hue = strength
    rgb = image.shape[0] == 3
    for op in rng.permutation(4):  # torchvision ColorJitter applies the four in a random order
        if op == 0 and b > 0:
            image = TF.adjust_brightness(image, float(rng.uniform(max(0.0, 1 - b), 1 + b)))
        elif op == 1 and c > 0:
            factor = float(rng.uniform(max(0.0, 1 - c), 1 + c))
            image = TF.adjust_contrast(image, factor) if rgb else _gray_contrast(image, factor)
        elif op == 2 and s > 0:
            factor = float(rng.uniform(max(0.0, 1 - s), 1 + s))
            if rgb:
                image = TF.adjust_saturation(image, factor)
        elif op == 3 and hue > 0:
            factor = float(rng.uniform(-hue, hue))
            if rgb:
                image = TF.adjust_hue(image, factor)
    return image


def _gray_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Contrast for any band count: blend with the image mean."""
    return (image * factor + image.mean() * (1 - factor)).clamp(0.0, 1.0)


def strong_view(image: torch.Tensor, rng: np.random.Generator, cfg: ViewConfig) -> torch.Tensor:
    """Colour jitter, grayscale and blur on a weak view (C, H, W)."""
    image = image.clone()
    if rng.random() < cfg.jitter_p:
        image = _jitter(image, rng, cfg.jitter)
    if rng.random() < cfg.grayscale_p and image.shape[0] == 3:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if rng.random() < cfg.blur_p:
        sigma = float(rng.uniform(*cfg.blur_sigma))
        k = 2 * math.ceil(3 * sigma) + 1  # covers +-3 sigma, as PIL's Gaussian radius does
        image = TF.gaussian_blur(image, kernel_size=[k, k], sigma=[sigma, sigma])
    return image.clamp(0.0, 1.0).contiguous()


def cutmix_box(size: int, rng: np.random.Generator, cfg: ViewConfig) -> torch.Tensor:
    """A (size, size) uint8 mask, 1 inside the box (all 0 with probability 1 - cutmix_p)."""
    box = torch.zeros(size, size, dtype=torch.uint8)
    if rng.random() > cfg.cutmix_p:
        return box
    area = rng.uniform(*cfg.cutmix_area) * size * size
    while True:  # UniMatch's obtain_cutmix_box: redraw shape and place until it fits
        ratio = rng.uniform(*cfg.cutmix_ratio)
        w, h = int(math.sqrt(area / ratio)), int(math.sqrt(area * ratio))
        x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
        if x + w <= size and y + h <= size:
            break
    box[y : y + h, x : x + w] = 1
    return box


def labeled_views(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, size: int, cfg: ViewConfig
) -> dict[str, torch.Tensor]:
    """A labeled sample's training view: {"image": (C, s, s), "mask": (s, s) int64, pad 255}."""
    img, msk = weak_view(image, mask.long(), rng, size, cfg, IGNORE)
    return {"image": img, "mask": msk}


def unlabeled_views(
    image: torch.Tensor, rng: np.random.Generator, size: int, cfg: ViewConfig
) -> dict[str, torch.Tensor]:
    """An unlabeled sample's views: weak, strong, ignore (255 on padding, else 0) and the CutMix box."""
    blank = torch.zeros(image.shape[-2:], dtype=torch.int64)
    weak, tag = weak_view(image, blank, rng, size, cfg, UNLABELED_PAD)
    strong = strong_view(weak, rng, cfg)
    ignore = torch.where(tag == UNLABELED_PAD, IGNORE, 0)  # semi_sup.py: 254 -> ignore 255
    return {"image_w": weak, "image_s": strong, "ignore": ignore, "box": cutmix_box(size, rng, cfg)}
