"""DIOR-R as distributed: JPEG images, oriented-box VOC XMLs in a folder with spaces, ImageSets lists.

docs/datasets.md, DIOR-R: ``Annotations/Oriented Bounding Boxes/{id}.xml`` holds ``<robndbox>`` corners in
the order left-top, right-top, right-bottom, left-bottom. Class names are mixed case in the files
(``Expressway-Service-area``) and are matched lower-cased, by name. ``trainval`` is read from
``trainval.txt`` or built as train + val. Degenerate boxes (two equal consecutive corners) are dropped,
as MTP does. The re-arranged variants (``Annotations/obb/``, one merged ``JPEGImages/``) are accepted.
``<difficult>`` is read into the samples, but S5's DIOR-R score counts every object (BboxToolkit's
reader never reads the flag): s5cli.metrics.detection.evaluator_for applies that rule.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from s5cli.datasets.base import (
    IMAGE_SUFFIXES,
    Sample,
    SampleDataset,
    Transform,
    detection_targets,
    not_this_dataset,
    read_pixels,
    to_unit_float,
)
from s5cli.datasets.benchmarks import DIOR_R
from s5cli.datasets.polygons import degenerate
from s5cli.errors import InputError

_IMAGE_DIRS = ("JPEGImages-trainval", "JPEGImages-test", "JPEGImages")
_ANNOTATION_DIRS = ("Annotations/Oriented Bounding Boxes", "Annotations/obb")
_CORNERS = ("x_left_top", "y_left_top", "x_right_top", "y_right_top",
            "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom")  # fmt: skip


def _flag(obj: ET.Element, tag: str) -> bool:
    text = (obj.findtext(tag) or "0").strip()
    return text not in ("", "0", "false", "False")


def parse_obb_xml(path: Path, classes: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(polygons (N, 8), labels (N,), difficult (N,), truncated (N,)) from one DIOR-R XML."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"not a readable annotation XML ({exc})", path) from None
    polys, labels, diff, trunc = [], [], [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip().lower()
        if name not in classes:
            raise InputError(f"unknown DIOR-R class '{name}'; expected one of: {', '.join(classes)}", path)
        box = obj.find("robndbox")
        if box is None:
            raise InputError("an <object> without <robndbox> (is this the horizontal-box XML?)", path)
        try:
            polys.append([float(box.findtext(tag) or "nan") for tag in _CORNERS])
        except ValueError:
            raise InputError(f"a non-numeric corner in the '{name}' object", path) from None
        labels.append(classes[name])
        diff.append(_flag(obj, "difficult"))
        trunc.append(_flag(obj, "truncated"))
    arr = np.asarray(polys, dtype=np.float32).reshape(-1, 8)
    if not np.isfinite(arr).all():  # missing (nan), or 'inf' / '1e999', which float() also accepts
        raise InputError("a <robndbox> with missing or non-finite corners", path)
    keep = ~degenerate(arr)
    return (
        arr[keep],
        np.asarray(labels, np.int64)[keep],
        np.asarray(diff, bool)[keep],
        np.asarray(trunc, bool)[keep],
    )


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class DIORR(SampleDataset):
    """DIOR-R oriented object detection (20 classes), whole 800 x 800 images."""

    info = DIOR_R

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        sets = self.root / "ImageSets" / "Main"
        annotations = next((self.root / d for d in _ANNOTATION_DIRS if (self.root / d).is_dir()), None)
        if annotations is None or not sets.is_dir():
            raise not_this_dataset(self.root, self.name, self.info.layout)
        self.annotations = annotations
        ids = self._split_ids(sets)
        # One listing of the image folders: id -> file (JPEG in the real data; any image suffix accepted).
        images: dict[str, Path] = {}
        for folder in _IMAGE_DIRS:
            d = self.root / folder
            if d.is_dir():
                for p in d.iterdir():
                    if p.suffix.lower() in IMAGE_SUFFIXES:
                        images.setdefault(p.stem, p)
        missing = [i for i in ids if i not in images]
        if missing:
            raise InputError(
                f"{len(missing)} {self.split} images not found (first: {missing[0]}.jpg) in {' or '.join(_IMAGE_DIRS)}",
                self.root,
            )
        self.files = [(images[i], annotations / f"{i}.xml") for i in ids]
        self.class_index = {c: k for k, c in enumerate(self.info.classes)}

    def _split_ids(self, sets: Path) -> list[str]:
        parts = ["train", "val"] if self.split == "trainval" and not (sets / "trainval.txt").is_file() else [self.split]
        ids: list[str] = []
        for part in parts:
            path = sets / f"{part}.txt"
            if not path.is_file():
                raise InputError(f"no ImageSets/Main/{part}.txt (one image id per line)", self.root)
            ids.extend(_read_ids(path))
        return list(dict.fromkeys(ids))  # train and val never overlap; keep order, drop repeats

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Sample:
        image_path, xml_path = self.files[index]
        if not xml_path.is_file():
            folder = self.annotations.relative_to(self.root)
            raise InputError(f"no annotation {xml_path.name} in '{folder}'", image_path)
        return {
            "image": to_unit_float(read_pixels(image_path)),
            **detection_targets(*parse_obb_xml(xml_path, self.class_index)),
            "dataset": self.name,
            "path": str(image_path),
        }
