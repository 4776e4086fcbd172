"""Tiny models for the model tests: vit-nano with a narrow decoder, randomised everywhere."""

from __future__ import annotations

import torch

from s5cli.models.network import S5Model, build_model
from s5cli.models.spec import HeadSpec, ModelSpec


def heads(*names: str, classes: int = 3) -> list[HeadSpec]:
    return [HeadSpec(name=n, classes=[f"c{i}" for i in range(classes)]) for n in names]


def tiny_spec(*names: str, moe: bool = False, classes: int = 3, **kw) -> ModelSpec:
    kw = {"preset": "vit-nano", "decoder_channels": 32, "expert_width": 16, **kw}
    return ModelSpec(heads=heads(*names, classes=classes), moe=moe, **kw)


@torch.no_grad()
def randomise(model: S5Model, seed: int = 0) -> S5Model:
    """Give every parameter and BatchNorm statistic non-trivial values (so copies are really checked)."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in model.state_dict().items():
        if tensor.dtype.is_floating_point:
            noise = torch.randn(tensor.shape, generator=gen) * 0.05
            if name.endswith("running_var"):
                tensor.copy_(1 + noise.abs())
            else:
                tensor.add_(noise)
    return model


def tiny_model(*names: str, moe: bool = False, seed: int = 0, **kw) -> S5Model:
    torch.manual_seed(seed)
    return randomise(build_model(tiny_spec(*names, moe=moe, **kw)), seed).eval()


def images(batch: int = 2, size: int = 64, seed: int = 0, channels: int = 3) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def trained_at(heads_: list[HeadSpec], size: int) -> list[HeadSpec]:
    """The heads with `size` as their trained input side (each keeps its task's default overlap)."""
    return [h.model_copy(update={"input": h.input.model_copy(update={"size": size})}) for h in heads_]
