"""ViT size presets: the S5 backbones (docs/method.md, network) and tiny ones for tests."""

from __future__ import annotations

from dataclasses import dataclass

from s5cli.errors import InputError


@dataclass(frozen=True)
class ViTPreset:
    """Width, depth, heads and the blocks whose outputs feed the simple FPN."""

    embed_dim: int
    depth: int
    num_heads: int
    taps: tuple[int, int, int, int]
    mlp_ratio: float = 4.0
    patch_size: int = 16
    test_only: bool = False  # tiny presets for tests and demos, not S5 models


# Official sizes: ViT_B/ViT_L/ViT_H at the bottom of S4_Pretrain/model/backbone/vit.py.
MODEL_PRESETS: dict[str, ViTPreset] = {
    "vit-b": ViTPreset(768, 12, 12, (3, 5, 7, 11)),
    "vit-l": ViTPreset(1024, 24, 16, (7, 11, 15, 23)),
    "vit-h": ViTPreset(1280, 32, 16, (15, 23, 27, 31)),
    "vit-tiny": ViTPreset(192, 4, 3, (0, 1, 2, 3), test_only=True),
    "vit-nano": ViTPreset(64, 2, 2, (0, 1, 1, 1), test_only=True),
}


def get_preset(name: str) -> ViTPreset:
    """The preset called `name`; an unknown name is an InputError listing the valid ones."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        valid = ", ".join(MODEL_PRESETS)
        raise InputError(f"unknown model preset '{name}'; choose one of: {valid}") from None


def preset_for_shape(embed_dim: int, depth: int) -> str:
    """The preset name with this width and depth (used to recognise imported weights)."""
    for name, preset in MODEL_PRESETS.items():
        if preset.embed_dim == embed_dim and preset.depth == depth:
            return name
    known = ", ".join(f"{n} ({p.embed_dim} wide, {p.depth} blocks)" for n, p in MODEL_PRESETS.items())
    raise InputError(f"no preset has width {embed_dim} and depth {depth}; known: {known}")


def min_input_size(preset: str) -> int:
    """The smallest tile or patch side a model of this preset takes: two ViT patches a side.

    The simple FPN's stride-32 level is a 2x2 max-pool of the patch grid (models/fpn.py), so one patch
    a side leaves that level empty and UperNet's pooling of it fails; two patches leave one cell.
    """
    return 2 * get_preset(preset).patch_size


def check_input_size(preset: str, size: int, what: str = "tile size") -> int:
    """`size` if a model of this preset takes tiles of that side (a multiple of the patch, two patches at least)."""
    patch = get_preset(preset).patch_size
    smallest = min_input_size(preset)
    if size < smallest:
        raise InputError(
            f"the {what} ({size} px) is below the model's minimum of {smallest} px "
            f"(two {patch} px patches, so that its coarsest feature map keeps a cell)"
        )
    if size % patch:
        raise InputError(f"the {what} must be a multiple of {patch} (the ViT patch size), got {size}")
    return size
