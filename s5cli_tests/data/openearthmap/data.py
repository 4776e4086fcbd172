"""Fake OpenEarthMap (without xBD) in the layout of the Zenodo zip (docs/datasets.md, OpenEarthMap).

Real: OpenEarthMap_wo_xBD/{train,val,test}.txt (basenames) and {region}/{images,labels}/{name}.tif,
3-band images and 1-band labels 0..8 as georeferenced GeoTIFFs; the xBD regions have labels but no
images; test has no labels. Fake: regions aachen and buenos_aires (images + labels) and palu (labels
only, xBD); train 3 usable pairs + palu_1, val 2 + palu_2, test 2 images; 32 x 32 px except one
36 x 28 image (sizes are not all 1024 in the real data either); class 6 (water) absent from val.
Regenerate: python s5cli_tests/data/openearthmap/data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import UTM33, blocky_classes, regenerate, smooth_image, write_text, write_tif
from rasterio.transform import from_origin

INNER = "OpenEarthMap_wo_xBD"
SPLITS = {
    "train": ["aachen_1", "aachen_2", "buenos_aires_1", "palu_1"],
    "val": ["aachen_3", "buenos_aires_2", "palu_2"],
    "test": ["aachen_4", "buenos_aires_3"],
}
SHAPES = {"buenos_aires_1": (36, 28)}  # (height, width); the rest are 32 x 32


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    base = root / INNER
    for split, names in SPLITS.items():
        write_text(base / f"{split}.txt", "\n".join(f"{n}.tif" for n in names) + "\n")
        for k, name in enumerate(names):
            seed = 10 * len(split) + k
            region = name.rsplit("_", 1)[0]
            h, w = SHAPES.get(name, (32, 32))
            transform = from_origin(400_000 + 100 * seed, 5_600_000, 0.5, 0.5)
            if region != "palu":  # xBD region: its images are not in the download
                write_tif(base / region / "images" / f"{name}.tif", smooth_image(h, w, 3, seed), UTM33, transform)
            if split != "test":
                values = [0, 1, 2, 3, 4, 5, 7, 8] if split == "val" else list(range(9))
                label = blocky_classes(h, w, values, seed + 50).astype("uint8")
                write_tif(base / region / "labels" / f"{name}.tif", label, UTM33, transform)
    write_text(base / "xbd_files.csv", "xbd_name,oem_name\npalu-tsunami_00000001_pre_disaster.png,palu_1.tif\n")


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
