"""Fake iSAID as its image and semantic-mask zips extract (docs/datasets.md, iSAID).

Real: DOTA images {split}/images/P####.png with P####_instance_color_RGB.png (semantic colours, 16
classes) and P####_instance_id_RGB.png beside them; test has images only. Fake: 2 images per split of
40-48 px; every train colour of the table appears; "plane" (14) and "harbor" (15) are absent from
val. Regenerate: python s5cli_tests/data/isaid/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from _fakes import blocky_classes, paint, regenerate, smooth_image, write_png

PALETTE = [
    (0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255), (0, 127, 63),
    (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 191, 127), (0, 127, 191), (0, 127, 255),
    (0, 100, 155),
]  # fmt: skip
IMAGES = {"train": {"P0000": (48, 40), "P0001": (40, 40)}, "val": {"P0002": (40, 48), "P0003": (32, 40)},
          "test": {"P0004": (40, 40), "P0005": (36, 44)}}  # fmt: skip


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for split, images in IMAGES.items():
        for k, (name, (h, w)) in enumerate(images.items()):
            seed = int(name[1:])
            folder = root / split / "images"
            write_png(folder / f"{name}.png", smooth_image(h, w, 3, seed))
            if split == "test":
                continue
            if split == "train":  # the two train images share all 16 classes between them
                values = [*range(8), 0] if k == 0 else [0, *range(8, 16)]
            else:
                values = list(range(14))
            label = blocky_classes(h, w, values, seed + 20, block=4)
            write_png(folder / f"{name}_instance_color_RGB.png", paint(label, PALETTE))
            ids = (label * 7 % 256).astype(np.uint8)  # an instance-id image; the loader does not read it
            write_png(folder / f"{name}_instance_id_RGB.png", np.stack([ids, ids // 2, ids // 3]))


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
