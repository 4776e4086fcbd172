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
    bands: [1, 2, 3]                # 1-based bands to read; omit for every band
    scale: 4095                     # raw value that means 1.0 (12-bit data); omit for the dtype's maximum

The checkpoint records the bands, the scale, the rasters' dtype and their GSD (custom_pixel_format),
and `s5 predict` reads scenes the same way by default.

The loader is s5cli.datasets.custom.CustomDataset.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Literal

from pydantic import Field

from s5cli.config import StrictConfig, load_config
from s5cli.datasets.info import IGNORE, DatasetInfo, Protocol, default_palette
from s5cli.datasets.pixels import PixelFormat
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


def scene_entries(cfg: CustomConfig, path: str | os.PathLike[str]) -> list[tuple[Path, SceneEntry]]:
    """Each scene of a dataset YAML with its path resolved (relative paths are relative to the YAML)."""
    base = Path(path).parent
    out = []
    for item in cfg.scenes:
        entry = SceneEntry(path=item) if isinstance(item, str) else item
        scene = Path(entry.path)
        out.append((scene if scene.is_absolute() else base / scene, entry))
    return out


def background_index(cfg: CustomConfig) -> int | None:
    """The class shown in a neutral colour: `background:`, else a class named background."""
    if cfg.background is not None:
        return cfg.classes.index(cfg.background)
    lower = [c.lower() for c in cfg.classes]
    return lower.index("background") if "background" in lower else None


def custom_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """The record (name, task, classes, palette, metric, protocol) that a dataset YAML describes."""
    cfg = read_custom_config(path)
    background = background_index(cfg)
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
        # Scored on cells that tile each scene: every pixel and object once (datasets/custom.py).
        protocol=Protocol("val", "slide" if segmentation else "detect", options={"scoring": True}),
        crop_size=cfg.tile_size,
    )


def custom_pixel_format(path: str | os.PathLike[str]) -> PixelFormat:
    """How CustomDataset reads this YAML's scenes: its `bands` and `scale`, the scenes' dtype and GSD.

    `bands` defaults to every band, `scale` to the dtype's maximum; the GSD is the scenes' median (from
    their geotransforms).
    """
    from s5cli.geo.raster import band_name, describe_raster, unit_scale

    cfg = read_custom_config(path)
    infos = [describe_raster(scene) for scene, _ in scene_entries(cfg, path)]
    dtypes = sorted({i.dtype for i in infos})
    if len(dtypes) > 1 and cfg.scale is None:
        raise InputError(
            f"the scenes mix data types ({', '.join(dtypes)}): set `scale:` (the raw value that means 1.0)", path
        )
    counts = sorted({i.count for i in infos})
    bands = tuple(cfg.bands) if cfg.bands else tuple(range(1, counts[0] + 1))
    if len(counts) > 1 and not cfg.bands:
        raise InputError(f"the scenes have {' or '.join(map(str, counts))} bands: choose them with `bands:`", path)
    missing = [b for b in bands if b > counts[0]]
    if missing:
        raise InputError(f"`bands:` names band {missing[0]} but the scenes have {counts[0]}", path)
    gsds = [g for g in (i.gsd_m for i in infos) if g is not None]
    return PixelFormat(
        bands=bands,
        names=tuple(band_name(infos[0], b) for b in bands),
        scale=float(cfg.scale) if cfg.scale is not None else unit_scale(dtypes[0]),
        dtype=dtypes[0] if len(dtypes) == 1 else None,
        gsd=float(statistics.median(gsds)) if gsds else None,
        origin=str(path),
    )
