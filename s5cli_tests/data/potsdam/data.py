"""Fake ISPRS Potsdam in the layout the official zips unzip to (docs/datasets.md, Potsdam).

Real: 38 tiles of 6000 x 6000 px. Fake: 4 tiles of 40 x 40 px with real tile ids, two from each
split (train 2_10, 6_7; test 2_13, 7_13); RGB, IRRG and RGBIR products that agree band for band;
full colour labels (5_Labels_all) and eroded ones (5_Labels_all_noBoundary, black boundaries);
"car" is absent from the test tiles. Regenerate: python s5cli_tests/data/potsdam/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import UTM33, blocky_classes, boundaries, paint, regenerate, smooth_image, write_text, write_tif
from rasterio.transform import from_origin

SIZE = 40  # real tiles are 6000 x 6000
TILES = {"2_10": 0, "6_7": 1, "2_13": 2, "7_13": 3}  # id -> seed
TEST = {"2_13", "7_13"}
PALETTE = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for tile, seed in TILES.items():
        r, c = (int(v) for v in tile.split("_"))
        transform = from_origin(366_000 + 300 * c, 5_808_000 - 300 * r, 0.05, 0.05)
        rgbir = smooth_image(SIZE, SIZE, 4, seed)  # R, G, B, IR
        write_tif(root / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tif", rgbir[:3], UTM33, transform)
        # The ortho products ship .tfw world files beside the TIFFs.
        tfw = "\n".join(f"{v:.10f}" for v in (0.05, 0.0, 0.0, -0.05, transform.c + 0.025, transform.f - 0.025))
        write_text(root / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tfw", tfw + "\n")
        write_tif(root / "3_Ortho_IRRG" / f"top_potsdam_{tile}_IRRG.tif", rgbir[[3, 0, 1]], UTM33, transform)
        write_tif(root / "4_Ortho_RGBIR" / f"top_potsdam_{tile}_RGBIR.tif", rgbir)  # not georeferenced
        classes = [0, 1, 2, 3, 5] if tile in TEST else [0, 1, 2, 3, 4, 5]
        label = blocky_classes(SIZE, SIZE, classes, seed + 10)
        colours = paint(label, PALETTE)
        write_tif(root / "5_Labels_all" / f"top_potsdam_{tile}_label.tif", colours)  # labels carry no CRS
        eroded = colours.copy()
        eroded[:, boundaries(label)] = 0
        write_tif(root / "5_Labels_all_noBoundary" / f"top_potsdam_{tile}_label_noBoundary.tif", eroded)


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
