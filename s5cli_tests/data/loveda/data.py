"""Fake LoveDA in the layout of the Zenodo Train/Val/Test zips (docs/datasets.md, LoveDA).

Real: 1024 x 1024 RGB PNGs, masks single-channel PNG with 0 = no-data and 1..7 = classes, ids unique
unpadded integers across folders; Test has no masks. Fake: 32 x 32 images, 3 train (Rural 0, 1;
Urban 2), 2 val (Rural 3; Urban 4), 3 test (Rural 5; Urban 6, 7); every mask has some 0 (no-data);
class 4 (water, raw value 4) is absent from val. Regenerate: python s5cli_tests/data/loveda/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import blocky_classes, regenerate, smooth_image, write_png

SIZE = 32  # real images are 1024 x 1024
FILES = {
    ("Train", "Rural"): [0, 1],
    ("Train", "Urban"): [2],
    ("Val", "Rural"): [3],
    ("Val", "Urban"): [4],
    ("Test", "Rural"): [5],
    ("Test", "Urban"): [6, 7],
}


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for (split, scene), ids in FILES.items():
        for i in ids:
            folder = root / split / scene
            write_png(folder / "images_png" / f"{i}.png", smooth_image(SIZE, SIZE, 3, i))
            if split == "Test":
                continue
            values = [0, 1, 2, 3, 5, 6, 7] if split == "Val" else list(range(8))
            mask = blocky_classes(SIZE, SIZE, values, 100 + i).astype("uint8")
            write_png(folder / "masks_png" / f"{i}.png", mask)


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
