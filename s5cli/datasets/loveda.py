"""LoveDA as distributed on Zenodo: {Train,Val,Test}/{Urban,Rural}/{images_png,masks_png}/{id}.png.

docs/datasets.md, LoveDA: whole 1024 x 1024 RGB PNGs; masks hold 0 = no-data, 1..7 = classes, so the
class index is value - 1 and no-data becomes 255 (as S5's uint8 ``mask - 1``). Test ships no masks:
its samples carry only the image. S5 trains on Train + Val (``trainval``).
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
    not_this_dataset,
    read_pixels,
    sorted_files,
    to_unit_float,
    values_to_index,
)
from s5cli.datasets.benchmarks import LOVEDA
from s5cli.errors import InputError

_FOLDERS = {"train": ["Train"], "val": ["Val"], "trainval": ["Train", "Val"], "test": ["Test"]}
_SCENES = ("Urban", "Rural")
# Raw mask value -> class index; 0 (no-data) and anything else -> 255.
_VALUES = {v: v - 1 for v in range(1, 8)}


def _id_key(path: Path) -> tuple[int, str]:
    # IDs are unpadded integers, unique across folders: sort numerically.
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)


class LoveDA(SampleDataset):
    """LoveDA land cover (7 classes), whole images; ``scenes`` picks Urban and/or Rural."""

    info = LOVEDA

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        scenes: tuple[str, ...] | list[str] = _SCENES,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        wanted = [s.capitalize() for s in scenes]
        if not wanted or any(s not in _SCENES for s in wanted):
            raise InputError(f"loveda scenes must be among Urban, Rural, not {list(scenes)}")
        if not any((self.root / f).is_dir() for f in ("Train", "Val", "Test")):
            raise not_this_dataset(self.root, self.name, self.info.layout)
        self.labeled = self.split != "test"
        self.files: list[tuple[Path, Path | None]] = []
        for folder in _FOLDERS[self.split]:
            for scene in wanted:
                images = sorted_files(self.root / folder / scene / "images_png", (".png",))
                for image in images:
                    mask = image.parent.parent / "masks_png" / image.name if self.labeled else None
                    self.files.append((image, mask))
        self.files.sort(key=lambda pair: _id_key(pair[0]))
        if not self.files:
            raise InputError(
                f"no LoveDA images for split '{self.split}': expected "
                f"{'|'.join(_FOLDERS[self.split])}/{{Urban,Rural}}/images_png/{{id}}.png",
                self.root,
            )

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        image_path, mask_path = self.files[index]
        image = read_pixels(image_path)
        sample: Sample = {"image": to_unit_float(image), "dataset": self.name, "path": str(image_path)}
        if mask_path is not None:
            if not mask_path.is_file():
                raise InputError("no mask for this image (expected masks_png/ beside images_png/)", image_path)
            raw = read_pixels(mask_path, kind="label")[0]
            check_label_size(image_path, image.shape[:0:-1], mask_path, raw.shape[::-1])
            sample["mask"] = torch.from_numpy(values_to_index(raw, _VALUES))
        return sample
