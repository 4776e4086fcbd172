"""Predict fixtures: a stand-in model honouring the ModelSpec contract, and real tiny checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from s5cli.inference.predictor import Predictor, predictor_for
from s5cli.models.spec import HeadSpec, InputSpec, ModelSpec
from s5cli_tests.models.tiny import trained_at

PALETTE = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def standin_spec(classes: int = 3, bands: int = 3, tile: int = 32, gsd: float | None = None) -> ModelSpec:
    names = ["red", "green", "blue", "nir"][:bands]
    head = HeadSpec(name="toy", classes=[f"c{i}" for i in range(classes)], palette=PALETTE[:classes])
    return ModelSpec(
        preset="vit-nano",
        heads=trained_at([head], tile),
        img_size=tile,
        input=InputSpec(bands=names, mean=[0.5] * bands, std=[0.25] * bands, gsd=gsd),
    )


class StandIn(nn.Module):
    """forward(x, dataset) -> logits (B, K, H, W): a fixed 5x5 conv, so every pixel sees its neighbours
    (misplaced windows or seams change the answer) and the classes follow the image content."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        gen = torch.Generator().manual_seed(0)
        k, c = spec.heads[0].num_classes, len(spec.input.bands)
        self.conv = nn.Conv2d(c, k, 5, padding=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(k, c, 5, 5, generator=gen) * 0.3)
            self.conv.bias.copy_(torch.linspace(-0.2, 0.2, k))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        self.spec.head(dataset)
        self.calls.append(x.shape[0])
        mean = torch.tensor(self.spec.input.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.spec.input.std).view(1, -1, 1, 1)
        return self.conv((x - mean) / std) * 4.0


@pytest.fixture()
def standin() -> Predictor:
    """A Predictor around the stand-in (3 classes, RGB, tile 32)."""
    return predictor_for(StandIn(standin_spec()), device="cpu")


def tiny_checkpoint(
    path: Path, heads: list[HeadSpec], gsd: float | None = 0.5, tile: int = 64, tweak: Callable | None = None
) -> Path:
    """A real vit-nano checkpoint (narrow decoder) saved with save_checkpoint; `tweak(model)` edits it first."""
    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model

    torch.manual_seed(0)
    spec = ModelSpec(
        preset="vit-nano",
        heads=trained_at(heads, tile),
        img_size=tile,
        decoder_channels=32,
        input=InputSpec(gsd=gsd),
    )
    model = build_model(spec)
    with torch.no_grad():  # a fresh head predicts one class everywhere; give it some contrast
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        if tweak is not None:
            tweak(model)
    save_checkpoint(path, model.eval())
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vit-nano, tile 64, one head 'demo' with 3 classes and a palette, trained GSD 0.5 m."""
    head = HeadSpec(name="demo", classes=["ground", "building", "tree"], palette=PALETTE)
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", [head])


@pytest.fixture(scope="session")
def two_head_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vit-nano with two heads: 'potsdam' (3 classes) and 'loveda' (2 classes)."""
    heads = [
        HeadSpec(name="potsdam", classes=["a", "b", "c"]),
        HeadSpec(name="loveda", classes=["x", "y"]),
    ]
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt2") / "two.pt", heads)
