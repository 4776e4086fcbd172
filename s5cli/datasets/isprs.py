"""ISPRS Potsdam and Vaihingen as distributed: big orthophoto tiles and colour label tiles, cut into windows.

Layouts, colours and the official tile splits: docs/datasets.md, ISPRS. Windows are read on the fly with
rasterio (a 512 window of a 6000 x 6000 tile decodes only that window). S5 protocol: 512 windows with
stride 256 for training (529 per Potsdam tile) and non-overlapping windows for test (144 per tile).
Eroded-boundary labels (``labels="eroded"``) mark boundaries black; those pixels, and any colour not in
the table, become 255 (ignored), never clutter.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Literal

import torch

from s5cli.console import warn
from s5cli.datasets.base import (
    Sample,
    SampleDataset,
    Transform,
    check_label_size,
    colour_table,
    colours_to_index,
    image_size,
    not_this_dataset,
    read_pixels,
    to_unit_float,
    window_index,
)
from s5cli.datasets.benchmarks import POTSDAM, VAIHINGEN
from s5cli.datasets.info import IGNORE, DatasetInfo
from s5cli.errors import InputError

# the ISPRS benchmark split (24 train / 14 test tiles), as used by mmseg, torchgeo and S5.
POTSDAM_SPLITS = {
    "train": "2_10 2_11 2_12 3_10 3_11 3_12 4_10 4_11 4_12 5_10 5_11 5_12 6_7 6_8 6_9 6_10 6_11 6_12 "
    "7_7 7_8 7_9 7_10 7_11 7_12".split(),
    "test": "2_13 2_14 3_13 3_14 4_13 4_14 4_15 5_13 5_14 5_15 6_13 6_14 6_15 7_13".split(),
}
# 16 train / 17 test areas (identical in mmseg, torchgeo, S5 and GeoSeg).
VAIHINGEN_SPLITS = {
    "train": [1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37],
    "test": [2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38],
}

# Potsdam image products: (folder, file suffix, bands to read); the second entry of each list reads the
# same bands out of the 4-band RGBIR product (R, G, B, IR) when the 3-band product was not unzipped.
_POTSDAM_IMAGES = {
    "RGB": [("2_Ortho_RGB", "RGB", None), ("4_Ortho_RGBIR", "RGBIR", [1, 2, 3])],
    "IRRG": [("3_Ortho_IRRG", "IRRG", None), ("4_Ortho_RGBIR", "RGBIR", [4, 1, 2])],
    "RGBIR": [("4_Ortho_RGBIR", "RGBIR", None)],
}
# Label folders as unzipped (note the two spellings of the eroded folders), or flat (torchgeo).
_POTSDAM_LABELS = {
    "full": (["5_Labels_all", "5_Labels_for_participants", "."], "_label.tif"),
    "eroded": (
        ["5_Labels_all_noBoundary", "5_Labels_for_participants_no_Boundary", "5_Labels_all_no_Boundary", "."],
        "_label_noBoundary.tif",
    ),
}
_VAIHINGEN_IMAGE_DIRS = ["top", "ISPRS_semantic_labeling_Vaihingen/top"]
_VAIHINGEN_LABELS = {
    "full": ([".", "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE", "gts_for_participants"], ".tif"),
    "eroded": (
        [".", "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE", "gts_eroded_for_participants"],
        "_noBoundary.tif",
    ),
}


def _warn_partial(root: Path, name: str, split: str, found: int, expected: int) -> None:
    """Say that tiles of the official split are absent: they are skipped, so scores are not the benchmark's."""
    if 0 < found < expected:
        warn(f"{root}: {found} of the {expected} {name} {split} tiles found; the others are skipped")


def _first_file(root: Path, folders: list[str], filename: str) -> Path | None:
    for folder in folders:
        path = root / folder / filename
        if path.is_file():
            return path
    return None


class _ISPRSTiles(SampleDataset):
    """Colour-labelled tiles cut into windows; subclasses say where each tile's files are."""

    info: DatasetInfo

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        transforms: Transform | None,
        crop_size: int | None,
        stride: int | None,
        labels: Literal["full", "eroded"],
        clutter: Literal["class", "ignore"],
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        if labels not in ("full", "eroded"):
            raise InputError(f"labels must be 'full' or 'eroded', not '{labels}'")
        if clutter not in ("class", "ignore"):
            raise InputError(f"clutter must be 'class' or 'ignore', not '{clutter}'")
        if crop_size is not None and crop_size <= 0:
            raise InputError(f"crop_size must be positive, got {crop_size}")
        self.labels = labels
        self.table = colour_table(self.info.classes, self.info.palette)
        if clutter == "ignore":  # clutter read as IGNORE (the record's rule, datasets/info.py, does it for heads)
            self.table[self.info.palette[self.info.classes.index("clutter")]] = IGNORE
        self.tiles = self._find_tiles()
        if not self.tiles:
            raise not_this_dataset(self.root, self.name, self.info.layout)
        for image, label, _ in self.tiles:  # headers only: windows past a smaller label would read padding
            check_label_size(image, image_size(image), label, image_size(label))
        if stride is None and crop_size is not None:  # the record's strides, scaled to another crop size
            step = self.info.stride if self.split == "train" else self.info.test_stride
            stride = round(crop_size * step / self.info.crop_size)
        self.crop_size, self.stride = crop_size, stride
        self.index = window_index([image for image, _, _ in self.tiles], crop_size, stride)

    @abstractmethod
    def _find_tiles(self) -> list[tuple[Path, Path, list[int] | None]]:
        """(image, label, bands) of each tile of the split that is present."""

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, index: int) -> Sample:
        t, window = self.index[index]
        image_path, label_path, bands = self.tiles[t]
        image = read_pixels(image_path, window, bands)
        rgb = read_pixels(label_path, window, [1, 2, 3], kind="colour", pad_value=0)
        mask = colours_to_index(rgb, self.table)
        return {
            "image": to_unit_float(image),
            "mask": torch.from_numpy(mask),
            "dataset": self.name,
            "path": str(image_path),
            "window": window,
        }


class Potsdam(_ISPRSTiles):
    """ISPRS Potsdam: 38 tiles of 6000 x 6000 at 5 cm; RGB by default, IRRG or RGBIR with ``bands``."""

    info = POTSDAM

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        bands: Literal["RGB", "IRRG", "RGBIR"] = "RGB",
        crop_size: int | None = POTSDAM.crop_size,
        stride: int | None = None,
        labels: Literal["full", "eroded"] = "full",
        clutter: Literal["class", "ignore"] = "class",
    ) -> None:
        if bands not in _POTSDAM_IMAGES:
            raise InputError(f"potsdam bands must be one of {', '.join(_POTSDAM_IMAGES)}, not '{bands}'")
        self.bands = bands
        super().__init__(root, split, transforms, crop_size, stride, labels, clutter)

    def _find_tiles(self) -> list[tuple[Path, Path, list[int] | None]]:
        folders, suffix = _POTSDAM_LABELS[self.labels]
        tiles = []
        for tile in POTSDAM_SPLITS[self.split]:
            found = None
            for folder, product, bands in _POTSDAM_IMAGES[self.bands]:
                path = self.root / folder / f"top_potsdam_{tile}_{product}.tif"
                if path.is_file():
                    found = (path, bands)
                    break
            if found is None:
                continue
            label = _first_file(self.root, folders, f"top_potsdam_{tile}{suffix}")
            if label is None:
                raise InputError(
                    f"no {self.labels} label for tile {tile}: expected top_potsdam_{tile}{suffix} in "
                    f"{' or '.join(f for f in folders if f != '.')} or in the folder itself",
                    self.root,
                )
            tiles.append((found[0], label, found[1]))
        _warn_partial(self.root, self.name, self.split, len(tiles), len(POTSDAM_SPLITS[self.split]))
        return tiles


class Vaihingen(_ISPRSTiles):
    """ISPRS Vaihingen: 33 IRRG tiles of about 2000 x 2500 at 9 cm, labels flat beside ``top/``."""

    info = VAIHINGEN

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        crop_size: int | None = VAIHINGEN.crop_size,
        stride: int | None = None,
        labels: Literal["full", "eroded"] = "full",
        clutter: Literal["class", "ignore"] = "class",
    ) -> None:
        super().__init__(root, split, transforms, crop_size, stride, labels, clutter)

    def _find_tiles(self) -> list[tuple[Path, Path, list[int] | None]]:
        folders, suffix = _VAIHINGEN_LABELS[self.labels]
        tiles = []
        for area in VAIHINGEN_SPLITS[self.split]:
            image = _first_file(self.root, _VAIHINGEN_IMAGE_DIRS, f"top_mosaic_09cm_area{area}.tif")
            if image is None:
                continue
            label = _first_file(self.root, folders, f"top_mosaic_09cm_area{area}{suffix}")
            if label is None:
                raise InputError(
                    f"no {self.labels} label for area{area}: expected top_mosaic_09cm_area{area}{suffix} "
                    "flat in the folder (beside top/)",
                    self.root,
                )
            tiles.append((image, label, None))
        _warn_partial(self.root, self.name, self.split, len(tiles), len(VAIHINGEN_SPLITS[self.split]))
        return tiles
