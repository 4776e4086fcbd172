"""An unlabeled folder of images at any depth (Million-AID style): the unlabeled source of pre-training.

docs/datasets.md, Million-AID: Million-AID nests JPEGs in class folders of varying depth, so nothing here relies
on depth: every image file under the split folder is a sample, sorted by relative path.
"""

from __future__ import annotations

import os
from pathlib import Path

from s5cli.datasets.base import (
    IMAGE_SUFFIXES,
    Sample,
    SampleDataset,
    Transform,
    check_root,
    read_pixels,
    to_unit_float,
)
from s5cli.datasets.benchmarks import MILLION_AID
from s5cli.errors import InputError


def list_images(folder: Path) -> list[Path]:
    """Every image file under a folder, at any depth, sorted by relative path (hidden files skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class ImageFolder(SampleDataset):
    """Images only; ``split="all"`` takes the whole folder, another split its sub-folder of that name."""

    info = MILLION_AID  # the registered image-folder dataset; other folders keep its layout under their own name

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "all",
        transforms: Transform | None = None,
        name: str = MILLION_AID.name,
        bands: list[int] | None = None,
        scale: float | None = None,
    ) -> None:
        super().__init__(transforms)
        self.name = name
        self.root = check_root(root, name, MILLION_AID.layout)
        self.split = split
        folder = self.root if split == "all" else self.root / split
        if not folder.is_dir():
            subs = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise InputError(
                f"no '{split}' folder; use split 'all' or one of the sub-folders: {', '.join(subs) or 'none'}",
                self.root,
            )
        self.files = list_images(folder)
        if not self.files:
            raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) at any depth", folder)
        self.bands, self.scale = bands, scale

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        path = self.files[index]
        pixels = read_pixels(path, bands=self.bands)
        return {"image": to_unit_float(pixels, self.scale), "dataset": self.name, "path": str(path)}
