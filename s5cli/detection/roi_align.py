"""RoIAlign for horizontal and rotated boxes on top of `F.grid_sample` (no compiled ops).

Semantics follow torchvision/mmcv RoIAlign and detectron2/OBBDetection RoIAlignRotated: each
output bin averages `sampling_ratio` x `sampling_ratio` bilinear samples placed at the centres of
a regular sub-grid; `aligned=True` shifts box coordinates by half a pixel (continuous coordinates);
a sample within one pixel outside the map reads the edge value and one farther out reads 0.
That is grid_sample with border padding, multiplied by an in-range mask.
Rotated boxes use the convention of `s5cli.geometry.boxes`: output columns run along the w side
(cos a, -sin a) and rows along the h side (sin a, cos a).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _sample(features: Tensor, batch_index: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear values (N, C, *grid) of features (B, C, H, W) at pixel coordinates x, y (N, *grid)."""
    n, grid = x.shape[0], x.shape[1:]
    out = features.new_zeros(n, features.shape[1], *grid)
    height, width = features.shape[-2:]
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    # grid_sample with align_corners=False puts pixel i's centre at (2i + 1) / size - 1.
    gx = (2 * x + 1) / width - 1
    gy = (2 * y + 1) / height - 1
    for b in torch.unique(batch_index).tolist():
        sel = batch_index == b
        g = torch.stack([gx[sel], gy[sel]], dim=-1).reshape(1, -1, grid[-1], 2)  # (1, n_b * gh, gw, 2)
        vals = F.grid_sample(features[b : b + 1], g, mode="bilinear", padding_mode="border", align_corners=False)
        vals = vals.reshape(features.shape[1], -1, *grid).transpose(0, 1)  # (n_b, C, *grid)
        out[sel] = vals * inside[sel][:, None].to(vals.dtype)
    return out


def _bin_offsets(size: int, sampling_ratio: int, like: Tensor) -> Tensor:
    """Sample positions (size * sampling_ratio,) in units of the box side, in (0, 1)."""
    k = torch.arange(size * sampling_ratio, dtype=like.dtype, device=like.device)
    return (k + 0.5) / (size * sampling_ratio)


def _pool(values: Tensor, out_h: int, out_w: int, sampling_ratio: int) -> Tensor:
    """Average the sampling_ratio x sampling_ratio samples of each bin: (N, C, oh*s, ow*s) -> (N, C, oh, ow)."""
    n, c = values.shape[:2]
    s = sampling_ratio
    return values.reshape(n, c, out_h, s, out_w, s).mean(dim=(3, 5))


def _check(sampling_ratio: int, rois: Tensor, columns: int) -> None:
    if sampling_ratio <= 0:
        raise ValueError(f"sampling_ratio must be positive, got {sampling_ratio}")
    if rois.dim() != 2 or rois.shape[1] != columns:
        raise ValueError(f"rois must be (N, {columns}), got {tuple(rois.shape)}")


def _output_hw(output_size: int | tuple[int, int]) -> tuple[int, int]:
    return (output_size, output_size) if isinstance(output_size, int) else output_size


def _scaled(rois: Tensor, wh: Tensor, spatial_scale: float, aligned: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Columns 1-2 of rois and the (N, 2) sizes wh in feature pixels: (x, y, w, h), shifted half a pixel if aligned."""
    offset = 0.5 if aligned else 0.0
    x = rois[:, 1] * spatial_scale - offset
    y = rois[:, 2] * spatial_scale - offset
    w = wh[:, 0] * spatial_scale
    h = wh[:, 1] * spatial_scale
    if not aligned:  # legacy mode: boxes at least one pixel wide
        w, h = w.clamp_min(1.0), h.clamp_min(1.0)
    return x, y, w, h


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    """Pool (N, C, oh, ow) from features (B, C, H, W) in rois (N, 5) = (batch index, x1, y1, x2, y2)."""
    _check(sampling_ratio, rois, 5)
    out_h, out_w = _output_hw(output_size)
    if rois.shape[0] == 0:
        return features.new_zeros(0, features.shape[1], out_h, out_w)
    x1, y1, w, h = _scaled(rois, rois[:, 3:5] - rois[:, 1:3], spatial_scale, aligned)
    fx = _bin_offsets(out_w, sampling_ratio, rois)
    fy = _bin_offsets(out_h, sampling_ratio, rois)
    x = (x1[:, None] + w[:, None] * fx)[:, None, :].expand(-1, fy.numel(), -1)  # (N, oh*s, ow*s)
    y = (y1[:, None] + h[:, None] * fy)[:, :, None].expand(-1, -1, fx.numel())
    return _pool(_sample(features, rois[:, 0].long(), x, y), out_h, out_w, sampling_ratio)


def rotated_roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    """Pool (N, C, oh, ow) from features (B, C, H, W) in rois (N, 6) = (batch index, cx, cy, w, h, angle)."""
    _check(sampling_ratio, rois, 6)
    out_h, out_w = _output_hw(output_size)
    if rois.shape[0] == 0:
        return features.new_zeros(0, features.shape[1], out_h, out_w)
    cx, cy, w, h = _scaled(rois, rois[:, 3:5], spatial_scale, aligned)
    cos, sin = torch.cos(rois[:, 5])[:, None, None], torch.sin(rois[:, 5])[:, None, None]
    u = (w[:, None] * (_bin_offsets(out_w, sampling_ratio, rois) - 0.5))[:, None, :]  # (N, 1, ow*s) along w
    v = (h[:, None] * (_bin_offsets(out_h, sampling_ratio, rois) - 0.5))[:, :, None]  # (N, oh*s, 1) along h
    x = cx[:, None, None] + u * cos + v * sin  # (N, oh*s, ow*s)
    y = cy[:, None, None] - u * sin + v * cos
    return _pool(_sample(features, rois[:, 0].long(), x, y), out_h, out_w, sampling_ratio)
