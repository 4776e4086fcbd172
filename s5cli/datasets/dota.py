"""DOTA v1.0 / v1.5 / v2.0 as distributed: {split}/images/P####.png and {split}/labelTxt/P####.txt.

docs/datasets.md, DOTA: labelTxt files may start with ``imagesource:`` and ``gsd:`` header lines; object
lines are ``x1 y1 ... x4 y4 class [difficult]`` (any line with fewer than 9 tokens is skipped, the
DOTA_devkit rule). Some images are grayscale PNGs (repeated to RGB). Images reach ~20,000 px, so
samples are patches cut as S5 cuts them (BboxToolkit ``tools/img_split.py`` with
``split_configs/dota2_0/ss_trainval.json``): the record's patch size and gap (1024, 200; the gap
scales with other patch sizes), the last row and column snapped to the edge, windows kept when the
image covers more than ``img_rate_thr`` of them (else the best-covered ones), patches past the image
padded with the mean colour. An object belongs to a patch when at least ``min_iof`` of its area is
inside; it keeps its whole, unclipped polygon (in patch coordinates, so it may reach past the patch)
and is flagged truncated when cut. Objects whose enclosing box, clipped to the patch, is under
``min_box_size`` pixels on a side are dropped, as S5's DOTA training pipeline ignores them.
Whole images (``patch_size=None``, the evaluation protocol) carry the raw labelTxt polygons, every
one, as the DOTA devkit scores them. For training on DOTA, ``s5 prepare`` cuts the patches to
files once (PNG has no windowed reads, so each patch here decodes its whole image).
Test ships no labels: its samples carry only the image.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from s5cli.datasets.base import (
    Sample,
    SampleDataset,
    Transform,
    WindowTuple,
    detection_targets,
    image_size,
    not_this_dataset,
    read_pixels,
    sorted_files,
    to_unit_float,
)
from s5cli.datasets.benchmarks import DOTA_V1_0, DOTA_V1_5, DOTA_V2_0
from s5cli.datasets.info import DatasetInfo
from s5cli.datasets.polygons import objects_in_window
from s5cli.errors import InputError
from s5cli.geo.tiles import grid_starts

Annotation = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # polygons, labels, difficult, truncated

# BboxToolkit tools/split_configs/dota2_0/ss_*.json. Its padding_value [104, 116, 124] is written into
# cv2's BGR image, so in RGB it is (124, 116, 104): the ImageNet mean, which normalises to about 0.
PATCH_PADDING_RGB = (124, 116, 104)
IOF_THR = 0.7
IMG_RATE_THR = 0.6
# configs/obb/_base_/datasets/dota2.py: DOTASpecialIgnore(ignore_size=2) on the enclosing boxes, which
# mmdet's Resize has clipped to the image.
MIN_BOX_SIZE = 2.0
RECORD = "record"  # patch_size default: the dataset record's


def covered_windows(windows: list[WindowTuple], width: int, height: int, thr: float) -> list[WindowTuple]:
    """The windows the image covers more than ``thr`` of; if none, the best-covered ones (BboxToolkit)."""
    if not windows:
        return []
    rates = np.array(
        [(min(c + w, width) - c) * (min(r + h, height) - r) / (w * h) for c, r, w, h in windows], dtype=np.float64
    )
    keep = rates > thr
    if not keep.any():  # get_sliding_window: every window within 0.01 of the best rate
        keep = np.abs(rates - rates.max()) < 0.01
    return [win for win, k in zip(windows, keep) if k]


def too_small(polys: np.ndarray, size: int, min_size: float) -> np.ndarray:
    """(N,) True where a polygon's enclosing box, clipped to a size x size patch, is under min_size on a side."""
    xs = np.clip(polys[:, 0::2], 0, size)
    ys = np.clip(polys[:, 1::2], 0, size)
    return np.minimum(xs.max(1) - xs.min(1), ys.max(1) - ys.min(1)) < min_size


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
    """DOTA oriented object detection, cut into patches (``patch_size=None`` gives whole images).

    Args:
        root: the dataset folder.
        split: train, val, trainval or test.
        transforms: applied to each sample.
        patch_size: patch side; "record" takes the dataset record's (1024), None gives whole images.
        gap: overlap of neighbouring patches; None: the record's gap, scaled to the patch size.
        min_iof: share of an object's area a patch must hold for the object to belong to it.
        pad: pad patches past the image to the full size (False: the crop only, for ``s5 prepare``).
        filter_empty: leave out patches without objects (training).
        img_rate_thr: keep windows the image covers more than this share of.
        min_box_size: drop objects whose clipped enclosing box is under this on a side (0: keep all).
    """

    info: DatasetInfo = DOTA_V2_0

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        patch_size: int | str | None = RECORD,
        gap: int | None = None,
        min_iof: float = IOF_THR,
        pad: bool = True,
        filter_empty: bool = False,
        img_rate_thr: float = IMG_RATE_THR,
        min_box_size: float = MIN_BOX_SIZE,
    ) -> None:
        super().__init__(transforms)
        self._check_root_and_split(root, split)
        self.version = self.name.removeprefix("dota-v")
        if not any((self.root / s / "images").is_dir() for s in ("train", "val", "test")):
            raise not_this_dataset(self.root, self.name, self.info.layout)
        size = self.info.patch_size if patch_size == RECORD else patch_size
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise InputError(f"patch_size must be a positive number of pixels or null, got {patch_size!r}")
        if gap is None and size is not None:  # the record's gap, scaled for other patch sizes
            gap = round(size * (self.info.patch_gap or 0) / (self.info.patch_size or size))
        if size is not None and not 0 <= (gap or 0) < size:
            raise InputError(f"gap must be in [0, patch_size), got gap={gap}, patch_size={size}")
        self.patch_size, self.gap, self.min_iof, self.pad = size, gap or 0, min_iof, pad
        self.min_box_size = min_box_size
        self.labeled = self.split != "test"
        self.class_index = {c: i for i, c in enumerate(self.info.classes)}
        self.files: list[tuple[Path, Path | None]] = []
        for part in ["train", "val"] if self.split == "trainval" else [self.split]:
            self.files.extend(self._list_part(part))
        if not self.files:
            raise InputError(f"no images for split '{self.split}': expected {self.split}/images/P####.png", self.root)
        self._annotations: dict[int, Annotation] = {}
        self.sizes: list[tuple[int, int]] = []  # (width, height) of each image, from its header
        self.index: list[tuple[int, WindowTuple]] = []
        for i, (image, _) in enumerate(self.files):
            width, height = image_size(image)
            self.sizes.append((width, height))
            for window in self._windows(width, height, img_rate_thr):
                if filter_empty and self.labeled and not self.objects_in(i, window)[1].size:
                    continue
                self.index.append((i, window))

    def _windows(self, width: int, height: int, img_rate_thr: float) -> list[WindowTuple]:
        """Row-major patch windows of one image (BboxToolkit get_sliding_window), or the whole image."""
        size = self.patch_size
        if size is None:
            return [(0, 0, width, height)]
        stride = size - self.gap
        full = [(c, r, size, size) for r in grid_starts(height, size, stride) for c in grid_starts(width, size, stride)]
        kept = covered_windows(full, width, height, img_rate_thr)
        if self.pad:
            return kept
        return [(c, r, min(size, width - c), min(size, height - r)) for c, r, _, _ in kept]

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
        """The objects of image i in a window, in window coordinates (polygons, labels, difficult, truncated).

        Whole images: every raw polygon. Patches: the whole polygons of the objects the full
        patch_size window holds at least min_iof of, minus those under min_box_size.
        """
        polys, labels, diff, trunc = self._annotation(i)
        if self.patch_size is None:
            return polys.astype(np.float32), labels, diff, trunc
        frame = (window[0], window[1], self.patch_size, self.patch_size)  # also for unpadded edge crops
        rel, keep, cut = objects_in_window(polys, frame, self.min_iof)
        if self.min_box_size > 0:
            big = ~too_small(rel, self.patch_size, self.min_box_size)
            rel, keep, cut = rel[big], keep[big], cut[big]
        return rel, labels[keep], diff[keep], trunc[keep] | cut

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, index: int) -> Sample:
        i, window = self.index[index]
        image_path = self.files[i][0]
        whole = self.patch_size is None
        image = to_unit_float(read_pixels(image_path, None if whole else window))
        col, row = window[0], window[1]
        width, height = self.sizes[i]
        inside_w, inside_h = width - col, height - row
        if inside_w < image.shape[-1] or inside_h < image.shape[-2]:  # a patch past the image: mean colour
            colour = torch.tensor(PATCH_PADDING_RGB, dtype=image.dtype)[: image.shape[0], None, None] / 255
            image[:, :, inside_w:] = colour
            image[:, inside_h:, :] = colour
        sample: Sample = {"image": image, "dataset": self.name, "path": str(image_path), "window": window}
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
