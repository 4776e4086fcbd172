"""Optimisers and parameter groups: weight-decay exclusions and layer-wise lr decay for ViTs.

Layer-wise decay (BEiT/MAE fine-tuning habit) gives block i of an L-block ViT the lr
`lr * decay ** (L - i)`: the patch embedding and position embedding sit at layer 0
(`decay ** (L + 1)`), block i at layer i + 1, everything after the backbone (FPN, decoder, heads)
at layer L + 1 (the full lr). S5's finetune config names a decay but never applies it
(docs/method.md, differences); here it is applied when configured,
and each group's `lr_scale` is kept so that the schedule multiplies it at every step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from s5cli.config import StrictConfig

_BLOCK_RE = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")
_EMBED_KEYS = ("patch_embed", "pos_embed", "cls_token", "reg_token", "mask_token")
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]  # an Adam moment decay (torch refuses 1 and above)


class OptimConfig(StrictConfig):
    """Optimiser settings shared by pretrain and finetune."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(5e-5, gt=0.0)  # peak (base) learning rate
    weight_decay: float = Field(0.01, ge=0.0)
    betas: tuple[Beta, Beta] = (0.9, 0.999)  # AdamW: each in [0, 1)
    momentum: float = Field(0.9, ge=0.0)  # SGD
    layer_decay: float | None = Field(None, gt=0.0, le=1.0)  # e.g. 0.9: block i gets lr * decay ** (depth - i)
    no_decay_norm_bias: bool = False  # S4P: False (its norm exclusions never match the ViT's `ln` names)
    no_decay: list[str] = Field(default_factory=list)  # parameter names (suffixes) without weight decay


def vit_layer_id(name: str, depth: int, backbone_prefixes: tuple[str, ...] = ("backbone.", "encoder.")) -> int:
    """Layer index of a parameter for layer-wise decay: 0 embeddings, i + 1 block i, depth + 1 the rest.

    Only names under one of `backbone_prefixes` (or, when the model has no such prefix, any name)
    count as backbone parameters; decoder and head parameters always get depth + 1.
    """
    in_backbone = not backbone_prefixes or any(name.startswith(p) for p in backbone_prefixes)
    if not in_backbone:
        return depth + 1
    match = _BLOCK_RE.search(name)
    if match:
        return min(int(match.group(1)) + 1, depth + 1)
    leaf = name.rsplit(".", 1)[-1]
    if any(key in name for key in _EMBED_KEYS) or leaf in _EMBED_KEYS:
        return 0
    return depth + 1


def backbone_prefixes(names: Iterable[str], keys: tuple[str, ...] = ("backbone.", "encoder.")) -> tuple[str, ...]:
    """The name prefixes ending at a `backbone.`/`encoder.` module, also inside a wrapper (`net.backbone.`)."""
    found: list[str] = []
    for name in names:
        for key in keys:
            i = name.find(key)
            if i == 0 or (i > 0 and name[i - 1] == "."):
                prefix = name[: i + len(key)]
                if prefix not in found:
                    found.append(prefix)
    return tuple(found)


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norm weights and 1-d gains (timm's rule: every parameter with ndim <= 1) and embeddings."""
    return param.ndim <= 1 or name.endswith((".bias", "pos_embed", "cls_token"))


def _named_no_decay(name: str, suffixes: list[str]) -> bool:
    """True when a parameter is named by one of the suffixes (`backbone.pos_embed` also in `net.backbone.pos_embed`)."""
    return any(name == s or name.endswith(f".{s}") for s in suffixes)


def param_groups(
    model: nn.Module,
    cfg: OptimConfig,
    depth: int | None = None,
    layer_id: Callable[[str, int], int] | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups with their weight decay and `lr_scale`.

    Args:
        model: the (unwrapped) model.
        cfg: optimiser settings; `layer_decay` needs `depth`.
        depth: number of ViT blocks, for layer-wise decay.
        layer_id: name -> layer index; `vit_layer_id` by default, with the backbone prefixes
            detected from the model's parameter names.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.layer_decay is not None and depth is None:
        raise ValueError("layer_decay needs the backbone depth")
    if layer_id is None:
        prefixes = backbone_prefixes([n for n, _ in named])
        layer_id = lambda n, d: vit_layer_id(n, d, prefixes)  # noqa: E731
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named:
        no_decay = (cfg.no_decay_norm_bias and is_no_decay(name, param)) or _named_no_decay(name, cfg.no_decay)
        if cfg.layer_decay is not None and depth is not None:
            lid = layer_id(name, depth)
            scale = cfg.layer_decay ** (depth + 1 - lid)
        else:
            lid, scale = 0, 1.0
        key = (lid, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                "lr_scale": scale,
                "layer_id": lid,
                "lr": cfg.lr * scale,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    cfg: OptimConfig,
    depth: int | None = None,
    layer_id: Callable[[str, int], int] | None = None,
) -> torch.optim.Optimizer:
    """AdamW or SGD over `param_groups(model, cfg, depth, layer_id)`; each group keeps `base_lr`."""
    groups = param_groups(model, cfg, depth, layer_id)
    for group in groups:
        group["base_lr"] = cfg.lr * group["lr_scale"]
        del group["names"]  # names are for inspection only; optimizer state_dicts stay tensor-light
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
