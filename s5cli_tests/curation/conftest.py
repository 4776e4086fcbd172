"""Fixtures for curation tests: tiny scenes, a stand-in teacher with known outputs, a tiny checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from s5cli_tests.scenes import UTM33, make_scene

LN3 = math.log(3.0)
LN9 = math.log(9.0)


class StandIn:
    """model(x, dataset) -> 2-class logits: class 1 logit ln 9 where band 0 > 0.5, else -ln 3; class 0 logit 0.

    Bright pixels: p = (0.1, 0.9), dark pixels: p = (0.75, 0.25). Records the input shapes it saw.
    """

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.datasets: list[str | None] = []

    def eval(self) -> StandIn:
        return self

    def __call__(self, x, dataset=None):
        import torch

        self.shapes.append(tuple(x.shape))
        self.datasets.append(dataset)
        bright = x[:, 0] > 0.5
        one = torch.where(bright, torch.full_like(x[:, 0], LN9), torch.full_like(x[:, 0], -LN3))
        return torch.stack([torch.zeros_like(one), one], dim=1)


def entropy(p: list[float]) -> float:
    return -sum(v * math.log(v) for v in p if v > 0)


H_BRIGHT = entropy([0.1, 0.9])  # 0.325082973...
H_DARK = entropy([0.75, 0.25])  # 0.562335144...


@pytest.fixture()
def stand_in_teacher():
    from s5cli.curation.teacher import Teacher
    from s5cli.models.spec import HeadSpec, InputSpec

    head = HeadSpec(name="toy", classes=["background", "thing"], palette=[(0, 0, 0), (255, 0, 0)])
    inp = InputSpec(bands=["red", "green", "blue"], scale=255.0)
    return Teacher(StandIn(), head, inp, "cpu", batch_size=4)


def save_tiny_checkpoint(path: Path) -> Path:
    """A vit-nano segmentation checkpoint (4 iSAID-like classes), random weights (seed 0)."""
    import torch

    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        preset="vit-nano",
        heads=[HeadSpec(name="isaid", classes=["background", "ship", "plane", "car"])],
        img_size=64,
        decoder_channels=32,  # small and fast: the teacher path is what is tested, not the network
    )
    save_checkpoint(path, build_model(spec))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A vit-nano teacher checkpoint shared by the session."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "teacher.pt")


def write_tif(path: Path, data: np.ndarray, gsd: float = 0.5, nodata: float | None = None, crs=UTM33) -> Path:
    """A GeoTIFF from a (C, H, W) array at (500000, 5800000) in UTM 33N."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "transform": from_origin(500_000.0, 5_800_000.0, gsd, gsd),
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def textured(height: int, width: int, seed: int, bands: int = 3) -> np.ndarray:
    """Noise-textured uint8 image: every chip different, none flat."""
    rng = np.random.default_rng(seed)
    return rng.integers(20, 236, size=(bands, height, width), dtype=np.uint8)


@pytest.fixture()
def scenes_dir(tmp_path: Path) -> Path:
    """Three structured scenes in a folder (one in a sub-folder)."""
    folder = tmp_path / "scenes"
    (folder / "sub").mkdir(parents=True)
    make_scene(folder / "a.tif", width=96, height=80, seed=1)
    make_scene(folder / "b.tif", width=64, height=64, seed=2, nodata_border=0)
    make_scene(folder / "sub" / "c.tif", width=80, height=64, seed=3, nodata_border=0)
    return folder
