"""mmdet's FPN neck as Oriented R-CNN uses it: 1x1 laterals, top-down sum, 3x3 outputs, extra levels by max-pool.

Parameter names mirror mmdet's (`lateral_convs.i`, `fpn_convs.i`, without the ConvModule `.conv`
level) so that official `neck_*` weights map one to one (s5cli/models/official_detection.py).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """in_channels x len(inputs) -> out_channels x num_outs maps (mmdet FPN, add_extra_convs=False)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, num_outs: int = 5) -> None:
        super().__init__()
        if num_outs < len(in_channels):
            raise ValueError(f"num_outs ({num_outs}) must be at least the number of inputs ({len(in_channels)})")
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        for conv in [*self.lateral_convs, *self.fpn_convs]:  # mmdet FPN.init_weights: xavier, uniform
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, inputs: list[Tensor]) -> list[Tensor]:
        """Maps (B, C_i, H_i, W_i), finest first -> num_outs maps (B, out_channels, ...), finest first."""
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down: add the upsampled coarser map
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        while len(outs) < self.num_outs:  # mmdet: F.max_pool2d(outs[-1], 1, stride=2)
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
