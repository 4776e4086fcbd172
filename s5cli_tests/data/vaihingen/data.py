"""Fake ISPRS Vaihingen in the layout its three zips unzip to (docs/datasets.md, Vaihingen).

Real: 33 IRRG tiles of about 2000 x 2500 px in top/, colour labels flat beside it with the same
basename, eroded ones as ..._noBoundary.tif. Fake: 4 tiles of unequal, non-square sizes with real
area ids (train area1, area3; test area2, area38), both label sets, and the eroded area9 label that
has no image (mmseg deletes it). "car" is absent from the test tiles.
Regenerate: python s5cli_tests/data/vaihingen/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import blocky_classes, boundaries, paint, regenerate, smooth_image, write_tif

AREAS = {1: (40, 56), 3: (48, 36), 2: (44, 40), 38: (36, 52)}  # area -> (height, width)
TEST = {2, 38}
PALETTE = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]


def _labels(root: Path, name: str, label) -> None:
    colours = paint(label, PALETTE)
    write_tif(root / f"{name}.tif", colours)
    eroded = colours.copy()
    eroded[:, boundaries(label)] = 0
    write_tif(root / f"{name}_noBoundary.tif", eroded)


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for area, (h, w) in AREAS.items():
        name = f"top_mosaic_09cm_area{area}"
        write_tif(root / "top" / f"{name}.tif", smooth_image(h, w, 3, area))  # IR, R, G
        classes = [0, 1, 2, 3, 5] if area in TEST else [0, 1, 2, 3, 4, 5]
        _labels(root, name, blocky_classes(h, w, classes, area + 10))
    # The eroded zip also holds area9, which has no image.
    label9 = blocky_classes(32, 32, [0, 1, 2], 9)
    colours = paint(label9, PALETTE)
    colours[:, boundaries(label9)] = 0
    write_tif(root / "top_mosaic_09cm_area9_noBoundary.tif", colours)


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
