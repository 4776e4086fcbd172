import math

import numpy as np
import pytest
import torch

from s5cli.errors import OutputExistsError
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
