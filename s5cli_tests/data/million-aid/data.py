"""Fake Million-AID: unlabeled JPEGs at varying depth and size (docs/datasets.md, Million-AID).

Real: {train,test}/{level1}/{level2}/[{level3}/]P#######.jpg. Fake: 3 train images at depths 2 and 3,
2 test images (one in a class folder, one flat), sizes 24-40 px.
Regenerate: python s5cli_tests/data/million-aid/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import regenerate, smooth_image, write_jpg

FILES = {
    "train/agriculture_land/grassland/meadow/P0115918.jpg": (32, 32),
    "train/water_area/beach/P0060208.jpg": (24, 40),
    "train/water_area/beach/P0060209.jpg": (36, 28),
    "test/arable_land/P0000101.jpg": (32, 24),
    "test/P0000102.jpg": (40, 32),
}


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for k, (rel, (h, w)) in enumerate(FILES.items()):
        write_jpg(root / rel, smooth_image(h, w, 3, 200 + k))


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
