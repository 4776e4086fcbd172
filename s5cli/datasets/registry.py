"""Every dataset s5cli reads: task, classes, palette, ignore value, metric, splits and crop sizes.

The facts (names, colours, splits, protocols) come from docs/datasets.md; each entry cites it.
``get_dataset(name, root, split)`` builds the loader for a dataset folder *as distributed*;
``find_dataset_root(data_root, name)`` finds ``DATA_ROOT/<name>/`` or one of its aliases.
"""

from __future__ import annotations

import colorsys
import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s5cli.datasets.classes import (
    DIOR_CLASSES,
    DOTA_CLASSES,
    ISAID_CLASSES,
    ISAID_PALETTE,
    ISPRS_CLASSES,
    ISPRS_PALETTE,
    LOVEDA_CLASSES,
    LOVEDA_PALETTE,
    OEM_CLASSES,
    OEM_PALETTE,
)
from s5cli.errors import InputError

__all__ = [
    "DATASETS",
    "DIOR_CLASSES",
    "DOTA_CLASSES",
    "FOLDER_DATASETS",
    "ISAID_CLASSES",
    "ISAID_PALETTE",
    "ISPRS_CLASSES",
    "ISPRS_PALETTE",
    "LOVEDA_CLASSES",
    "LOVEDA_PALETTE",
    "OEM_CLASSES",
    "OEM_PALETTE",
    "DatasetInfo",
    "canonical_name",
    "dataset_info",
    "distinct_palette",
    "find_dataset_root",
    "get_dataset",
]

Task = Literal["segmentation", "detection", "unlabeled"]
Metric = Literal["mIoU", "mF1", "mAP", "none"]
Colour = tuple[int, int, int]


def distinct_palette(n: int) -> tuple[Colour, ...]:
    """Well-separated colours, n of them (for drawing boxes of detection classes)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(out)


@dataclass(frozen=True)
class DatasetInfo:
    """What s5cli knows about one dataset; the loader reads it from here."""

    name: str
    task: Task
    classes: tuple[str, ...]
    palette: tuple[Colour, ...]
    metric: Metric
    splits: tuple[str, ...]
    loader: str  # "module:Class" under s5cli.datasets
    layout: str  # what the folder must hold, as the official download unzips
    ignore_index: int = 255
    metric_exclude: tuple[str, ...] = ()  # classes left out of the means (ISPRS clutter, iSAID background)
    split_aliases: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other folder names under a data root
    crop_size: int | None = None  # training crop (augmentation) or window size
    stride: int | None = None  # window stride for training
    test_stride: int | None = None  # window stride for evaluation
    patch_size: int | None = None  # detection patch size
    patch_gap: int | None = None  # overlap between detection patches

    def head_spec(self) -> Any:
        """The model head for this dataset (s5cli.models.spec.HeadSpec)."""
        from s5cli.models.spec import HeadSpec

        if self.task == "unlabeled":
            raise InputError(f"{self.name} has no labels, so no model head")
        return HeadSpec(
            name=self.name,
            task=self.task,
            classes=list(self.classes),
            palette=list(self.palette),
            ignore_index=self.ignore_index,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""
        return {
            "name": self.name,
            "task": self.task,
            "classes": list(self.classes),
            "num_classes": len(self.classes),
            "ignore_index": self.ignore_index,
            "metric": self.metric,
            "metric_exclude": list(self.metric_exclude),
            "splits": list(self.splits),
            "aliases": list(self.aliases),
            "crop_size": self.crop_size,
            "stride": self.stride,
            "test_stride": self.test_stride,
            "patch_size": self.patch_size,
            "patch_gap": self.patch_gap,
            "layout": self.layout,
        }


_POTSDAM_LAYOUT = (
    "2_Ortho_RGB/top_potsdam_{r}_{c}_RGB.tif (or 3_Ortho_IRRG/, 4_Ortho_RGBIR/) and "
    "5_Labels_all/top_potsdam_{r}_{c}_label.tif (or 5_Labels_all_noBoundary/, or the labels flat in the folder)"
)
_VAIHINGEN_LAYOUT = (
    "top/top_mosaic_09cm_area{N}.tif and the colour labels top_mosaic_09cm_area{N}.tif "
    "(and/or ..._noBoundary.tif) flat in the folder"
)
_DOTA_LAYOUT = "{train,val}/images/P####.png with {train,val}/labelTxt/P####.txt, and test/images/"


def _dota(version: str) -> DatasetInfo:
    classes = DOTA_CLASSES[version]
    return DatasetInfo(
        name=f"dota-v{version}",
        task="detection",
        classes=classes,
        palette=distinct_palette(len(classes)),
        metric="mAP",
        splits=("train", "val", "trainval", "test"),
        loader=f"dota:DOTAv{version.replace('.', '')}",
        layout=_DOTA_LAYOUT,
        aliases=(f"DOTA-v{version}", f"DOTAv{version}", f"dota_v{version}", f"dota{version}"),
        patch_size=1024,  # datasets.md §6.4: mmrotate / BboxToolkit ss configs
        patch_gap=200,
    )


DATASETS: dict[str, DatasetInfo] = {
    "potsdam": DatasetInfo(
        name="potsdam",
        task="segmentation",
        classes=ISPRS_CLASSES,
        palette=ISPRS_PALETTE,
        metric="mF1",  # S5 README reports mF1 for Potsdam (datasets.md §1.5)
        metric_exclude=("clutter",),
        splits=("train", "test"),
        split_aliases={"val": "test"},  # mmseg calls the 14 test tiles "val"
        loader="isprs:Potsdam",
        layout=_POTSDAM_LAYOUT,
        aliases=("ISPRS_Potsdam", "ISPRS-Potsdam"),
        crop_size=512,  # S5: 512 windows, stride 256 for train (529 per tile), non-overlapping test
        stride=256,
        test_stride=512,
    ),
    "vaihingen": DatasetInfo(
        name="vaihingen",
        task="segmentation",
        classes=ISPRS_CLASSES,
        palette=ISPRS_PALETTE,
        metric="mIoU",
        metric_exclude=("clutter",),
        splits=("train", "test"),
        split_aliases={"val": "test"},
        loader="isprs:Vaihingen",
        layout=_VAIHINGEN_LAYOUT,
        aliases=("ISPRS_Vaihingen", "ISPRS-Vaihingen"),
        crop_size=512,
        stride=256,
        test_stride=512,
    ),
    "loveda": DatasetInfo(
        name="loveda",
        task="segmentation",
        classes=LOVEDA_CLASSES,
        palette=LOVEDA_PALETTE,
        metric="mIoU",
        splits=("train", "val", "trainval", "test"),
        loader="loveda:LoveDA",
        layout="{Train,Val,Test}/{Urban,Rural}/images_png/{id}.png with masks_png/{id}.png beside (not for Test)",
        aliases=("LoveDA", "love-da"),
        crop_size=512,  # whole 1024 images; 512 random crops for training, 512/256 sliding window for test
        stride=256,
    ),
    "openearthmap": DatasetInfo(
        name="openearthmap",
        task="segmentation",
        classes=OEM_CLASSES,
        palette=OEM_PALETTE,
        metric="mIoU",
        splits=("train", "val", "test"),
        loader="openearthmap:OpenEarthMap",
        layout="OpenEarthMap_wo_xBD/{train,val,test}.txt and {region}/{images,labels}/{region}_{k}.tif",
        aliases=("OpenEarthMap", "OpenEarthMap_wo_xBD", "oem"),
        crop_size=512,
    ),
    "isaid": DatasetInfo(
        name="isaid",
        task="segmentation",
        classes=ISAID_CLASSES,
        palette=ISAID_PALETTE,
        metric="mIoU",
        metric_exclude=("background",),  # S5 pre-training validation skips class 0
        splits=("train", "val", "test"),
        loader="isaid:ISAID",
        layout="{train,val,test}/images/P####.png with P####_instance_color_RGB.png beside (train, val)",
        aliases=("iSAID",),
        crop_size=896,  # mmseg iSAID patches: 896 with overlap 384 (stride 512)
        stride=512,
        test_stride=512,
    ),
    "dior-r": DatasetInfo(
        name="dior-r",
        task="detection",
        classes=DIOR_CLASSES,
        palette=distinct_palette(len(DIOR_CLASSES)),
        metric="mAP",
        splits=("train", "val", "trainval", "test"),
        loader="dior:DIORR",
        layout=(
            "JPEGImages-trainval/, JPEGImages-test/, 'Annotations/Oriented Bounding Boxes/{id}.xml' and "
            "ImageSets/Main/{train,val,test}.txt"
        ),
        aliases=("DIOR-R", "DIOR", "dior_r", "diorr"),
        crop_size=800,  # whole 800 x 800 images
    ),
    "dota-v1.0": _dota("1.0"),
    "dota-v1.5": _dota("1.5"),
    "dota-v2.0": _dota("2.0"),
    "million-aid": DatasetInfo(
        name="million-aid",
        task="unlabeled",
        classes=(),
        palette=(),
        metric="none",
        splits=("all", "train", "test"),
        loader="imagefolder:ImageFolder",
        layout="image files (.jpg, .png, .tif) at any depth, e.g. train/{level1}/{level2}/P#######.jpg",
        aliases=("MillionAID", "Million-AID", "millionaid", "imagefolder"),
    ),
    "custom": DatasetInfo(
        name="custom",
        task="segmentation",
        classes=(),
        palette=(),
        metric="mIoU",
        splits=("train", "val", "test"),
        loader="custom:CustomDataset",
        layout="a dataset YAML naming GeoTIFF scenes and a vector label file (see s5cli/datasets/custom.py)",
    ),
}

# Datasets that live as a folder under a data root (custom data is named by its YAML instead).
FOLDER_DATASETS = tuple(name for name in DATASETS if name != "custom")


def _norm(name: str) -> str:
    return name.strip().lower()


def canonical_name(name: str) -> str:
    """The registry name of a dataset name or alias; unknown names are an InputError listing valid ones."""
    key = _norm(name)
    if key in DATASETS:
        return key
    for info in DATASETS.values():
        if key in (_norm(a) for a in info.aliases):
            return info.name
    raise InputError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")


def is_dataset_yaml(entry: str | os.PathLike[str] | None) -> bool:
    """True when a dataset entry or root is a custom dataset YAML (your own GeoTIFFs + vector labels)."""
    return entry is not None and str(entry).lower().endswith((".yaml", ".yml"))


def same_dataset(a: str, b: str) -> bool:
    """True when two names (registry names, aliases or custom names) denote the same dataset."""
    try:
        return canonical_name(a) == canonical_name(b)
    except InputError:
        return _norm(a) == _norm(b)


def dataset_info(name: str, root: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """The DatasetInfo of a name or alias (a custom dataset YAML as root gives that dataset's classes)."""
    if is_dataset_yaml(root):
        from s5cli.datasets.custom import custom_info

        return custom_info(root)  # type: ignore[arg-type]
    return DATASETS[canonical_name(name)]


def resolve_dataset(
    entry: str, data_root: str | os.PathLike[str] | None = None, root: str | os.PathLike[str] | None = None
) -> tuple[str, DatasetInfo, Path]:
    """(name, info, root) of a `--datasets` entry: a registry name or alias, or a custom dataset YAML.

    A registry dataset is found at `root` when given, else under `data_root`; a YAML entry is its own
    root and is named by its `name:` key, so several custom datasets can train side by side.
    """
    if is_dataset_yaml(entry):
        path = Path(entry)
        if not path.is_file():
            raise InputError("no such dataset YAML", path)
        info = dataset_info("custom", path)
        return info.name, info, path
    name = canonical_name(entry)
    if root is not None:
        found = Path(root)
    elif data_root is not None:
        found = find_dataset_root(data_root, name)
    else:
        raise InputError(f"give --data-root (a folder holding {name}/) or dataset_settings.{name}.root")
    return name, dataset_info(name, found), found


def find_dataset_root(data_root: str | os.PathLike[str], name: str) -> Path:
    """``DATA_ROOT/<name>/`` or ``DATA_ROOT/<alias>/`` (case-insensitive); an InputError when absent."""
    base = Path(data_root)
    if not base.is_dir():
        raise InputError("no such folder (expected a data root holding one folder per dataset)", base)
    info = dataset_info(name)
    wanted = [_norm(n) for n in (info.name, *info.aliases)]
    present = {_norm(p.name): p for p in sorted(base.iterdir()) if p.is_dir()}
    for key in wanted:
        if key in present:
            return present[key]
    tried = ", ".join([info.name, *info.aliases])
    raise InputError(f"no {info.name} folder here (looked for: {tried})", base)


def get_dataset(
    name: str,
    root: str | os.PathLike[str],
    split: str = "train",
    transforms: Any = None,
    **options: Any,
) -> Any:
    """Build the loader of a dataset folder (or custom YAML) as a torch Dataset of sample dicts."""
    info = dataset_info(name, root)
    module_name, class_name = info.loader.split(":")
    cls = getattr(importlib.import_module(f"s5cli.datasets.{module_name}"), class_name)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "root", "split", "transforms")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"{info.name} has no option {', '.join(unknown)}; its options: {', '.join(valid) or 'none'}")
    return cls(root, split=split, transforms=transforms, **options)
