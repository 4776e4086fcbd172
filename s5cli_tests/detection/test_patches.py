import math

import pytest
import torch

from s5cli.detection.patches import detect_large_image, merge_detections, patch_origins
from s5cli.errors import InputError


def test_patch_grid_snaps_last_row_and_column():
    # DOTA split: 1024 patches, gap 200 -> stride 824; a 2000 px side needs starts 0, 824 and 976.
    origins = patch_origins(2000, 1500, 1024, 200)
    assert sorted({x for x, _ in origins}) == [0, 476]
    assert sorted({y for _, y in origins}) == [0, 824, 976]
    assert patch_origins(300, 500, 1024, 200) == [(0, 0)]
    with pytest.raises(InputError):
        patch_origins(100, 100, 64, 64)


def scene_model(objects):
    """A fake detector that 'sees' the scene objects whose centre lies in the patch (patch coordinates)."""
    calls = []

    def model_fn(batch):
        out = []
        for patch in batch:
            x0, y0 = int(patch[0, 0, 0]), int(patch[1, 0, 0])  # the image encodes pixel coordinates
            calls.append((x0, y0, tuple(patch.shape)))
            boxes, scores, labels = [], [], []
            for cx, cy, w, h, a, label, score in objects:
                if x0 <= cx < x0 + batch.shape[-1] and y0 <= cy < y0 + batch.shape[-2]:
                    boxes.append([cx - x0, cy - y0, w, h, a])
                    scores.append(score)
                    labels.append(label)
            out.append(
                {
                    "boxes": torch.tensor(boxes).reshape(-1, 5),
                    "scores": torch.tensor(scores),
                    "labels": torch.tensor(labels, dtype=torch.long),
                }
            )
        return out

    return model_fn, calls


def coordinate_image(height, width):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    return torch.stack([xs, ys, torch.zeros_like(xs)])


def test_detections_come_back_in_image_coordinates_once():
    objects = [
        (30.0, 20.0, 10.0, 4.0, 0.2, 0, 0.9),
        (70.0, 60.0, 12.0, 6.0, -0.5, 1, 0.8),
        (45.0, 45.0, 8.0, 8.0, 0.0, 1, 0.7),
    ]
    model_fn, calls = scene_model(objects)
    out = detect_large_image(model_fn, coordinate_image(90, 100), patch_size=64, gap=24, batch_size=3)
    assert sorted(calls) == sorted((x, y, (3, 64, 64)) for x, y in patch_origins(90, 100, 64, 24))
    # Every object is seen by 1 to 4 overlapping patches; the merge keeps one copy of each.
    assert out["boxes"].shape == (3, 5)
    assert torch.allclose(out["boxes"], torch.tensor([o[:5] for o in objects]))
    assert out["labels"].tolist() == [0, 1, 1] and torch.allclose(out["scores"], torch.tensor([0.9, 0.8, 0.7]))


def test_small_image_is_padded_to_a_patch():
    model_fn, calls = scene_model([(10.0, 12.0, 6.0, 3.0, 0.0, 0, 0.5)])
    out = detect_large_image(model_fn, torch.rand(3, 40, 50), patch_size=64, gap=16, pad_value=0.5)
    assert calls[0][2] == (3, 64, 64)
    assert out["boxes"].shape == (1, 5)


def test_merge_keeps_other_classes_and_caps():
    a = {
        "boxes": torch.tensor([[10.0, 10.0, 8.0, 4.0, 0.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
    }
    b = {
        "boxes": torch.tensor([[10.5, 10.0, 8.0, 4.0, math.pi / 12]]),
        "scores": torch.tensor([0.6]),
        "labels": torch.tensor([0]),
    }
    c = {
        "boxes": torch.tensor([[10.0, 10.0, 8.0, 4.0, 0.0]]),
        "scores": torch.tensor([0.7]),
        "labels": torch.tensor([2]),
    }
    merged = merge_detections([a, b, c], nms_iou=0.1)
    assert merged["scores"].tolist() == pytest.approx([0.9, 0.7]) and merged["labels"].tolist() == [0, 2]
    assert merge_detections([a, b, c], nms_iou=0.1, max_detections=1)["labels"].tolist() == [0]
    assert merge_detections([], nms_iou=0.1)["boxes"].shape == (0, 5)


def test_patches_past_the_image_are_padded_with_the_mean_colour():
    seen = []

    def model_fn(batch):
        seen.append(batch.clone())
        return [{"boxes": torch.zeros(0, 5), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]

    image = torch.rand(3, 40, 50)
    detect_large_image(model_fn, image, patch_size=64, gap=16)
    (patch,) = seen[0]
    assert torch.equal(patch[:, :40, :50], image)
    colour = torch.tensor([124.0, 116.0, 104.0]) / 255  # BboxToolkit's padding_value, read as RGB
    assert torch.equal(patch[:, 40:, :], colour[:, None, None].expand(3, 24, 64))
    assert torch.equal(patch[:, :, 50:], colour[:, None, None].expand(3, 64, 14))


def test_merge_iou_local_and_for_the_server():
    from s5cli.detection.patches import MERGE_IOU, SUBMISSION_MERGE_IOU

    # One object seen by two overlapping patches, the second copy shifted: IoU 1/3 with the first.
    objects = [(40.0, 20.0, 12.0, 6.0, 0.0, 0, 0.9), (44.0, 20.0, 12.0, 6.0, 0.0, 0, 0.6)]
    model_fn, _ = scene_model(objects)
    image = coordinate_image(40, 100)
    local = detect_large_image(model_fn, image, patch_size=64, gap=48)
    server = detect_large_image(model_fn, image, patch_size=64, gap=48, nms_iou=SUBMISSION_MERGE_IOU)
    assert (MERGE_IOU, SUBMISSION_MERGE_IOU) == (0.1, 0.5)  # OBBDetection evaluate / format_results
    assert local["scores"].tolist() == pytest.approx([0.9])  # suppressed above IoU 0.1
    assert server["scores"].tolist() == pytest.approx([0.9, 0.6])  # kept below IoU 0.5
