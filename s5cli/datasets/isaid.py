"""iSAID as extracted: {split}/images/P####.png with the colour mask P####_instance_color_RGB.png beside it.

docs/datasets.md, iSAID: 16 classes (0 = background) by the mmseg colour table; colours not in the table
become 255. The images are DOTA's (up to ~20,000 px), so samples are windows: mmseg's 896 patches with
overlap 384 (stride 512) by default, or whole images with ``crop_size=None``. Test has no masks. This
is the labeled source of S4P pre-training.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

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
    sorted_files,
    to_unit_float,
    window_index,
)
from s5cli.datasets.benchmarks import ISAID
from s5cli.errors import InputError

_MASK_SUFFIXES = ("_instance_color_RGB", "_instance_id_RGB")


def _mask_for(image: Path, split_dir: Path) -> Path:
    name = f"{image.stem}_instance_color_RGB.png"
    beside = image.parent / name
    if beside.is_file():
        return beside
    # mmseg's download keeps Semantic_masks/images.zip; unzipped in place it gives this folder.
    other = split_dir / "Semantic_masks" / "images" / name
    return other if other.is_file() else beside


class ISAID(SampleDataset):
    """iSAID semantic segmentation (16 classes), windows of the large DOTA images."""

    info = ISAID

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        crop_size: int | None = ISAID.crop_size,
        stride: int | None = ISAID.stride,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        if not any((self.root / s / "images").is_dir() for s in self.info.splits):
            raise not_this_dataset(self.root, self.name, self.info.layout)
        split_dir = self.root / self.split
        images = [p for p in sorted_files(split_dir / "images", (".png",)) if not p.stem.endswith(_MASK_SUFFIXES)]
        if not images:
            raise InputError(f"no images for split '{self.split}': expected {self.split}/images/P####.png", self.root)
        self.labeled = self.split != "test"
        self.table = colour_table(self.info.classes, self.info.palette)
        self.files: list[tuple[Path, Path | None]] = [
            (p, _mask_for(p, split_dir) if self.labeled else None) for p in images
        ]
        self.crop_size, self.stride = crop_size, stride or crop_size
        self.index = window_index([image for image, _ in self.files], crop_size, self.stride)

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, index: int) -> Sample:
        i, window = self.index[index]
        image_path, mask_path = self.files[i]
        window_arg = window if self.crop_size is not None else None
        sample: Sample = {
            "image": to_unit_float(read_pixels(image_path, window_arg)),
            "dataset": self.name,
            "path": str(image_path),
            "window": window,
        }
        if mask_path is not None:
            if not mask_path.is_file():
                raise InputError(f"no colour mask {mask_path.name} for this image", image_path)
            check_label_size(image_path, image_size(image_path), mask_path, image_size(mask_path))  # headers only
            rgb = read_pixels(mask_path, window_arg, kind="colour", pad_value=255)
            sample["mask"] = torch.from_numpy(colours_to_index(rgb[:3], self.table))
        return sample
