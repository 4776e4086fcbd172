"""UperNet decoder and the segmentation head (docs/method.md, network).

The decoder is the function of mmseg 1.2.2 `UPerHead._forward_feature` with in_channels [D]*4,
256 channels, pool scales (1, 2, 3, 6), BatchNorm + ReLU conv modules and align_corners=False.
Attribute names equal mmseg's (`psp_modules.j.1.conv`, `bottleneck.bn`, `lateral_convs.i`,
`fpn_convs.i`, `fpn_bottleneck`, `conv_seg`), so official decoder keys load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU, named like mmcv's ConvModule (`conv`, `bn`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        # mmcv ConvModule init: kaiming normal, fan_out, for ReLU
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, Cout, H, W)."""
        return self.act(self.bn(self.conv(x)))


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UperNetDecoder(nn.Module):
    """Four (B, D, .) maps at strides 4/8/16/32 -> (B, channels, H/4, W/4) features."""

    def __init__(self, in_channels: int, channels: int = 256, pool_scales: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvBNReLU(in_channels, channels, 1)) for scale in pool_scales
        )
        self.bottleneck = ConvBNReLU(in_channels + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(in_channels, channels, 1) for _ in range(3))
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in range(3))
        self.fpn_bottleneck = ConvBNReLU(4 * channels, channels, 3)
        # mmseg builds this 1-class classifier (num_classes=1) but S5 never calls it. Kept, frozen, so that
        # parameter counts reproduce the paper's table and official decoder keys load strictly.
        self.conv_seg = nn.Conv2d(channels, 1, 1)
        self.conv_seg.requires_grad_(False)

    def _psp(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_resize(ppm(x), x.shape[2:]) for ppm in self.psp_modules]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Four FPN maps -> (B, channels, H/4, W/4)."""
        laterals = [conv(maps[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self._psp(maps[3]))
        for i in range(3, 0, -1):  # top-down: add the coarser level to the finer one
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)]
        outs.append(laterals[3])
        size = outs[0].shape[2:]
        outs = [outs[0]] + [_resize(out, size) for out in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))


class SegmentationHead(nn.Module):
    """UperNet decoder, then Dropout2d(0.1) + 1x1 class conv; logits upsampled to the input size."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256) -> None:
        super().__init__()
        self.decoder = UperNetDecoder(in_channels, channels)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))  # official `.1.*`

    def forward(self, maps: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """FPN maps -> logits (B, K, H, W); align_corners=True as the official UperNet.forward."""
        logits = self.classifier(self.decoder(maps))
        return F.interpolate(logits, size=tuple(image_size), mode="bilinear", align_corners=True)
