"""DOTA v1.0 / v1.5 / v2.0 as distributed: {split}/images/P####.png and {split}/labelTxt/P####.txt.

docs/datasets.md, DOTA: labelTxt files may start with ``imagesource:`` and ``gsd:`` header lines; object
lines are ``x1 y1 ... x4 y4 class [difficult]`` (any line with fewer than 9 tokens is skipped, the
DOTA_devkit rule). Some images are grayscale PNGs (repeated to RGB). Images reach ~20,000 px, so
samples are patches: 1024 with a gap (overlap) of 200 by default (mmrotate / BboxToolkit single-scale;
the gap scales with other patch sizes), the last row and column snapped to the edge, small images
padded with 0. Objects are kept in a patch when at least ``min_iof`` of their area is inside it; cut
ones are clipped and flagged truncated. For training on DOTA, ``s5 prepare`` cuts the patches to
files once (PNG has no windowed reads, so each patch here decodes its whole image).
Test ships no labels: its samples carry only the image.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from s5cli.datasets.base import (
    Sample,
    SampleDataset,
    Transform,
    WindowTuple,
    detection_targets,
    not_this_dataset,
    read_pixels,
    sorted_files,
    to_unit_float,
    window_index,
)
from s5cli.datasets.benchmarks import DOTA_V1_0, DOTA_V1_5, DOTA_V2_0
from s5cli.datasets.info import DatasetInfo
from s5cli.datasets.polygons import clip_to_window
from s5cli.errors import InputError

Annotation = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # polygons, labels, difficult, truncated


def parse_label_txt(path: Path, classes: dict[str, int]) -> Annotation:
    """Parse one labelTxt file: (polygons (N, 8), labels (N,), difficult (N,), truncated (N,))."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    polys, labels, diff, trunc = [], [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if len(tokens) < 9:  # header (imagesource:, gsd:, ...) or blank
            continue
        name = tokens[8].lower()
        if name not in classes:
            raise InputError(f"line {number}: class '{tokens[8]}' is not a {len(classes)}-class DOTA class", path)
        try:
            corners = [float(t) for t in tokens[:8]]
            level = int(float(tokens[9])) if len(tokens) > 9 else 0
        except (ValueError, OverflowError):  # int(float("inf")) overflows
            raise InputError(f"line {number}: expected 8 numbers, a class and a difficulty flag", path) from None
        if not all(math.isfinite(v) for v in corners):  # nan/inf parse as floats but would poison the losses
            raise InputError(f"line {number}: a corner is not a finite number", path)
        polys.append(corners)
        labels.append(classes[name])
        diff.append(level == 1)
        trunc.append(level == 2)  # mmrotate's split tool writes 2 for objects cut by a patch
    return (
        np.asarray(polys, np.float64).reshape(-1, 8),
        np.asarray(labels, np.int64),
        np.asarray(diff, bool),
        np.asarray(trunc, bool),
    )


class DOTA(SampleDataset):
    """DOTA oriented object detection, cut into patches (``patch_size=None`` gives whole images)."""

    info: DatasetInfo = DOTA_V2_0

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        patch_size: int | None = DOTA_V2_0.patch_size,
        gap: int | None = None,
        min_iof: float = 0.7,
        pad: bool = True,
        filter_empty: bool = False,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        self.version = self.name.removeprefix("dota-v")
        if not any((self.root / s / "images").is_dir() for s in ("train", "val", "test")):
            raise not_this_dataset(self.root, self.name, self.info.layout)
        if gap is None:  # the record's gap (mmrotate's 200 at 1024), scaled for other patch sizes
            gap = round((patch_size or 0) * self.info.patch_gap / self.info.patch_size)
        if patch_size is not None and not 0 <= gap < patch_size:
            raise InputError(f"gap must be in [0, patch_size), got gap={gap}, patch_size={patch_size}")
        self.patch_size, self.gap, self.min_iof, self.pad = patch_size, gap, min_iof, pad
        self.labeled = self.split != "test"
        self.class_index = {c: i for i, c in enumerate(self.info.classes)}
        self.files: list[tuple[Path, Path | None]] = []
        for part in ["train", "val"] if self.split == "trainval" else [self.split]:
            self.files.extend(self._list_part(part))
        if not self.files:
            raise InputError(f"no images for split '{self.split}': expected {self.split}/images/P####.png", self.root)
        self._annotations: dict[int, Annotation] = {}
        stride = patch_size - gap if patch_size is not None else None
        self.index: list[tuple[int, WindowTuple]] = []
        for i, (col, row, w, h) in window_index([image for image, _ in self.files], patch_size, stride):
            if pad and patch_size is not None:  # mmrotate pads small images to the full patch
                w, h = patch_size, patch_size
            if filter_empty and self.labeled and not self.objects_in(i, (col, row, w, h))[1].size:
                continue
            self.index.append((i, (col, row, w, h)))

    def _list_part(self, part: str) -> list[tuple[Path, Path | None]]:
        split_dir = self.root / part
        images = sorted_files(split_dir / "images", (".png", ".jpg", ".tif", ".bmp"))
        if not self.labeled:
            return [(p, None) for p in images]
        candidates = [f"labelTxt-v{self.version}/labelTxt", f"labelTxt-v{self.version}", "labelTxt"]
        labels = next((split_dir / c for c in candidates if (split_dir / c).is_dir()), None)
        if images and labels is None:
            raise InputError(f"no label folder: expected {part}/labelTxt/P####.txt beside {part}/images/", self.root)
        return [(p, labels / f"{p.stem}.txt") for p in images]  # type: ignore[operator]

    def _annotation(self, i: int) -> Annotation:
        if i not in self._annotations:
            image, label = self.files[i]
            if label is None or not label.is_file():
                raise InputError(f"no labelTxt file {label.name if label else ''} for this image", image)
            self._annotations[i] = parse_label_txt(label, self.class_index)
        return self._annotations[i]

    def objects_in(self, i: int, window: WindowTuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The objects of image i kept in a window, in window coordinates (polygons, labels, difficult, truncated)."""
        polys, labels, diff, trunc = self._annotation(i)
        clipped, keep, cut = clip_to_window(polys, window, self.min_iof)
        return clipped, labels[keep], diff[keep], trunc[keep] | cut

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, index: int) -> Sample:
        i, window = self.index[index]
        image_path = self.files[i][0]
        whole = self.patch_size is None
        sample: Sample = {
            "image": to_unit_float(read_pixels(image_path, None if whole else window)),
            "dataset": self.name,
            "path": str(image_path),
            "window": window,
        }
        if self.labeled:
            sample.update(detection_targets(*self.objects_in(i, window)))
        return sample


class DOTAv10(DOTA):
    """DOTA-v1.0 (15 classes)."""

    info = DOTA_V1_0


class DOTAv15(DOTA):
    """DOTA-v1.5 (16 classes: v1.0 + container-crane)."""

    info = DOTA_V1_5


class DOTAv20(DOTA):
    """DOTA-v2.0 (18 classes: v1.5 + airport, helipad)."""

    info = DOTA_V2_0
