"""The record of one dataset: every fact s5cli knows about it, in one frozen object (no torch, no I/O).

A record says what the labels hold (classes, colours, the ignore rule), where the files are (the layout
text, splits), how samples are cut (crop / stride / patch sizes), how a model is trained on it (train and
validation splits) and how it is scored (metric, protocol). Loaders, model heads, fine-tuning, evaluation
and predict all read these fields; nothing restates them. docs/datasets.md describes each format.

Two class lists matter:
- ``classes``: the classes of the label files, index = class id in the masks a loader returns;
- ``head_classes``: what a model head predicts, the classes minus ``ignored`` ones. ISPRS clutter is a
  class in the labels but S5 trains and scores it as ignore (5-class heads); ``class_lut`` maps label
  ids to head ids by name, classes a head lacks to ``IGNORE``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

IGNORE = 255  # the ignore value of every mask: pixels not scored and not trained on
Task = Literal["segmentation", "detection", "unlabeled"]
Metric = Literal["mIoU", "mF1", "mAP", "none"]
Mode = Literal["crop", "slide", "resize", "detect", "patches"]
Colour = tuple[int, int, int]
RGB = ("red", "green", "blue")  # what most benchmarks' images hold, band by band
NEUTRAL = (160, 160, 160)  # the background class of a default palette: grey, so that objects stand out


def default_palette(n: int, background: int | None = None) -> tuple[Colour, ...]:
    """Well-separated colours for n classes (golden-ratio hue walk); the background class, if any, neutral grey."""
    out: list[Colour] = []
    k = 0
    for i in range(n):
        if i == background:
            out.append(NEUTRAL)
            continue
        r, g, b = colorsys.hsv_to_rgb((0.6 + k * 0.618034) % 1.0, 0.8, 0.95)  # starts at blue, never grey
        out.append((round(r * 255), round(g * 255), round(b * 255)))
        k += 1
    return tuple(out)


@dataclass(frozen=True)
class Protocol:
    """How a dataset is scored by default: the split, the eval mode and its settings."""

    split: str  # the labelled split scored
    mode: Mode
    flip: bool = False  # horizontal-flip test-time augmentation
    overlap: float | None = None  # slide: fraction of a tile shared by neighbours; None: the head's own overlap
    windows: bool = False  # crop mode on windows the loader cuts at the head's tile size
    options: Mapping[str, Any] = field(default_factory=dict)  # loader options the protocol needs
    submission_split: str | None = None  # the unlabelled split predicted for the benchmark's server
    map_rule: Literal["bboxtoolkit", "dota_devkit"] = "bboxtoolkit"  # detection: whose mAP matching rule
    count_difficult: bool = False  # detection: difficult objects are ordinary ground truth


@dataclass(frozen=True)
class DatasetInfo:
    """What s5cli knows about one dataset (see the module docstring)."""

    name: str
    task: Task
    classes: tuple[str, ...]
    palette: tuple[Colour, ...]
    metric: Metric
    splits: tuple[str, ...]
    loader: str  # "module:Class" under s5cli.datasets
    layout: str  # what the folder must hold, as the official download unzips
    protocol: Protocol | None = None  # None: nothing to score (unlabelled data)
    train_split: str = "train"  # what fine-tuning trains on by default
    val_split: str | None = "val"  # what fine-tuning validates on by default (None: no validation)
    ignored: tuple[str, ...] = ()  # label classes trained and scored as ignore; heads predict the others
    metric_exclude: tuple[str, ...] = ()  # predicted classes left out of the means (iSAID background)
    split_aliases: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other folder names under a data root
    crop_size: int | None = None  # window side the loader cuts (None: whole images)
    stride: int | None = None  # window stride for training
    test_stride: int | None = None  # window stride for the other splits
    patch_size: int | None = None  # detection patch side
    patch_gap: int | None = None  # pixels shared by neighbouring detection patches
    gsd: float | None = None  # metres per pixel, when the benchmark has one ground sample distance
    bands: tuple[str, ...] = RGB  # what each band of the loader's images holds, in order
    band_options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # loader `bands` option -> bands

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(f"{self.name}: {len(self.palette)} colours for {len(self.classes)} classes")
        unknown = [c for c in (*self.ignored, *self.metric_exclude) if c not in self.classes]
        if unknown:
            raise ValueError(f"{self.name}: {unknown} are not classes")
        object.__setattr__(self, "split_aliases", MappingProxyType(dict(self.split_aliases)))
        object.__setattr__(self, "band_options", MappingProxyType(dict(self.band_options)))

    def bands_read(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The bands the loader returns under these loader options (Potsdam's `bands: IRRG` and the like)."""
        choice = (options or {}).get("bands")
        if choice is None:
            return self.bands
        if choice not in self.band_options:
            known = ", ".join(self.band_options) or "none"
            raise ValueError(f"{self.name}: no band option '{choice}' (known: {known})")
        return self.band_options[choice]

    @property
    def head_classes(self) -> tuple[str, ...]:
        """The classes a model head predicts: the label classes minus the ignored ones."""
        return tuple(c for c in self.classes if c not in self.ignored)

    @property
    def head_palette(self) -> tuple[Colour, ...]:
        """The colours of the head classes."""
        return tuple(p for c, p in zip(self.classes, self.palette) if c not in self.ignored)

    @property
    def excluded(self) -> tuple[str, ...]:
        """Label classes left out of the means: the ignored ones (never predicted) and metric_exclude."""
        return (*self.ignored, *(c for c in self.metric_exclude if c not in self.ignored))

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""
        return {
            "name": self.name,
            "task": self.task,
            "classes": list(self.classes),
            "num_classes": len(self.classes),
            "head_classes": list(self.head_classes),
            "ignored": list(self.ignored),
            "ignore_index": IGNORE,
            "metric": self.metric,
            "metric_exclude": list(self.metric_exclude),
            "splits": list(self.splits),
            "train_split": self.train_split,
            "val_split": self.val_split,
            "protocol": None if self.protocol is None else _protocol_dict(self.protocol),
            "aliases": list(self.aliases),
            "crop_size": self.crop_size,
            "stride": self.stride,
            "test_stride": self.test_stride,
            "patch_size": self.patch_size,
            "patch_gap": self.patch_gap,
            "gsd": self.gsd,
            "bands": list(self.bands),
            "band_options": {k: list(v) for k, v in self.band_options.items()},
            "layout": self.layout,
        }


def _protocol_dict(p: Protocol) -> dict[str, Any]:
    return {
        "split": p.split,
        "mode": p.mode,
        "flip": p.flip,
        "overlap": p.overlap,
        "submission_split": p.submission_split,
    }


def class_lut(source: Sequence[str], target: Sequence[str]) -> np.ndarray | None:
    """(256,) int64 table: id of a class in `source` -> id of the same name in `target`, IGNORE where absent.

    None when the two lists are equal (nothing to map). Heads and labels are matched by class name.
    """
    if list(source) == list(target):
        return None
    lut = np.full(256, IGNORE, dtype=np.int64)
    for i, name in enumerate(source):
        if name in target:
            lut[i] = list(target).index(name)
    return lut
