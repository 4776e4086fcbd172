"""Prediction files in the formats the benchmark servers take.

- Segmentation: one single-band index PNG per image, named like the image (`<stem>.png`), values = class
  indexes. For LoveDA this is the CodaLab submission: one PNG per Test image, same file name, values 0..6
  (docs/datasets.md, LoveDA; the official `predict.py` saves the argmax as uint8 under the image name; mmseg 1.x
  writes pred + 1 and needs fixing, we write the class index itself). Windows cut from a larger tile
  (ISPRS) get `<stem>_<col>_<row>.png`.
- Detection: DOTA Task1 files `Task1_<class>.txt` with `imgname score x1 y1 ... x4 y4` lines, one set of
  files per dataset (docs/datasets.md, DOTA), written by s5cli.metrics.detection.write_dota_task1. For the
  server's split the patches were merged at IoU 0.5 (s5cli.detection.patches.SUBMISSION_MERGE_IOU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from s5cli.datasets.base import image_size


def prediction_name(sample: dict[str, Any]) -> str:
    """The file stem of a sample's prediction: the image's stem, plus the window offset for tile windows."""
    stem = Path(str(sample.get("path", "image"))).stem
    window = sample.get("window")
    if window is None or sample.get("path") is None:
        return stem
    col, row, w, h = (int(v) for v in window)
    if (col, row) == (0, 0) and (w, h) == image_size(sample["path"]):
        return stem  # the whole image
    return f"{stem}_{col}_{row}"


def write_index_png(path: Path, classes: torch.Tensor) -> Path:
    """Write a class map (H, W) as a single-band 8-bit PNG (values must fit 0..255)."""
    from PIL import Image

    arr = classes.detach().cpu().numpy()
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("class indexes must be in 0..255 for an 8-bit PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)
    return path


class SubmissionWriter:
    """Collects one dataset's predictions under `folder` (a temporary folder the caller renames into place)."""

    def __init__(self, folder: Path, dataset: str, task: str, classes: list[str]) -> None:
        self.folder = folder / dataset
        self.task = task
        self.classes = classes
        self.detections: dict[str, dict[str, torch.Tensor]] = {}
        self.count = 0

    def add(self, sample: dict[str, Any], prediction: Any) -> None:
        """Record one sample's prediction: a class map (H, W) or a detection dict in image pixels."""
        name = prediction_name(sample)
        if self.task == "segmentation":
            write_index_png(self.folder / f"{name}.png", prediction)
        else:
            self.detections[name] = {k: v.detach().cpu() for k, v in prediction.items()}
        self.count += 1

    def close(self) -> list[Path]:
        """Write what is still in memory (Task1 files); returns the folder's files."""
        if self.task == "detection":
            from s5cli.metrics.detection import write_dota_task1

            write_dota_task1(self.folder, self.detections, self.classes)
        return sorted(self.folder.iterdir()) if self.folder.is_dir() else []
