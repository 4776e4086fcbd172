"""The S5 plain ViT backbone (docs/method.md, network), built from timm layers.

Same function as the official mmseg-style ViT (S4_Pretrain/model/backbone/vit.py): patch 16, no cls
token in the sequence, learned absolute position embedding added to the patch tokens, pre-LN blocks
(LayerNorm eps 1e-5, qkv bias), drop-path on the FFN residual only, no final norm, outputs taken from
the tap blocks. The position embedding is stored at the img_size / 16 grid: the training size (the
largest one when heads train at several, e.g. detection at 1024 as the official detection config);
inputs of another size resample it bicubically to their token grid, so any multiple of 16 works.

Parameter names map one-to-one onto the official keys (see official.py): patch_embed.proj <->
patch_embed.projection, blocks.i <-> layers.i, norm1/2 <-> ln1/2, attn.qkv <-> attn.attn.in_proj_
(same [q; k; v] row layout), attn.proj <-> attn.attn.out_proj, mlp.fc1 <-> ffn.layers.0.0,
mlp.fc2 <-> ffn.layers.1, mlp.experts.k <-> ffn.experts.k.
"""

from __future__ import annotations

import torch
from timm.layers import Attention, DropPath, PatchEmbed, resample_abs_pos_embed, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from s5cli.errors import InputError
from s5cli.models.ffn import DenseFFN, PartialExpertFFN
from s5cli.models.presets import ViTPreset


def resample_grid(pos_embed: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """A square (1, g*g, D) position embedding resampled bicubically to a (height, width) token grid."""
    side = round(pos_embed.shape[1] ** 0.5)
    width = height if width is None else width
    if (side, side) == (height, width):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed,
        new_size=[height, width],
        old_size=[side, side],
        num_prefix_tokens=0,
        interpolation="bicubic",
        antialias=False,  # plain F.interpolate, as mmseg's resize_pos_embed and the MAE init
    )


class Block(nn.Module):
    """Pre-LN transformer block; drop-path only on the FFN branch (mmcv's attention has none)."""

    def __init__(self, dim: int, num_heads: int, ffn: nn.Module, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = ffn
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, expert: int | None = None) -> torch.Tensor:
        """Tokens (B, N, D) -> (B, N, D)."""
        x = x + self.attn(self.norm1(x))
        return x + self.drop_path(self.mlp(self.norm2(x), expert))


class ViT(nn.Module):
    """Plain ViT returning the tap blocks' outputs as (B, D, H/16, W/16) maps.

    Args:
        preset: width, depth, heads and taps.
        in_chans: input bands.
        img_size: the training size; the position embedding is stored at img_size / 16 a side.
        drop_path: the last block's drop-path rate (linear from 0 over depth, as the official code).
        num_experts: 0 for a dense FFN, else one partial-output expert per dataset in every block.
        expert_width: P, the outputs of each expert.
    """

    def __init__(
        self,
        preset: ViTPreset,
        in_chans: int = 3,
        img_size: int = 512,
        drop_path: float = 0.1,
        num_experts: int = 0,
        expert_width: int = 256,
    ) -> None:
        super().__init__()
        dim, depth, patch = preset.embed_dim, preset.depth, preset.patch_size
        self.embed_dim, self.patch_size, self.taps = dim, patch, tuple(preset.taps)
        self.grid = img_size // patch
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed(
            img_size=None, patch_size=patch, in_chans=in_chans, embed_dim=dim, output_fmt="NHWC", strict_img_size=False
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))  # (1, g*g, D), no cls slot
        # Unused, as in the official code (with_cls_token=False); kept frozen so that parameter counts and
        # official keys match without giving DDP an unused trainable parameter.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim), requires_grad=False)
        hidden = int(dim * preset.mlp_ratio)
        # Plain Python floats: torch.linspace would land on the meta device when counting parameters.
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        blocks = []
        for rate in rates:
            if num_experts:
                ffn: nn.Module = PartialExpertFFN(dim, hidden, expert_width, num_experts)
            else:
                ffn = DenseFFN(dim, hidden)
            blocks.append(Block(dim, preset.num_heads, ffn, rate))
        self.blocks = nn.ModuleList(blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward to save memory (the official with_cp=True)."""
        self.grad_checkpointing = enable

    def pos_embed_for(self, height: int, width: int) -> torch.Tensor:
        """The position embedding resampled to a (height, width) token grid: (1, height*width, D)."""
        return resample_grid(self.pos_embed, height, width)

    def forward(self, x: torch.Tensor, expert: int | None = None) -> list[torch.Tensor]:
        """Images (B, C, H, W), H and W multiples of 16 -> one (B, D, H/16, W/16) map per tap."""
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise InputError(f"input size {height}x{width} is not a multiple of {self.patch_size}")
        x = self.patch_embed(x)  # (B, h, w, D)
        batch, h, w, dim = x.shape
        x = x.flatten(1, 2) + self.pos_embed_for(h, w)  # (B, h*w, D)
        taps: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, expert, use_reentrant=False)
            else:
                x = block(x, expert)
            if i in self.taps:
                taps[i] = x.transpose(1, 2).reshape(batch, dim, h, w)
        return [taps[i] for i in self.taps]
