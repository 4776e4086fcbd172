"""The paper's evaluation modes: how one image becomes class probabilities or oriented boxes (docs/method.md).

Segmentation modes (S5 `RS_Finetune/Semantic_Segmentation/evaluate.py`), on images in [0, 1]:
- `crop` ("original"): each sample as the loader cuts it (ISPRS: 512 windows), predicted whole, with
  horizontal-flip test-time augmentation when `flip` (softmax of the image + softmax of the flipped one);
- `slide`: full-size tile windows every `stride` pixels, the last row and column snapped to the border
  (UniMatch V2 rule, so a fixed-size ViT input always sees a whole window), softmax summed per pixel;
  images smaller than a tile are padded right/bottom and cropped back;
- `resize`: the whole image bilinearly resized to one tile, logits resized back to the image size.
Detection: `detect` resizes the long side to the model's size (keep ratio, S5 Resize 1024) and maps boxes
back; `patches` runs overlapping patches (DOTA: 1024 with a 200 px gap) merged with rotated NMS.
Inputs whose sides are not multiples of 16 (32 for detection) are padded right/bottom with 0.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from s5cli.geo.tiles import grid_starts

SegMode = Literal["crop", "slide", "resize"]
Autocast = Callable[[], AbstractContextManager[object]]


def _pad_to(x: torch.Tensor, multiple: int, min_size: int = 0) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph = max(-h % multiple, min_size - h)
    pw = max(-w % multiple, min_size - w)
    return F.pad(x, (0, pw, 0, ph)) if ph > 0 or pw > 0 else x


def _probs(model: nn.Module, x: torch.Tensor, head: str, flip: bool, autocast: Autocast) -> torch.Tensor:
    """Softmax (B, K, h, w) of a batch (B, C, h, w), padded to the patch grid and cropped back; + h-flipped pass."""
    h, w = x.shape[-2:]

    def once(inp: torch.Tensor) -> torch.Tensor:
        with autocast():
            return model(_pad_to(inp, 16), head).float().softmax(1)[..., :h, :w]

    out = once(x)
    if flip:  # flip before padding, so the padding stays on the right of both passes
        out = out + once(x.flip(-1)).flip(-1)
    return out


@torch.no_grad()
def segment_crop(model: nn.Module, image: torch.Tensor, head: str, flip: bool, autocast: Autocast) -> torch.Tensor:
    """'original' mode: class probabilities (K, H, W) of one image (C, H, W), optional h-flip TTA."""
    return _probs(model, image[None], head, flip, autocast)[0]


@torch.no_grad()
def segment_slide(
    model: nn.Module,
    image: torch.Tensor,
    head: str,
    tile: int,
    stride: int,
    flip: bool,
    autocast: Autocast,
    batch_size: int = 4,
) -> torch.Tensor:
    """Sliding window: summed softmax (K, H, W) / window count, every window tile x tile."""
    h, w = image.shape[-2:]
    x = _pad_to(image, 1, min_size=tile)  # small images: pad up to one tile
    hp, wp = x.shape[-2:]
    starts = [(r, c) for r in grid_starts(hp, tile, stride) for c in grid_starts(wp, tile, stride)]
    total: torch.Tensor | None = None
    count = torch.zeros(1, hp, wp, device=image.device)
    for i in range(0, len(starts), max(batch_size, 1)):
        chunk = starts[i : i + max(batch_size, 1)]
        batch = torch.stack([x[:, r : r + tile, c : c + tile] for r, c in chunk])
        probs = _probs(model, batch, head, flip, autocast)
        if total is None:
            total = torch.zeros(probs.shape[1], hp, wp, device=probs.device)
        for (r, c), p in zip(chunk, probs):
            total[:, r : r + tile, c : c + tile] += p
            count[:, r : r + tile, c : c + tile] += 1
    assert total is not None  # at least one window always exists
    return (total / count.to(total.device))[:, :h, :w]


@torch.no_grad()
def segment_resize(
    model: nn.Module, image: torch.Tensor, head: str, tile: int, flip: bool, autocast: Autocast
) -> torch.Tensor:
    """Whole image resized to tile x tile; logits resized back to (H, W) before the softmax."""
    h, w = image.shape[-2:]
    x = F.interpolate(image[None], size=(tile, tile), mode="bilinear", align_corners=False)

    def back(inp: torch.Tensor) -> torch.Tensor:
        with autocast():
            logits = model(inp, head).float()
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1)

    probs = back(x)
    if flip:
        probs = probs + back(x.flip(-1)).flip(-1)
    return probs[0]


def segment(
    model: nn.Module,
    image: torch.Tensor,
    head: str,
    mode: SegMode,
    tile: int,
    *,
    overlap: float = 0.5,
    flip: bool = False,
    autocast: Autocast = nullcontext,
    batch_size: int = 4,
) -> torch.Tensor:
    """Class probabilities (K, H, W) (unnormalised sums for TTA) of one image by a named mode."""
    if mode == "crop":
        return segment_crop(model, image, head, flip, autocast)
    if mode == "slide":
        stride = max(round(tile * (1.0 - overlap)), 1)
        return segment_slide(model, image, head, tile, stride, flip, autocast, batch_size)
    if mode == "resize":
        return segment_resize(model, image, head, tile, flip, autocast)
    raise ValueError(f"unknown segmentation mode '{mode}'")


def _scale_boxes(det: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    boxes = det["boxes"].float().clone()
    boxes[:, :4] /= scale  # a uniform scale keeps the angle
    return {"boxes": boxes, "scores": det["scores"].float(), "labels": det["labels"].long()}


@torch.no_grad()
def detect(model: nn.Module, image: torch.Tensor, head: str, size: int, autocast: Autocast) -> dict[str, torch.Tensor]:
    """Detections of one image (C, H, W): long side resized to `size`, padded to /32, boxes mapped back."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    x = image[None]
    if scale != 1.0:
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
    with autocast():
        det = model(_pad_to(x, 32), head)[0]
    return _scale_boxes(det, scale)


@torch.no_grad()
def detect_patches(
    model: nn.Module,
    image: torch.Tensor,
    head: str,
    size: int,
    gap: int,
    autocast: Autocast,
    batch_size: int = 2,
    merge_iou: float | None = None,
) -> dict[str, torch.Tensor]:
    """Detections of a large image by size x size patches with `gap` overlap, merged by rotated NMS at `merge_iou`."""
    from s5cli.detection.patches import detect_large_image

    def run(batch: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        with autocast():
            return [_scale_boxes(d, 1.0) for d in model(batch, head)]

    return detect_large_image(
        run, image, patch_size=size, gap=min(gap, size - 1), batch_size=batch_size, nms_iou=merge_iou
    )
