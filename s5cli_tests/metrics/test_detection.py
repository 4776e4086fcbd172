import math

import numpy as np
import pytest
import torch

from s5cli.errors import InputError, OutputExistsError
from s5cli.metrics.detection import DetectionEvaluator, average_precision, polygon_iou, write_dota_task1


def box(cx, cy, w, h, a=0.0):
    return [cx, cy, w, h, a]


def pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes).reshape(-1, 5), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def hand_made_evaluator(metric="voc07"):
    ev = DetectionEvaluator(["car", "ship", "plane"], metric=metric)
    # Image A: car GTs g1, g2; ship GTs: one difficult, one normal (given as polygons).
    ev.add(
        pred(
            [
                box(10, 10, 8, 4),
                box(60, 60, 8, 4),
                box(10.2, 10, 8, 4),
                box(100, 30, 6, 6),
                box(150, 30, 6, 6),
                box(80, 80, 5, 5),
            ],
            [0.9, 0.8, 0.6, 0.95, 0.5, 0.4],
            [0, 0, 0, 1, 1, 2],
        ),
        {
            "polygons": torch.tensor(
                [
                    [6, 8, 14, 8, 14, 12, 6, 12],
                    [36, 8, 44, 8, 44, 12, 36, 12],
                    [97, 27, 103, 27, 103, 33, 97, 33],
                    [147, 27, 153, 27, 153, 33, 147, 33],
                ],
                dtype=torch.float32,
            ),
            "labels": torch.tensor([0, 0, 1, 1]),
            "difficult": torch.tensor([False, False, True, False]),
        },
    )
    # Image B: car GT g3 found by the third-best car detection.
    ev.add(
        pred([box(20, 20, 10, 5, 0.3)], [0.7], [0]),
        {"boxes": torch.tensor([box(20, 20, 10, 5, 0.3)]), "labels": torch.tensor([0])},
    )
    return ev


def test_voc07_ap_of_a_hand_made_case():
    # car, by score: TP (g1), FP, TP (g3), FP (duplicate of g1); 3 GTs.
    # recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2.
    # 11-point: r = 0, .1, .2, .3 -> 1; r = .4, .5, .6 -> 2/3; r = .7 .. 1 -> 0: AP = (4 + 3 * 2/3) / 11 = 6/11.
    # ship: the best detection hits the difficult GT (neither TP nor FP), the next finds the other: AP 1.
    # plane: no ground truth, left out of the mean.
    result = hand_made_evaluator().compute()
    assert result.ap["car"] == pytest.approx(6 / 11, abs=1e-12)
    assert result.ap["ship"] == 1.0
    assert math.isnan(result.ap["plane"])
    assert result.map == pytest.approx((6 / 11 + 1) / 2, abs=1e-12)
    assert result.num_gt == {"car": 3, "ship": 1, "plane": 0}
    assert result.num_det == {"car": 4, "ship": 2, "plane": 1}


def test_area_ap_of_the_same_case():
    # Monotone envelope: precision 1 up to recall 1/3, 2/3 up to 2/3, then nothing: 1/3 + 2/9 = 5/9.
    assert hand_made_evaluator("area").compute().ap["car"] == pytest.approx(5 / 9, abs=1e-12)


def test_iou_threshold_comparison():
    gt = {"boxes": torch.tensor([box(5, 5, 10, 10)]), "labels": torch.tensor([0])}
    half = pred([box(5, 5, 20, 10)], [0.9], [0])  # contains the GT: IoU 100 / 200 = 0.5 exactly
    lenient = DetectionEvaluator(["a"])
    lenient.add(half, gt)
    strict = DetectionEvaluator(["a"], strict=True)
    strict.add(half, gt)
    assert lenient.compute().map == 1.0 and strict.compute().map == 0.0
    below = DetectionEvaluator(["a"])
    below.add(pred([box(5, 5, 20.5, 10)], [0.9], [0]), gt)  # IoU 0.4878
    assert below.compute().map == 0.0


def test_duplicate_detection_keeps_voc07_ap_at_one():
    ev = DetectionEvaluator(["a"])
    ev.add(
        pred([box(5, 5, 10, 10), box(5.1, 5, 10, 10)], [0.9, 0.8], [0, 0]),
        {"boxes": torch.tensor([box(5, 5, 10, 10)]), "labels": torch.tensor([0])},
    )
    result = ev.compute()
    assert result.map == 1.0 and result.num_det["a"] == 2


def test_polygon_iou_matches_rotated_boxes_and_handles_bad_order():
    square = np.array([[0, 0, 10, 0, 10, 10, 0, 10]], float)
    turned = np.array(
        [[5, 5 - 5 * math.sqrt(2), 5 + 5 * math.sqrt(2), 5, 5, 5 + 5 * math.sqrt(2), 5 - 5 * math.sqrt(2), 5]]
    )
    assert polygon_iou(square, turned)[0, 0] == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    bowtie = np.array([[0, 0, 10, 10, 10, 0, 0, 10]], float)  # corners listed across: scored as its hull
    assert polygon_iou(square, bowtie)[0, 0] == pytest.approx(1.0)
    assert polygon_iou(square, np.zeros((0, 8))).shape == (1, 0)


def test_average_precision_edge_cases():
    assert average_precision(np.array([]), np.array([])) == 0.0
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0]), "area") == 1.0


def test_reset_and_accumulation_order():
    ev = hand_made_evaluator()
    first = ev.compute()
    ev.reset()
    assert math.isnan(ev.compute().map)
    assert first.as_dict()["ap"]["ship"] == 1.0


def test_write_dota_task1(tmp_path):
    out = tmp_path / "task1"
    predictions = {
        "P0001": pred([box(10, 20, 8, 4)], [0.75], [1]),
        "P0002": {
            "boxes": torch.tensor([[0.0, 0.0, 4.0, 0.0, 4.0, 2.0, 0.0, 2.0]]),
            "scores": torch.tensor([0.5]),
            "labels": torch.tensor([1]),
        },
    }
    names = write_dota_task1(out, predictions, ["plane", "ship"])
    assert names == ["Task1_plane.txt", "Task1_ship.txt"]
    assert (out / "Task1_plane.txt").read_text() == ""
    assert (out / "Task1_ship.txt").read_text().splitlines() == [
        "P0001 0.750000 6.00 18.00 14.00 18.00 14.00 22.00 6.00 22.00",
        "P0002 0.500000 0.00 0.00 4.00 0.00 4.00 2.00 0.00 2.00",
    ]
    with pytest.raises(OutputExistsError):
        write_dota_task1(out, predictions, ["plane", "ship"])
    write_dota_task1(out, {}, ["plane", "ship"], overwrite=True)
    assert (out / "Task1_ship.txt").read_text() == ""


def test_accepts_low_precision_and_plain_lists():
    ev = DetectionEvaluator(["a"])
    ev.add(
        {
            "boxes": torch.tensor([box(5, 5, 10, 10)], dtype=torch.bfloat16),
            "scores": torch.tensor([0.9], dtype=torch.bfloat16),
            "labels": [0],
        },
        {"boxes": [box(5, 5, 10, 10)], "labels": [0], "difficult": [False]},
    )
    assert ev.compute().map == 1.0


# A DOTA-style quad and its minimum-area rectangle for which GEOS (the one shipped beside shapely here)
# returns a MultiPoint as their intersection, so shapely's IoU is 0 (libgeos/geos#1354).
GEOS_QUAD = [26.0, 388.0, 81.0, 399.0, 77.0, 417.0, 20.0, 406.0]


def _shoelace(poly):
    x, y = np.asarray(poly[0::2], float), np.asarray(poly[1::2], float)
    return abs(0.5 * (x * np.roll(y, -1) - np.roll(x, -1) * y).sum())


def _dota_like_quads(n, seed):
    """Near-rectangular quads with integer corners (DOTA-v1 style): some corners moved, some dents."""
    rng = np.random.default_rng(seed)
    centre, size = rng.uniform(0, 600, (n, 2)), rng.uniform(6, 60, (n, 2))
    angle = rng.uniform(-np.pi / 2, np.pi / 2, n)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])[None] * size[:, None]
    corners = corners + rng.uniform(-0.1, 0.1, (n, 4, 2)) * size[:, None] * (rng.uniform(size=(n, 4, 1)) < 0.5)
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], -2)
    return np.round(np.einsum("nij,nkj->nki", rot, corners) + centre[:, None]).reshape(n, 8)


def test_gt_against_itself_and_its_minimum_rectangles_scores_one():
    from s5cli.geometry.boxes import polygons_to_rboxes

    quads = np.concatenate([[GEOS_QUAD], _dota_like_quads(300, 0)])
    labels = np.arange(len(quads)) % 3
    rects = polygons_to_rboxes(torch.tensor(quads)).float()  # (K, 5): the detections a perfect detector gives
    gt = {"polygons": torch.tensor(quads, dtype=torch.float32), "labels": torch.tensor(labels)}
    for boxes in (torch.tensor(quads, dtype=torch.float32), rects):
        ev = DetectionEvaluator(["a", "b", "c"])
        scores = torch.linspace(1.0, 0.1, len(quads))
        ev.add({"boxes": boxes, "scores": scores, "labels": torch.tensor(labels)}, gt)
        result = ev.compute()
        assert result.map == 1.0 and all(ap == 1.0 for ap in result.ap.values())


def test_polygon_iou_of_coincident_edge_sharing_and_contained_polygons():
    from s5cli.geometry.boxes import polygons_to_rboxes, rboxes_to_polygons

    quad = np.array([GEOS_QUAD])
    rect = rboxes_to_polygons(polygons_to_rboxes(torch.tensor(quad))).numpy()
    # The quad lies in its minimum rectangle (sharing two edges with it): IoU = area ratio, not 0.
    assert polygon_iou(quad, rect)[0, 0] == pytest.approx(_shoelace(GEOS_QUAD) / _shoelace(rect[0]), abs=1e-12)
    assert polygon_iou(quad, quad)[0, 0] == pytest.approx(1.0, abs=1e-12)  # coincident
    square = np.array([[0, 0, 10, 0, 10, 10, 0, 10]], float)
    right = square + np.array([10, 0] * 4)  # shares the edge x = 10
    corner = square + np.array([10, 10] * 4)  # shares the corner (10, 10)
    half = square + np.array([5, 0] * 4)  # shares parts of two edges: 50 / 150
    got = polygon_iou(square, np.concatenate([square, right, corner, half]))[0]
    assert got.tolist() == pytest.approx([1.0, 0.0, 0.0, 1 / 3], abs=1e-12)
    dart = np.array([[0, 0, 10, 5, 0, 10, 3, 5]], float)  # concave: area 35, inside the square
    assert polygon_iou(square, dart)[0, 0] == pytest.approx(35 / 100, abs=1e-12)


def test_each_benchmark_scores_with_its_reference_rule():
    from s5cli.metrics.detection import evaluator_for

    gt = {"boxes": torch.tensor([box(5, 5, 10, 10)]), "labels": torch.tensor([0])}
    half = pred([box(5, 5, 20, 10)], [0.9], [0])  # IoU exactly 0.5
    dota, dior = evaluator_for("dota-v2.0"), evaluator_for("dior-r")
    assert (dota.strict, dota.ignore_difficult, dota.match_order) == (True, True, "global")  # DOTA devkit
    assert (dior.strict, dior.ignore_difficult, dior.match_order) == (False, False, "image")  # BboxToolkit
    dota.add(half, gt)
    dior.add(half, gt)
    assert dota.compute().map == 0.0  # dota_evaluation_task1.py: ovmax > 0.5
    assert dior.compute().map == 1.0  # eval_arb_map: ious_max >= 0.5
    # DIOR-R counts difficult objects: a missed difficult GT costs recall, a found one is a true positive.
    two = {"boxes": torch.tensor([box(5, 5, 10, 10), box(50, 50, 10, 10)]), "labels": torch.tensor([0, 0])}
    two["difficult"] = torch.tensor([False, True])
    dior, devkit = evaluator_for("dior-r"), evaluator_for("dota-v1.0")
    dior.add(pred([box(5, 5, 10, 10)], [0.9], [0]), two)
    devkit.add(pred([box(5, 5, 10, 10)], [0.9], [0]), two)
    assert dior.compute().num_gt["airplane"] == 2 and dior.compute().map == pytest.approx(6 / 11)
    assert devkit.compute().num_gt["plane"] == 1 and devkit.compute().map == 1.0
    with pytest.raises(InputError, match="segmentation dataset"):
        evaluator_for("potsdam")


def _iou(det, gt):
    return polygon_iou(np.asarray(det).reshape(-1, 8), np.asarray(gt).reshape(-1, 8))


def devkit_map(images, classes):
    """dota_evaluation_task1.py voc_eval, per class: one score order over all detections, IoU > 0.5."""
    aps = []
    for c in classes:
        dets = [(i, s, b) for i, im in enumerate(images) for b, s, lab in zip(*im["det"]) if lab == c]
        gts = {i: [(b, d) for b, lab, d in zip(*im["gt"]) if lab == c] for i, im in enumerate(images)}
        npos = sum(not d for g in gts.values() for _, d in g)
        if not npos:
            continue
        found = {i: [False] * len(g) for i, g in gts.items()}
        order = np.argsort(-np.array([s for _, s, _ in dets]))
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for rank, k in enumerate(order):
            i, _, b = dets[k]
            ious = _iou(b, [g for g, _ in gts[i]])[0] if gts[i] else np.zeros(0)
            if len(ious) and ious.max() > 0.5:
                j = int(ious.argmax())
                if not gts[i][j][1]:
                    if not found[i][j]:
                        tp[rank], found[i][j] = 1, True
                    else:
                        fp[rank] = 1
            else:
                fp[rank] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(sum((prec[rec >= t].max() if (rec >= t).any() else 0) / 11 for t in np.arange(0.0, 1.1, 0.1)))
    return float(np.mean(aps))


def bboxtoolkit_map(images, classes):
    """OBBDetection eval_arb_map / tpfp_default: image by image, IoU >= 0.5, ignored GTs stacked last."""
    aps = []
    for c in classes:
        all_tp, all_fp, all_scores, npos = [], [], [], 0
        for im in images:
            boxes, scores, labels = im["det"]
            sel = [k for k, lab in enumerate(labels) if lab == c]
            normal = [b for b, lab, d in zip(*im["gt"]) if lab == c and not d]
            ignored = [b for b, lab, d in zip(*im["gt"]) if lab == c and d]
            npos += len(normal)
            tp, fp = np.zeros(len(sel)), np.zeros(len(sel))
            stacked = normal + ignored
            if sel and stacked:
                ious = _iou([boxes[k] for k in sel], stacked)
                covered = np.zeros(len(stacked), bool)
                for i in np.argsort(-np.array([scores[k] for k in sel])):
                    if ious[i].max() >= 0.5:
                        j = ious[i].argmax()
                        if j < len(normal):
                            if not covered[j]:
                                covered[j], tp[i] = True, 1
                            else:
                                fp[i] = 1
                    else:
                        fp[i] = 1
            elif sel:
                fp[:] = 1
            all_tp.append(tp), all_fp.append(fp), all_scores.extend(scores[k] for k in sel)
        if not npos:
            continue
        order = np.argsort(-np.array(all_scores))
        tp, fp = np.cumsum(np.concatenate(all_tp)[order]), np.cumsum(np.concatenate(all_fp)[order])
        rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float32).eps)
        aps.append(sum(prec[rec >= t].max() if (rec >= t).any() else 0 for t in np.arange(0, 1 + 1e-3, 0.1)) / 11)
    return float(np.mean(aps))


def test_matches_both_reference_procedures_with_tied_scores():
    rng = np.random.default_rng(5)
    images = []
    for seed in range(6):
        gt = _dota_like_quads(12, 100 + seed)
        gt_labels, difficult = rng.integers(0, 3, 12), rng.uniform(size=12) < 0.25
        det = np.concatenate([gt[rng.permutation(12)[:9]] + rng.normal(0, 2, (9, 8)), _dota_like_quads(6, 200 + seed)])
        scores = np.round(rng.uniform(0.3, 1.0, len(det)), 1)  # many ties
        det_labels = np.concatenate([gt_labels[rng.permutation(12)[:9]], rng.integers(0, 3, 6)])
        images.append({"det": (det, scores, det_labels), "gt": (gt, gt_labels, difficult)})
    # Axis-aligned boxes at IoU exactly 0.5 (a 10 x 20 box holding a 10 x 10 GT), and a crowd of equal scores
    # on the same GTs, where the two references' match orders differ.
    square = np.array([0, 0, 10, 0, 10, 10, 0, 10], float)
    gt = np.stack([square + 30 * k for k in range(4)])
    wide = np.stack([np.array([0, 0, 20, 0, 20, 10, 0, 10], float) + 30 * k for k in range(4)])
    crowd = np.concatenate([gt[k % 4] + rng.normal(0, 1.5, 8) for k in range(40)]).reshape(40, 8)
    det = np.concatenate([wide, crowd])
    scores = np.concatenate([np.full(4, 0.9), np.full(40, 0.5)])
    images.append({"det": (det, scores, np.zeros(44, int)), "gt": (gt, np.zeros(4, int), np.zeros(4, bool))})
    for rule, reference in ((_DEVKIT, devkit_map), (_BBOX, bboxtoolkit_map)):
        ev = DetectionEvaluator(["a", "b", "c"], **rule)
        for im in images:
            det, scores, det_labels = im["det"]
            gt, gt_labels, difficult = im["gt"]
            ev.add(
                {"boxes": torch.tensor(det), "scores": torch.tensor(scores), "labels": torch.tensor(det_labels)},
                {"polygons": torch.tensor(gt), "labels": torch.tensor(gt_labels), "difficult": torch.tensor(difficult)},
            )
        assert ev.compute().map == pytest.approx(reference(images, range(3)), abs=1e-12), rule


_DEVKIT = {"strict": True, "ignore_difficult": True, "match_order": "global"}
_BBOX = {"strict": False, "ignore_difficult": True, "match_order": "image"}
