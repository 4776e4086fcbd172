"""The YAML that describes your own GIS data, and the dataset record it makes (no torch: the registry reads it).

Example ``buildings.yaml`` (paths are relative to the YAML)::

    name: buildings                 # the head's name
    task: segmentation              # or detection (oriented boxes from the polygons)
    classes: [background, building] # class index = position; the class column holds these names
    scenes:
      - {path: scenes/north.tif, split: train}
      - {path: scenes/south.tif, split: val}
    labels: labels.gpkg             # GeoPackage, GeoJSON or Shapefile
    class_column: class
    background: background          # unlabeled pixels; omit to ignore them (255)
    tile_size: 512
    overlap: 0                      # fraction of a tile shared by neighbouring windows, in [0, 1)

The loader is s5cli.datasets.custom.CustomDataset.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from s5cli.config import StrictConfig, load_config
from s5cli.datasets.info import IGNORE, DatasetInfo, Protocol, default_palette
from s5cli.errors import InputError

SPLITS = ("train", "val", "test")
LOADER = "custom:CustomDataset"

# The registry's entry for custom data: a dataset is named by its YAML, which holds the facts.
CUSTOM = DatasetInfo(
    name="custom",
    task="segmentation",
    classes=(),
    palette=(),
    metric="mIoU",
    splits=SPLITS,
    loader=LOADER,
    layout="a dataset YAML naming GeoTIFF scenes and a vector label file (see s5cli/datasets/custom_config.py)",
)


class SceneEntry(StrictConfig):
    """One GeoTIFF scene and the split it belongs to (``split_by: scene``)."""

    path: str
    split: Literal["train", "val", "test"] = "train"


class CustomConfig(StrictConfig):
    """The dataset YAML."""

    name: str = "custom"
    task: Literal["segmentation", "detection"] = "segmentation"
    classes: list[str] = Field(min_length=1)
    palette: list[tuple[int, int, int]] = Field(default_factory=list)
    scenes: list[SceneEntry | str] = Field(min_length=1)
    labels: str
    layer: str | None = None
    class_column: str = "class"
    background: str | None = None  # class of pixels no feature covers; None: ignore them (255)
    tile_size: int = Field(512, gt=0)
    overlap: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of a tile shared by neighbouring windows
    split_by: Literal["scene", "fraction"] = "scene"
    val_fraction: float = Field(0.2, ge=0, lt=1)
    test_fraction: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    bands: list[int] | None = None  # 1-based; default: every band
    scale: float | None = None  # raw value mapped to 1.0; default by dtype (255, 65535)
    all_touched: bool = False
    min_iof: float = Field(0.7, gt=0, le=1)  # detection: keep objects this much inside a window

    @property
    def overlap_px(self) -> int:
        """Pixels shared by neighbouring windows."""
        return round(self.overlap * self.tile_size)


def read_custom_config(path: str | os.PathLike[str]) -> CustomConfig:
    """Load and check a dataset YAML (ConfigError on unknown keys, InputError on a bad background)."""
    cfg = load_config(CustomConfig, path)
    seen: dict[str, str] = {}
    for name in cfg.classes:  # labels are matched to classes by name, also case-insensitively
        if name.strip().lower() in seen:
            raise InputError(f"class '{name}' is named twice (as '{seen[name.strip().lower()]}' too)", path)
        seen[name.strip().lower()] = name
    if cfg.background is not None and cfg.background not in cfg.classes:
        raise InputError(f"background '{cfg.background}' is not one of the classes: {', '.join(cfg.classes)}", path)
    if len(cfg.classes) >= IGNORE:
        raise InputError(f"at most {IGNORE - 1} classes ({IGNORE} is the ignore value)", path)
    if cfg.palette and len(cfg.palette) != len(cfg.classes):
        raise InputError(f"palette has {len(cfg.palette)} colours for {len(cfg.classes)} classes", path)
    return cfg


def custom_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """The record (name, task, classes, palette, metric, protocol) that a dataset YAML describes."""
    cfg = read_custom_config(path)
    background = cfg.classes.index(cfg.background) if cfg.background is not None else None
    palette = tuple(cfg.palette) if cfg.palette else default_palette(len(cfg.classes), background)
    segmentation = cfg.task == "segmentation"
    return DatasetInfo(
        name=cfg.name,
        task=cfg.task,
        classes=tuple(cfg.classes),
        palette=palette,
        metric="mIoU" if segmentation else "mAP",
        splits=SPLITS,
        loader=LOADER,
        layout=f"the scenes and labels named in {path}",
        protocol=Protocol("val", "slide") if segmentation else Protocol("val", "detect"),
        crop_size=cfg.tile_size,
    )
