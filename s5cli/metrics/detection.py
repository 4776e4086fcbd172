"""Rotated-box mAP (DIOR-R / DOTA protocol) and DOTA's Task1 submission files.

Follows BboxToolkit's `eval_map` as S5 uses it for DIOR-R: per class, detections
sorted by score are matched greedily to the ground truth of their image by polygon IoU; a match with
IoU >= 0.5 to an unmatched GT is a true positive, to an already matched GT a false positive; a best
match that is `difficult` counts as neither and difficult GTs are left out of the recall denominator;
AP is VOC07 11-point by default ("area" gives the area under the interpolated curve) and classes
without ground truth are left out of the mean. `strict=True` uses IoU > threshold as the DOTA devkit.
IoU is computed on polygons with shapely, so non-rectangular GT quadrilaterals are scored exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import shapely
import torch

from s5cli.detection.boxes import rboxes_to_polygons
from s5cli.errors import InputError
from s5cli.geo.files import atomic_output

Metric = Literal["voc07", "area"]


def _flat(values: object, dtype: type) -> np.ndarray:
    """A 1-D numpy copy of a tensor (any device or dtype, bfloat16 included), array or list."""
    t = torch.as_tensor(values).detach().cpu().reshape(-1)
    return (t.double() if t.is_floating_point() else t).numpy().astype(dtype)


def _polygons(boxes: object) -> np.ndarray:
    """(K, 8) float64 polygons from rotated boxes (K, 5) or polygons (K, 8), tensors or arrays."""
    t = torch.as_tensor(boxes).detach().cpu().to(torch.float64)
    if t.numel() == 0:
        return np.zeros((0, 8))
    if t.ndim != 2 or t.shape[1] not in (5, 8):
        raise InputError(f"boxes must be (K, 5) rotated boxes or (K, 8) polygons, got shape {tuple(t.shape)}")
    return (rboxes_to_polygons(t) if t.shape[1] == 5 else t).numpy()


def _shapes(polys: np.ndarray) -> np.ndarray:
    geoms = shapely.polygons(polys.reshape(-1, 4, 2))
    bad = ~shapely.is_valid(geoms)
    if bad.any():  # a quad listed in a self-crossing order: score its convex hull
        geoms[bad] = shapely.convex_hull(geoms[bad])
    return geoms


def polygon_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, M) of polygons a (N, 8) and b (M, 8); only pairs whose bounds overlap are clipped."""
    out = np.zeros((len(a), len(b)))
    if out.size == 0:
        return out
    lo_a, hi_a = a.reshape(-1, 4, 2).min(1), a.reshape(-1, 4, 2).max(1)
    lo_b, hi_b = b.reshape(-1, 4, 2).min(1), b.reshape(-1, 4, 2).max(1)
    overlap = (np.minimum(hi_a[:, None], hi_b[None]) > np.maximum(lo_a[:, None], lo_b[None])).all(-1)
    i, j = np.nonzero(overlap)
    if len(i):
        ga, gb = _shapes(a), _shapes(b)
        inter = shapely.area(shapely.intersection(ga[i], gb[j]))
        union = shapely.area(ga[i]) + shapely.area(gb[j]) - inter
        out[i, j] = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return out


def average_precision(recall: np.ndarray, precision: np.ndarray, metric: Metric = "voc07") -> float:
    """AP from a precision/recall curve in score order: VOC07 11-point, or the area under its monotone envelope."""
    if metric == "voc07":
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]
        return float(np.mean(points))
    if metric != "area":
        raise InputError(f"unknown AP metric '{metric}'; choose voc07 or area")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class DetectionResult:
    """mAP over the classes that have ground truth, with per-class AP and counts."""

    map: float
    ap: dict[str, float]
    num_gt: dict[str, int]
    num_det: dict[str, int]
    metric: str = "voc07"
    iou_threshold: float = 0.5

    def as_dict(self) -> dict:
        """Plain dict (NaN AP for classes without ground truth)."""
        return asdict(self)


@dataclass
class _Image:
    det: np.ndarray  # (D, 8) polygons
    scores: np.ndarray
    det_labels: np.ndarray
    gt: np.ndarray  # (G, 8)
    gt_labels: np.ndarray
    difficult: np.ndarray


@dataclass
class DetectionEvaluator:
    """Accumulates per-image predictions and ground truth; `compute()` gives mAP and per-class AP."""

    class_names: list[str]
    iou_threshold: float = 0.5
    metric: Metric = "voc07"
    strict: bool = False  # True: a match needs IoU > threshold (DOTA devkit); False: >= (BboxToolkit)
    images: list[_Image] = field(default_factory=list)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.images.clear()

    def add(self, prediction: Mapping[str, object], target: Mapping[str, object]) -> None:
        """One image: prediction {"boxes", "scores", "labels"}, target {"polygons" or "boxes", "labels", "difficult"}.

        Boxes are rotated boxes (K, 5) or polygons (K, 8); "difficult" is optional (all False).
        """
        gt_boxes = target["polygons"] if target.get("polygons") is not None else target["boxes"]
        gt = _polygons(gt_boxes)
        gt_labels = _flat(target["labels"], np.int64)
        diff = target.get("difficult")
        difficult = np.zeros(len(gt), bool) if diff is None else _flat(diff, bool)
        det = _polygons(prediction["boxes"])
        scores = _flat(prediction["scores"], np.float64)
        det_labels = _flat(prediction["labels"], np.int64)
        if not len(gt) == len(gt_labels) == len(difficult) or not len(det) == len(scores) == len(det_labels):
            raise InputError("boxes, scores, labels and difficult flags must have the same length")
        self.images.append(_Image(det, scores, det_labels, gt, gt_labels, difficult))

    def _class_curve(self, c: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        hits, scores, npos = [], [], 0
        for img in self.images:
            g = img.gt_labels == c
            gt, diff = img.gt[g], img.difficult[g]
            npos += int((~diff).sum())
            d = img.det_labels == c
            if not d.any():
                continue
            order = np.argsort(-img.scores[d], kind="stable")
            det, sc = img.det[d][order], img.scores[d][order]
            iou = polygon_iou(det, gt)
            matched = np.zeros(len(gt), bool)
            result = np.zeros(len(det), np.int8)  # 1 TP, -1 FP, 0 ignored
            for k in range(len(det)):
                best = int(iou[k].argmax()) if len(gt) else -1
                ok = best >= 0 and (
                    iou[k, best] > self.iou_threshold if self.strict else iou[k, best] >= self.iou_threshold
                )
                if not ok:
                    result[k] = -1
                elif diff[best]:
                    result[k] = 0
                elif not matched[best]:
                    result[k], matched[best] = 1, True
                else:
                    result[k] = -1
            hits.append(result)
            scores.append(sc)
        if not hits:
            return np.zeros(0), np.zeros(0), npos, 0
        result, sc = np.concatenate(hits), np.concatenate(scores)
        result = result[np.argsort(-sc, kind="stable")]
        tp, fp = np.cumsum(result == 1), np.cumsum(result == -1)
        recall = tp / max(npos, 1)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return recall, precision, npos, len(result)

    def compute(self) -> DetectionResult:
        """MAP and per-class AP over everything added so far."""
        ap, num_gt, num_det = {}, {}, {}
        for c, name in enumerate(self.class_names):
            recall, precision, npos, ndet = self._class_curve(c)
            num_gt[name], num_det[name] = npos, ndet
            ap[name] = average_precision(recall, precision, self.metric) if npos else float("nan")
        valid = [v for v in ap.values() if not np.isnan(v)]
        mean = float(np.mean(valid)) if valid else float("nan")
        return DetectionResult(mean, ap, num_gt, num_det, self.metric, self.iou_threshold)


def write_dota_task1(
    directory: str | os.PathLike[str],
    predictions_by_image: Mapping[str, Mapping[str, object]],
    class_names: list[str],
    overwrite: bool = False,
) -> list[str]:
    """Write DOTA Task1 files `Task1_<class>.txt` ("imgname score x1 y1 ... x4 y4" per line); returns the file names."""
    lines: dict[str, list[str]] = {name: [] for name in class_names}
    for image_id, pred in predictions_by_image.items():
        polys = _polygons(pred["boxes"])
        scores = _flat(pred["scores"], np.float64)
        labels = _flat(pred["labels"], np.int64)
        for poly, score, label in zip(polys, scores, labels):
            if not 0 <= label < len(class_names):
                raise InputError(f"label {label} of image {image_id} is outside the {len(class_names)} classes")
            coords = " ".join(f"{v:.2f}" for v in poly)
            lines[class_names[label]].append(f"{image_id} {score:.6f} {coords}")
    names = [f"Task1_{name}.txt" for name in class_names]
    with atomic_output(directory, overwrite=overwrite, directory=True) as tmp:
        for name, file_name in zip(class_names, names):
            (tmp / file_name).write_text("".join(line + "\n" for line in lines[name]), encoding="utf-8")
    return names
