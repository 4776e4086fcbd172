"""The fake DOTA generator shared by dota-v1.0/, dota-v1.5/ and dota-v2.0/ (docs/datasets.md, DOTA).

Real: {train,val}/images/P####.png (some grayscale, up to ~20,000 px) with {train,val}/labelTxt/P####.txt
(``imagesource:`` / ``gsd:`` header lines, then ``x1 y1 ... x4 y4 class difficult``), test/images only.
Fake: train P0000 (56 x 40 RGB, objects inside, across and outside 32 px patches) and P0001 (32 x 32
grayscale, header only: no objects); val P0002 (40 x 40, a 9-token line, a difficult object, gsd:null);
test P0003 (48 x 32). v1.0 writes integer coordinates, later versions floats; each version adds its
new classes (container-crane; airport, helipad).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _fakes import smooth_image, write_png, write_text

IMAGES = {"train": {"P0000": (40, 56), "P0001": (32, 32)}, "val": {"P0002": (40, 40)}, "test": {"P0003": (32, 48)}}
GRAYSCALE = {"P0001"}
HEADERS = {"P0000": ("GoogleEarth", "0.146343590398"), "P0001": ("GF2", "0.8"), "P0002": ("JL1", "null")}
# (corners, class, difficult or None for a 9-token line)
OBJECTS = {
    "P0000": [
        ((2, 2, 12, 2, 12, 10, 2, 10), "plane", 0),
        ((22, 4, 34, 4, 34, 14, 22, 14), "small-vehicle", 0),  # crosses x = 32: truncated in both patches
        ((44, 30, 52, 30, 52, 38, 44, 38), "storage-tank", 1),
        ((10, 20, 18, 16, 22, 24, 14, 28), "large-vehicle", 0),  # rotated
    ],
    "P0001": [],
    "P0002": [((4, 4, 16, 4, 16, 12, 4, 12), "harbor", None), ((20, 20, 30, 22, 28, 32, 18, 30), "ship", 1)],
}
EXTRA = {
    "1.5": {"P0000": [((30, 20, 40, 20, 40, 28, 30, 28), "container-crane", 0)]},
    "2.0": {
        "P0000": [((30, 20, 40, 20, 40, 28, 30, 28), "container-crane", 0)],
        "P0002": [((22, 2, 36, 2, 36, 14, 22, 14), "airport", 0), ((2, 26, 10, 26, 10, 34, 2, 34), "helipad", 0)],
    },
}


def _label_text(name: str, version: str) -> str:
    source, gsd = HEADERS[name]
    lines = [f"imagesource:{source}", f"gsd:{gsd}"]
    for corners, cls, difficult in OBJECTS[name] + EXTRA.get(version, {}).get(name, []):
        coords = " ".join(str(c) if version == "1.0" else f"{float(c):.1f}" for c in corners)
        lines.append(f"{coords} {cls}" if difficult is None else f"{coords} {cls} {difficult}")
    return "\n".join(lines) + "\n"


def create_dota(root: Path, version: str) -> None:
    """Write one fake DOTA version under root."""
    for split, images in IMAGES.items():
        for name, (h, w) in images.items():
            pixels = smooth_image(h, w, 3, int(name[1:]))
            if name in GRAYSCALE:
                pixels = np.round(pixels.mean(axis=0)).astype(np.uint8)  # a panchromatic GF-2 image
            write_png(root / split / "images" / f"{name}.png", pixels)
            if split != "test":
                write_text(root / split / "labelTxt" / f"{name}.txt", _label_text(name, version))
