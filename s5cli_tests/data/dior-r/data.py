"""Fake DIOR-R in the layout of the official download (docs/datasets.md, DIOR-R).

Real: 800 x 800 JPEGs in JPEGImages-trainval/ and JPEGImages-test/, oriented-box VOC XMLs in
"Annotations/Oriented Bounding Boxes/" (a folder name with spaces), ImageSets/Main/{train,val,test}.txt
(no trainval.txt). Fake: 32 x 32 JPEGs, train 00001-00002, val 00003-00004, test 11726-11727; mixed-case
names (Expressway-Service-area, Expressway-toll-station); 00002 has no objects; 00003 has a degenerate
box (two equal consecutive corners) that loaders drop. Regenerate: python "s5cli_tests/data/dior-r/data.py"
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fakes import regenerate, smooth_image, write_jpg, write_text

SIZE = 32  # real images are 800 x 800
SPLITS = {"train": ["00001", "00002"], "val": ["00003", "00004"], "test": ["11726", "11727"]}
# id -> objects (name, LT, RT, RB, LB corners, difficult, truncated)
OBJECTS = {
    "00001": [
        ("golffield", (4, 5, 20, 5, 20, 15, 4, 15), 0, 0),
        ("Expressway-Service-area", (16, 18, 28, 22, 25, 31, 13, 27), 0, 0),
        ("vehicle", (2, 24, 6, 24, 6, 26, 2, 26), 1, 0),
    ],
    "00002": [],
    "00003": [
        ("Expressway-toll-station", (10, 10, 22, 10, 22, 20, 10, 20), 0, 1),
        ("airplane", (3, 3, 3, 3, 8, 8, 3, 8), 0, 0),  # degenerate: LT == RT
        ("ship", (20, 24, 30, 26, 29, 30, 19, 28), 0, 0),
    ],
    "00004": [("windmill", (5, 2, 9, 2, 9, 12, 5, 12), 0, 0), ("storagetank", (14, 14, 24, 14, 24, 24, 14, 24), 0, 0)],
    "11726": [("airplane", (6, 6, 26, 8, 25, 18, 5, 16), 0, 0)],
    "11727": [("ship", (2, 2, 12, 2, 12, 6, 2, 6), 0, 0), ("dam", (15, 10, 31, 10, 31, 30, 15, 30), 0, 0)],
}
_TAGS = ("x_left_top", "y_left_top", "x_right_top", "y_right_top",
         "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom")  # fmt: skip


def _xml(image_id: str, folder: str) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = f"/{folder}.zip/{folder}/{folder}"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    ET.SubElement(root, "path").text = f"D:/DIOR/{folder}/{image_id}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", SIZE), ("height", SIZE), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for name, corners, difficult, truncated in OBJECTS[image_id]:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "type").text = "robndbox"
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(truncated)
        ET.SubElement(obj, "difficult").text = str(difficult)
        box = ET.SubElement(obj, "robndbox")
        for tag, value in zip(_TAGS, corners):
            ET.SubElement(box, tag).text = str(value)
        ET.SubElement(obj, "angle").text = "0"
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    for split, ids in SPLITS.items():
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        write_text(root / "ImageSets" / "Main" / f"{split}.txt", "\n".join(ids) + "\n")
        for image_id in ids:
            write_jpg(root / folder / f"{image_id}.jpg", smooth_image(SIZE, SIZE, 3, int(image_id)))
            write_text(root / "Annotations" / "Oriented Bounding Boxes" / f"{image_id}.xml", _xml(image_id, folder))


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)
