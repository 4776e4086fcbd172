"""Detection on images larger than the model's input: overlapping patches, shifted back, merged by rotated NMS.

DOTA's protocol (BboxToolkit split configs `ss_test.json`): 1024 patches with a gap (overlap) of 200
pixels, the last row and column snapped to the image edge, patches past the edge padded with the mean
colour; detections of every patch are shifted to image coordinates and merged with per-class rotated
NMS (OBBDetection `datasets/obb/dota.py::_merge_func`). The merge IoU depends on what the result is
for: 0.1 when scored locally (`DOTADataset.evaluate`, merge_iou_thr=0.1), 0.5 in the files for the
DOTA server (`tools/test.py --format-only` -> `format_results`, iou_thr=0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

from s5cli.console import progress_bar
from s5cli.datasets.dota import PATCH_PADDING_RGB
from s5cli.detection.nms import batched_nms
from s5cli.errors import InputError
from s5cli.geo.tiles import grid_starts

ModelFn = Callable[[Tensor], list[dict[str, Tensor]]]
MERGE_IOU = 0.1  # local evaluation
SUBMISSION_MERGE_IOU = 0.5  # DOTA server (Task1) files
PAD_COLOUR = tuple(v / 255 for v in PATCH_PADDING_RGB)  # in [0, 1], the model's input scale


def patch_origins(height: int, width: int, patch_size: int, gap: int) -> list[tuple[int, int]]:
    """Top-left corners (x, y) of the patch grid, row by row; the last row and column end at the image edge."""
    if patch_size <= 0 or not 0 <= gap < patch_size:
        raise InputError(f"need patch_size > 0 and 0 <= gap < patch_size, got {patch_size} and {gap}")
    stride = patch_size - gap
    return [(x, y) for y in grid_starts(height, patch_size, stride) for x in grid_starts(width, patch_size, stride)]


def _crop(image: Tensor, x: int, y: int, size: int, pad_value: float | Sequence[float]) -> Tensor:
    patch = image[:, y : y + size, x : x + size]
    if patch.shape[1:] == (size, size):
        return patch
    # Images smaller than a patch: pad right and bottom, per band.
    fill = torch.as_tensor(pad_value, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    if fill.shape[0] not in (1, image.shape[0]):
        raise InputError(f"{fill.shape[0]} padding values for a {image.shape[0]}-band image")
    out = fill.expand(image.shape[0], size, size).clone()
    out[:, : patch.shape[1], : patch.shape[2]] = patch
    return out


def merge_detections(
    parts: list[dict[str, Tensor]], nms_iou: float, max_detections: int | None = None
) -> dict[str, Tensor]:
    """Concatenate detection dicts (image coordinates) and keep the per-class rotated-NMS survivors, best first."""
    boxes = torch.cat([p["boxes"].reshape(-1, 5).float() for p in parts]) if parts else torch.zeros(0, 5)
    scores = torch.cat([p["scores"].reshape(-1).float() for p in parts]) if parts else torch.zeros(0)
    labels = torch.cat([p["labels"].reshape(-1).long() for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
    keep = batched_nms(boxes, scores, labels, nms_iou)
    if max_detections is not None:
        keep = keep[:max_detections]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


@torch.no_grad()
def detect_large_image(
    model_fn: ModelFn,
    image: Tensor,
    patch_size: int = 1024,
    gap: int = 200,
    batch_size: int = 2,
    nms_iou: float | None = None,
    pad_value: float | Sequence[float] = PAD_COLOUR,
    max_detections: int | None = None,
    show_progress: bool = False,
) -> dict[str, Tensor]:
    """Detect objects in a (C, H, W) image in [0, 1] by patches: {"boxes" (M, 5), "scores" (M,), "labels" (M,)}.

    Args:
        model_fn: a batch (B, C, patch_size, patch_size) -> one detection dict per patch, in patch pixels.
        image: the whole image; patches are cut on its device.
        patch_size: side of the square patches (smaller images are padded to it with pad_value).
        gap: overlap of neighbouring patches in pixels.
        batch_size: patches per model call.
        nms_iou: rotated IoU above which a lower-scored detection of the same class is dropped when merging;
            None: MERGE_IOU (local evaluation; SUBMISSION_MERGE_IOU for DOTA server files).
        pad_value: padding of patches that reach past the image, one value or one per band
            (default: BboxToolkit's mean colour, which the normalisation maps to about 0).
        max_detections: keep at most this many detections (all when None).
        show_progress: show a progress bar over the patches.
    """
    if image.ndim != 3:
        raise InputError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    origins = patch_origins(height, width, patch_size, gap)
    parts: list[dict[str, Tensor]] = []
    bar_context = (
        progress_bar("detecting patches", total=len(origins), unit="patch") if show_progress else nullcontext()
    )
    with bar_context as bar:
        for start in range(0, len(origins), max(batch_size, 1)):
            chunk = origins[start : start + max(batch_size, 1)]
            batch = torch.stack([_crop(image, x, y, patch_size, pad_value) for x, y in chunk])
            for (x, y), det in zip(chunk, model_fn(batch)):
                boxes = det["boxes"].reshape(-1, 5).float().clone()
                boxes[:, 0] += x
                boxes[:, 1] += y
                parts.append({"boxes": boxes.cpu(), "scores": det["scores"].cpu(), "labels": det["labels"].cpu()})
            if bar is not None:
                bar.advance(len(chunk))
    return merge_detections(parts, MERGE_IOU if nms_iou is None else nms_iou, max_detections)
