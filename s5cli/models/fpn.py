"""The simple FPN that turns four stride-16 ViT maps into strides 4, 8, 16 and 32 (docs/method.md, network)."""

from __future__ import annotations

import torch
from timm.layers import LayerNorm2d
from torch import nn


class SimpleFPN(nn.Module):
    """fpn1: ConvT2x2 -> LayerNorm2d -> GELU -> ConvT2x2; fpn2: ConvT2x2; fpn3: identity; fpn4: MaxPool2.

    Every output keeps the ViT width D. Layer indexes match the official `fpn1.{0,1,3}` / `fpn2.0` keys
    (the official LayerNorm sits one level deeper, at `fpn1.1.ln`).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            LayerNorm2d(dim, eps=1e-6),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Four (B, D, h, w) maps -> (B, D, 4h, 4w), (B, D, 2h, 2w), (B, D, h, w), (B, D, h/2, w/2)."""
        return [self.fpn1(maps[0]), self.fpn2(maps[1]), self.fpn3(maps[2]), self.fpn4(maps[3])]
