"""OpenEarthMap without xBD, as on Zenodo: {split}.txt lists and {region}/{images,labels}/{name}.tif.

docs/datasets.md, OpenEarthMap: the lists name basenames; the xBD regions ship labels but no images, so each list
is intersected with the image + label pairs that exist (label-only names are skipped). Labels are
1-band GeoTIFFs with values 0..8 (0 = "unknown", a class that S5 counts); test has no labels. Image
sizes vary: nothing assumes 1024.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from s5cli.console import log
from s5cli.datasets.base import (
    Sample,
    SampleDataset,
    Transform,
    check_label_size,
    not_this_dataset,
    read_pixels,
    to_unit_float,
    values_to_index,
)
from s5cli.datasets.benchmarks import OPENEARTHMAP
from s5cli.errors import InputError

_INNER = "OpenEarthMap_wo_xBD"  # the folder inside the Zenodo zip
_VALUES = {v: v for v in range(9)}  # values past 8 -> 255


def _dataset_folder(root: Path) -> Path | None:
    for candidate in (root, root / _INNER, root / "OpenEarthMap" / _INNER):
        if any((candidate / f"{s}.txt").is_file() for s in ("train", "val", "test")):
            return candidate
    return None


def _read_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        name = line.strip()
        if name:
            names.append(name if name.lower().endswith((".tif", ".tiff")) else f"{name}.tif")
    return names


class OpenEarthMap(SampleDataset):
    """OpenEarthMap (9 classes incl. 'unknown'), whole images; label-only (xBD) names are skipped."""

    info = OPENEARTHMAP

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        base = self.root
        folder = _dataset_folder(base)
        if folder is None:
            raise not_this_dataset(base, self.name, self.info.layout)
        self.root = folder
        list_file = folder / f"{self.split}.txt"
        if not list_file.is_file():
            raise InputError(f"no {self.split}.txt: the OpenEarthMap split lists sit beside the region folders", folder)
        # One listing of */images/*.tif (region folders are one level deep).
        images = {p.name: p for p in folder.glob("*/images/*") if p.suffix.lower() in (".tif", ".tiff")}
        self.labeled = self.split != "test"
        self.files: list[tuple[Path, Path | None]] = []
        skipped = 0
        for name in _read_list(list_file):
            image = images.get(name)
            label = image.parent.parent / "labels" / name if image is not None else None
            if image is None or (self.labeled and not label.is_file()):
                skipped += 1
                continue
            self.files.append((image, label if self.labeled else None))
        if skipped:
            log.debug("openearthmap %s: skipped %d names without an image+label pair (xBD)", self.split, skipped)
        if not self.files:
            raise InputError(
                f"none of the {self.split}.txt names has an image{' and a label' if self.labeled else ''} "
                "under {region}/images/ (and labels/)",
                folder,
            )

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        image_path, label_path = self.files[index]
        image = read_pixels(image_path)[:3]
        sample: Sample = {"image": to_unit_float(image), "dataset": self.name, "path": str(image_path)}
        if label_path is not None:
            raw = read_pixels(label_path, bands=[1], kind="label", pad_value=255)[0]
            check_label_size(image_path, image.shape[:0:-1], label_path, raw.shape[::-1])
            sample["mask"] = torch.from_numpy(values_to_index(raw, _VALUES))
        return sample
