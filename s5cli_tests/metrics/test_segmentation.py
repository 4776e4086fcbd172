import math

import numpy as np
import pytest
import torch

from s5cli.errors import InputError
from s5cli.metrics.segmentation import ConfusionMatrix, metrics_for

# The 2 x 3 known-answer toy with K = 3 and ignore 255.
PRED = np.array([[0, 0, 1], [1, 1, 2]])
GT = np.array([[0, 1, 1], [1, 255, 2]])


def test_toy_example() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, GT)
    # rows = target, columns = prediction; the ignored pixel (predicted 1) is counted nowhere.
    assert cm.matrix.tolist() == [[1, 0, 0], [1, 2, 0], [0, 0, 1]]
    assert np.allclose(cm.iou(), [0.5, 2 / 3, 1.0])
    assert cm.miou() == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)  # 72.2 %
    assert np.allclose(cm.f1(), [2 / 3, 0.8, 1.0])
    assert cm.oa() == pytest.approx(4 / 5)


def test_torch_and_numpy_agree_and_split_invariance() -> None:
    rng = np.random.default_rng(0)
    pred, gt = rng.integers(0, 4, (2, 16, 16)), rng.integers(0, 4, (2, 16, 16))
    gt[0, :3] = 255
    whole = ConfusionMatrix(4)
    whole.update(torch.from_numpy(pred), torch.from_numpy(gt))
    halves = ConfusionMatrix(4)
    halves.update(pred[0], gt[0])
    other = ConfusionMatrix(4)
    other.update(pred[1], gt[1])
    halves.merge(other)
    assert np.array_equal(whole.matrix, halves.matrix)
    assert whole.matrix.sum() == 2 * 256 - 3 * 16


def test_hand_made_matrix_with_exclusion() -> None:
    names = ["road", "building", "clutter"]
    cm = ConfusionMatrix(3, class_names=names, exclude=["clutter"])
    cm.matrix[:] = [[8, 2, 0], [1, 6, 3], [0, 4, 6]]
    iou = [8 / (10 + 9 - 8), 6 / (10 + 12 - 6), 6 / (10 + 9 - 6)]
    f1 = [16 / 19, 12 / 22, 12 / 19]
    assert np.allclose(cm.iou(), iou) and np.allclose(cm.f1(), f1)
    assert cm.miou() == pytest.approx((iou[0] + iou[1]) / 2)  # clutter left out of the mean
    assert cm.mf1() == pytest.approx((f1[0] + f1[1]) / 2)
    assert cm.oa() == pytest.approx(20 / 30)
    summary = cm.summary()
    assert summary["excluded"] == ["clutter"] and summary["pixels"] == 30
    assert summary["IoU"]["building"] == pytest.approx(iou[1])


def test_absent_class_is_skipped() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    iou = cm.iou()
    assert math.isnan(iou[2]) and cm.miou() == pytest.approx((0.5 + 0.5) / 2)
    assert cm.summary()["IoU"]["2"] is None
    empty = ConfusionMatrix(2)
    assert math.isnan(empty.miou()) and math.isnan(empty.oa())


def test_bad_values() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="target values"):
        cm.update(np.array([0]), np.array([5]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_dataset_conventions() -> None:
    potsdam = metrics_for("potsdam")
    assert potsdam.num_classes == 6 and potsdam.excluded == [5]
    assert metrics_for("openearthmap").excluded == []  # class 0 "unknown" is counted, as S5 does
    assert metrics_for("isaid").excluded == [0]
    with pytest.raises(InputError, match="detection dataset"):
        metrics_for("dior-r")


def test_all_reduce_without_distributed_is_identity() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1]), np.array([0, 0]))
    before = cm.matrix.copy()
    assert np.array_equal(cm.all_reduce().matrix, before)
    cm.reset()
    assert cm.matrix.sum() == 0
