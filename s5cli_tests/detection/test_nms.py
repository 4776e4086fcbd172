import math

import torch

from s5cli.detection.nms import batched_nms, keep_from_iou, nms, rotated_nms
from s5cli.geometry.boxes import hbox_iou
from s5cli.geometry.iou import rotated_iou


def greedy_reference(iou_matrix, scores, threshold):
    """Textbook greedy NMS, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(iou_matrix[i][j] <= threshold for j in kept):
            kept.append(i)
    return kept


def test_rotated_nms_keeps_expected_set():
    boxes = torch.tensor(
        [
            [50.0, 50.0, 40.0, 10.0, 0.0],  # 0: best
            [51.0, 50.0, 40.0, 10.0, 0.05],  # 1: near-duplicate of 0 -> dropped
            [50.0, 50.0, 40.0, 10.0, math.pi / 2 - 0.01],  # 2: crossing 0, IoU ~0.14 > 0.1 -> dropped
            [120.0, 50.0, 20.0, 20.0, 0.3],  # 3: far away -> kept
            [121.0, 51.0, 20.0, 20.0, 0.3],  # 4: duplicate of 3 with a higher score -> 3 dropped
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.5, 0.6])
    assert rotated_nms(boxes, scores, 0.1).tolist() == [0, 4]
    assert rotated_nms(boxes, scores, 0.5).tolist() == [0, 2, 4]


def test_suppressed_box_does_not_suppress():
    # 1 overlaps 0 and 2, 0 and 2 do not overlap: greedy keeps 0 and 2 (fast-NMS would wrongly drop 2).
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [6.0, 0.0, 16.0, 10.0], [12.0, 0.0, 22.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.2).tolist() == [0, 2]


def test_batched_nms_is_per_class():
    boxes = torch.tensor([[50.0, 50.0, 40.0, 10.0, 0.0], [50.0, 50.0, 40.0, 10.0, 0.0], [50.5, 50.0, 40.0, 10.0, 0.0]])
    scores = torch.tensor([0.5, 0.9, 0.4])
    classes = torch.tensor([0, 1, 0])
    assert batched_nms(boxes, scores, classes, 0.1).tolist() == [1, 0]
    hboxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    assert batched_nms(hboxes, torch.tensor([0.2, 0.3]), torch.tensor([0, 0]), 0.5).tolist() == [1]
    assert batched_nms(torch.zeros(0, 5), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.1).tolist() == []


def test_matches_textbook_greedy_on_random_boxes():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        n = 60
        boxes = torch.cat(
            [
                torch.rand(n, 2, generator=gen) * 60,
                torch.rand(n, 2, generator=gen) * 30 + 5,
                torch.rand(n, 1, generator=gen) * 3,
            ],
            1,
        )
        scores = torch.rand(n, generator=gen)
        for thr in (0.1, 0.3, 0.6):
            ref = greedy_reference(rotated_iou(boxes, boxes).tolist(), scores.tolist(), thr)
            assert rotated_nms(boxes, scores, thr).tolist() == ref
        hb = torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:4]], 1)
        assert nms(hb, scores, 0.3).tolist() == greedy_reference(hbox_iou(hb, hb).tolist(), scores.tolist(), 0.3)


def test_keep_from_iou_chain():
    # A chain 0-1-2-3 of overlaps: greedy keeps 0 and 2.
    iou = torch.zeros(4, 4)
    for i in range(3):
        iou[i, i + 1] = iou[i + 1, i] = 0.9
    assert keep_from_iou(iou, 0.5).tolist() == [True, False, True, False]
