"""The S5 network: ViT (dense or MoE-MDF) + simple FPN + one head per dataset, built from a ModelSpec.

Module tree (and so state-dict keys): `backbone.*` (vit.py), `fpn.*` (fpn.py) and `heads.<key>.*`,
where <key> is the head name with '.' replaced by '_' (torch module names cannot hold dots, and
dataset names such as `dota-v2.0` do). A segmentation head is `heads.<key>.decoder.*` +
`heads.<key>.classifier.1.*`; a detection head is whatever s5cli.detection.head builds.
"""

from __future__ import annotations

import torch
from torch import nn

from s5cli.errors import InputError
from s5cli.models.fpn import SimpleFPN
from s5cli.models.presets import get_preset
from s5cli.models.spec import HeadSpec, ModelSpec
from s5cli.models.upernet import SegmentationHead
from s5cli.models.vit import ViT


def head_key(name: str) -> str:
    """The module name of a head in `model.heads` (dots are not allowed in module names)."""
    return name.replace(".", "_")


class S5Model(nn.Module):
    """Backbone + simple FPN + named heads; forward(x, dataset) routes experts and heads by dataset name."""

    def __init__(self, spec: ModelSpec, backbone: ViT, fpn: SimpleFPN, heads: nn.ModuleDict) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.fpn = fpn
        self.heads = heads
        # Derived from the spec, so not saved in the state dict (persistent=False).
        self.register_buffer("mean", torch.tensor(spec.input.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.input.std).view(1, -1, 1, 1), persistent=False)

    @property
    def head_names(self) -> list[str]:
        """Dataset names, in the order of the experts."""
        return [h.name for h in self.spec.heads]

    def expert_index(self, dataset: str | None) -> int | None:
        """The expert a dataset routes to (None for a dense backbone)."""
        if not self.spec.moe:
            return None
        return self.head_names.index(self.spec.head(dataset).name)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory in the backbone blocks."""
        self.backbone.set_grad_checkpointing(enable)

    def _check_input(self, x: torch.Tensor) -> None:
        channels = len(self.spec.input.bands)
        if x.ndim != 4 or x.shape[1] != channels:
            raise InputError(f"the model takes (B, {channels}, H, W) images, got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor, dataset: str | None = None) -> list[torch.Tensor]:
        """Images in [0, 1] (B, C, H, W) -> the four simple-FPN maps (B, D, H/s, W/s), s = 4, 8, 16, 32."""
        self._check_input(x)
        x = (x - self.mean) / self.std
        return self.fpn(self.backbone(x, self.expert_index(dataset)))

    def forward(
        self, x: torch.Tensor, dataset: str | None = None, targets: list[dict] | None = None
    ) -> torch.Tensor | object:
        """Segmentation: logits (B, K, H, W) at the input size. Detection: what the detection head returns."""
        head = self.spec.head(dataset)
        maps = self.features(x, head.name)
        size = (x.shape[-2], x.shape[-1])
        module = self.heads[head_key(head.name)]
        if head.task == "segmentation":
            return module(maps, size)
        return module(maps, size, targets)


def _check_spec(spec: ModelSpec) -> None:
    preset = get_preset(spec.preset)
    if not spec.heads:
        raise InputError("a model needs at least one head")
    keys = [head_key(h.name) for h in spec.heads]
    if any(not h.name for h in spec.heads) or len(set(keys)) != len(keys):
        raise InputError(f"head names must be non-empty and distinct: {[h.name for h in spec.heads]}")
    reserved = [k for k in keys if hasattr(nn.ModuleDict, k)]  # e.g. "keys", "train": torch refuses them
    if reserved:
        raise InputError(f"head names {reserved} are reserved words of torch modules; rename the dataset")
    channels = len(spec.input.bands)
    if not channels or len(spec.input.mean) != channels or len(spec.input.std) != channels:
        raise InputError(f"input bands, mean and std must have the same length (got {channels} bands)")
    if spec.img_size % preset.patch_size:
        raise InputError(f"img_size {spec.img_size} is not a multiple of {preset.patch_size}")
    if spec.moe and not 0 < spec.expert_width < preset.embed_dim:
        raise InputError(f"expert_width must be in (0, {preset.embed_dim}) for {spec.preset}")


def build_head(spec: ModelSpec, head: HeadSpec, in_channels: int) -> nn.Module:
    """A fresh head for one dataset: UperNet + class conv, or the detection head."""
    if head.task == "segmentation":
        return SegmentationHead(in_channels, head.num_classes, spec.decoder_channels)
    from s5cli.detection.head import build_detection_head  # lazy: segmentation models never load detection

    return build_detection_head(in_channels, head.num_classes, **head.options)


def build_model(spec: ModelSpec) -> S5Model:
    """Build the network a ModelSpec describes, with fresh weights."""
    _check_spec(spec)
    preset = get_preset(spec.preset)
    backbone = ViT(
        preset,
        in_chans=len(spec.input.bands),
        img_size=spec.img_size,
        drop_path=spec.drop_path,
        num_experts=len(spec.heads) if spec.moe else 0,
        expert_width=spec.expert_width,
    )
    fpn = SimpleFPN(preset.embed_dim)
    heads = nn.ModuleDict({head_key(h.name): build_head(spec, h, preset.embed_dim) for h in spec.heads})
    return S5Model(spec, backbone, fpn, heads)


def count_parameters(spec: ModelSpec) -> int:
    """Parameters of the model a spec describes, built on the meta device (no memory, even for vit-h)."""
    with torch.device("meta"):
        model = build_model(spec)
    return sum(p.numel() for p in model.parameters())
