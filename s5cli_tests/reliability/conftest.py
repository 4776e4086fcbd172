"""Reliability fixtures: tiny real checkpoints (built once per module), fake datasets copied to tmp, checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from s5cli_tests.reliability.helpers import DATA, build_checkpoint


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny vit-nano checkpoints by role: seg (3 classes), potsdam, det (dior-r), dota, wrong task, four_bands."""
    from s5cli.datasets.registry import DATASETS
    from s5cli.models.spec import HeadSpec

    folder = tmp_path_factory.mktemp("ckpts")
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    potsdam, dior, dota = DATASETS["potsdam"], DATASETS["dior-r"], DATASETS["dota-v1.0"]
    narrow = {"fc_channels": 32, "fpn_channels": 32}
    heads = {
        "seg": HeadSpec(name="demo", classes=["ground", "building", "tree"], palette=palette),
        "potsdam": HeadSpec(name="potsdam", classes=list(potsdam.classes)),
        "det": HeadSpec(name="dior-r", task="detection", classes=list(dior.classes), options=narrow),
        "dota": HeadSpec(name="dota-v1.0", task="detection", classes=list(dota.classes), options=narrow),
        # A segmentation head under a detection dataset's name (the wrong task for dior-r).
        "seg_as_det": HeadSpec(name="dior-r", classes=list(dior.classes)),
        # A detection head under a segmentation dataset's name (the wrong task for potsdam).
        "det_as_seg": HeadSpec(name="potsdam", task="detection", classes=list(potsdam.classes), options=narrow),
    }
    built = {role: build_checkpoint(folder / f"{role}.pt", [head]) for role, head in heads.items()}
    built["four_bands"] = build_checkpoint(folder / "four_bands.pt", [heads["potsdam"]], bands=4)
    return built


@pytest.fixture()
def dataset_copy(tmp_path: Path):
    """copy(name) -> a private copy of a committed fake dataset under tmp_path/data/<name>."""

    def copy(name: str) -> Path:
        dest = tmp_path / "data" / name
        shutil.copytree(DATA / name, dest, ignore=shutil.ignore_patterns("data.py", "__pycache__"))
        return dest

    return copy
