"""The paper's protocol: the authors' evaluation as their code computes it, quirks included.

`s5 evaluate --protocol paper` reproduces the numbers of the S5 table from the released weights
(RS_Finetune/Semantic_Segmentation/evaluate.py and util/test_utils.py::net_process); the standard
protocol (scoring/modes.py) is the correct one, equal to mmseg / GeoSeg. What differs here:
- 'original' (crop) mode with flips averages the softmax of the image, its horizontal AND its vertical
  flip (net_process);
- 'slide' visits window starts min(a * stride, H - tile) for a = 0 .. H // stride (and the same across),
  so the last row and column of windows are added several times (three times on LoveDA's 1024 images at
  stride 256), and the softmax sums are not divided by a count;
- 'resize' resizes the image with align_corners=True and upsamples the softmax (not the logits) back
  with align_corners=True;
- the scores (metrics.segmentation.PaperScores): numpy histograms whose last bin is closed, so with the
  ignore index equal to the class count (ISPRS clutter 5 with 5 classes) every ignored pixel counts as
  a correct pixel of the last class (car); classes absent from labels and predictions count as IoU 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s5cli.scoring.modes import Autocast, SegMode, _pad_to


def _softmax(model: nn.Module, x: torch.Tensor, head: str, autocast: Autocast) -> torch.Tensor:
    h, w = x.shape[-2:]
    with autocast():
        return model(_pad_to(x, 16), head).float().softmax(1)[..., :h, :w]


def _net_process(model: nn.Module, x: torch.Tensor, head: str, flip: bool, autocast: Autocast) -> torch.Tensor:
    """The mean softmax of the image and, with `flip`, of its horizontal and vertical flips (net_process)."""
    out = [_softmax(model, x, head, autocast)]
    if flip:
        out.append(_softmax(model, x.flip(-1), head, autocast).flip(-1))
        out.append(_softmax(model, x.flip(-2), head, autocast).flip(-2))
    return torch.stack(out).mean(0)


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """The official loop's window starts along one side, repeats included."""
    return [min(a * stride, length - tile) for a in range(length // stride + 1)]


@torch.no_grad()
def segment_paper(
    model: nn.Module,
    image: torch.Tensor,
    head: str,
    mode: SegMode,
    tile: int,
    *,
    overlap: float = 0.5,
    flip: bool = False,
    autocast: Autocast,
) -> torch.Tensor:
    """Class scores (K, H, W) of one image (C, H, W) as the authors' evaluate.py computes them."""
    h, w = image.shape[-2:]
    x = image[None]
    if mode == "crop":
        return _net_process(model, x, head, flip, autocast)[0]
    if mode == "resize":
        small = F.interpolate(x, size=(tile, tile), mode="bilinear", align_corners=True)
        probs = _net_process(model, small, head, False, autocast)
        return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=True)[0]
    if mode == "slide":
        stride = max(round(tile * (1.0 - overlap)), 1)
        x = _pad_to(x, 1, min_size=tile)  # the official loop needs images of at least one tile
        hp, wp = x.shape[-2:]
        total: torch.Tensor | None = None
        for r in _starts(hp, tile, stride):
            for c in _starts(wp, tile, stride):
                probs = _net_process(model, x[..., r : r + tile, c : c + tile], head, False, autocast)[0]
                if total is None:
                    total = torch.zeros(probs.shape[0], hp, wp, device=probs.device)
                total[:, r : r + tile, c : c + tile] += probs
        assert total is not None  # at least one window always exists
        return total[:, :h, :w]
    raise ValueError(f"unknown segmentation mode '{mode}'")
