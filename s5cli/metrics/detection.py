"""Rotated-box mAP as the reference evaluators compute it, and DOTA's Task1 submission files.

Per class, detections are matched greedily, best score first, to the ground truth of their image by
polygon IoU: the best-overlapping GT (first of equals) above the threshold is a true positive if
unmatched, else a false positive; a best match that is ignored (``difficult`` where the rule ignores
it) counts as neither and ignored GTs are left out of the recall denominator. AP is VOC07 11-point by
default ("area" gives the area under the interpolated curve); classes without ground truth are left
out of the mean. The rules of the two references (``evaluator_for`` picks the one a benchmark's
published numbers come from):
- DOTA devkit ``dota_evaluation_task1.py::voc_eval``: a match needs IoU > 0.5, difficult objects are
  ignored, detections are matched in one score order over all images;
- BboxToolkit / OBBDetection ``eval_arb_map`` (S5's DIOR-R scoring): IoU >= 0.5, matched image by
  image; DIOR-R counts every object, because BboxToolkit's DIOR reader never reads ``<difficult>``.
Score order is numpy's default argsort of the negated scores, as both references sort, so tied scores
resolve as they do there. IoU is exact polygon clipping in float64 (s5cli.geometry.iou), so
non-rectangular ground-truth quadrilaterals are scored exactly and coincident or edge-sharing
polygons are not lost to GEOS overlay errors; corners listed in a crossing order are read as their
convex hull.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from s5cli.datasets.polygons import untangle
from s5cli.errors import InputError
from s5cli.geo.files import atomic_output
from s5cli.geometry.boxes import rboxes_to_polygons
from s5cli.geometry.iou import quad_iou

Metric = Literal["voc07", "area"]
MatchOrder = Literal["image", "global"]
# VOC07 recall thresholds, built as both references build them (i * 0.1, so 0.30000000000000004).
_VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)


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


def polygon_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, M) of polygons a (N, 8) and b (M, 8); only pairs whose bounds overlap are clipped."""
    ta = torch.from_numpy(untangle(np.asarray(a, np.float64)))
    tb = torch.from_numpy(untangle(np.asarray(b, np.float64)))
    return quad_iou(ta, tb).numpy()


def average_precision(recall: np.ndarray, precision: np.ndarray, metric: Metric = "voc07") -> float:
    """AP from a precision/recall curve in score order: VOC07 11-point, or the area under its monotone envelope."""
    if metric == "voc07":
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in _VOC07_RECALLS]
        return float(sum(points) / 11)
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
    ignore_difficult: bool = True  # False: difficult objects are ordinary ground truth (DIOR-R in S5)
    match_order: MatchOrder = "image"  # "global": one score order over all images (DOTA devkit)
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

    def _matches(self, iou: np.ndarray, ignored: np.ndarray, order: np.ndarray) -> np.ndarray:
        """1 TP, -1 FP, 0 neither, per detection (rows of iou, input order), matched in `order`."""
        result = np.full(iou.shape[0], -1, np.int8)
        if iou.shape[1] == 0:
            return result
        best, best_iou = iou.argmax(1), iou.max(1)
        passed = best_iou > self.iou_threshold if self.strict else best_iou >= self.iou_threshold
        matched = np.zeros(iou.shape[1], bool)
        for k in order:
            if not passed[k]:
                continue
            g = best[k]
            if ignored[g]:
                result[k] = 0
            elif not matched[g]:
                result[k], matched[g] = 1, True
        return result

    def _class_curve(self, c: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        per_image, npos = [], 0
        for img in self.images:
            g = img.gt_labels == c
            gt = img.gt[g]
            ignored = img.difficult[g] if self.ignore_difficult else np.zeros(int(g.sum()), bool)
            if self.match_order == "image":  # BboxToolkit stacks the ignored GTs after the others
                stack = np.argsort(ignored, kind="stable")
                gt, ignored = gt[stack], ignored[stack]
            npos += int((~ignored).sum())
            d = img.det_labels == c
            per_image.append((img.det[d], img.scores[d], gt, ignored))
        scores = np.concatenate([p[1] for p in per_image]) if per_image else np.zeros(0)
        ranking = np.argsort(-scores)  # numpy's default sort, as both references
        rank_of = np.empty(len(ranking), np.int64)
        rank_of[ranking] = np.arange(len(ranking))
        results, start = [], 0
        for det, sc, gt, ignored in per_image:
            if len(det):
                if self.match_order == "image":
                    order = np.argsort(-sc)
                else:  # the global score order, restricted to this image
                    order = np.argsort(rank_of[start : start + len(det)], kind="stable")
                results.append(self._matches(polygon_iou(det, gt), ignored, order))
            start += len(det)
        if not results:
            return np.zeros(0), np.zeros(0), npos, 0
        result = np.concatenate(results)[ranking]
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


# The evaluator each benchmark's published numbers come from.
_DOTA_DEVKIT: dict[str, Any] = {"strict": True, "ignore_difficult": True, "match_order": "global"}
_BBOXTOOLKIT: dict[str, Any] = {"strict": False, "ignore_difficult": True, "match_order": "image"}
_RULES: dict[str, dict[str, Any]] = {"dota_devkit": _DOTA_DEVKIT, "bboxtoolkit": _BBOXTOOLKIT}


def evaluator_for(dataset: Any) -> DetectionEvaluator:
    """An evaluator with a dataset's classes and its reference's matching rule (a name or a DatasetInfo).

    The record's protocol names the rule: DOTA the DOTA devkit's (the evaluation server's), DIOR-R S5's
    BboxToolkit scoring with difficult objects counted, other datasets BboxToolkit's.
    """
    from s5cli.datasets.registry import dataset_info

    info = dataset_info(dataset) if isinstance(dataset, str) else dataset
    if info.task != "detection":
        raise InputError(f"{info.name} is a {info.task} dataset; detection metrics do not apply")
    proto = info.protocol
    rule = dict(_RULES[proto.map_rule if proto is not None else "bboxtoolkit"])
    if proto is not None and proto.count_difficult:
        rule["ignore_difficult"] = False
    return DetectionEvaluator(list(info.classes), **rule)


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
