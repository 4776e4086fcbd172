import pytest
import torch

from s5cli.datasets.augment import (
    ColorJitter,
    Compose,
    RandomBlur,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomRescale,
    RandomRot90,
    RandomVerticalFlip,
    Resize,
    cutmix_box,
    detection_augment,
    segmentation_augment,
    strong_view,
    weak_view,
)
from s5cli.datasets.polygons import signed_area

# One 4 x 2 box at x 1..5, y 2..4 in a 10 (W) x 6 (H) image, corners clockwise from the top-left.
BOX = [1.0, 2.0, 5.0, 2.0, 5.0, 4.0, 1.0, 4.0]


def detection_sample() -> dict:
    image = torch.arange(3 * 6 * 10, dtype=torch.float32).reshape(3, 6, 10) / 180
    return {
        "image": image,
        "polygons": torch.tensor([BOX]),
        "labels": torch.tensor([3]),
        "difficult": torch.tensor([False]),
        "truncated": torch.tensor([False]),
    }


def seg_sample(h: int = 6, w: int = 10) -> dict:
    image = torch.rand(3, h, w)
    return {"image": image, "mask": (image[0] * 5).long()}


def test_hflip_polygon() -> None:
    out = RandomHorizontalFlip(p=1.0)(detection_sample())
    # x -> 10 - x: corners (9,2) (5,2) (5,4) (9,4); reordered (p1, p4, p3, p2) to stay clockwise.
    assert out["polygons"].tolist() == [[9, 2, 9, 4, 5, 4, 5, 2]]
    assert torch.equal(out["image"], detection_sample()["image"].flip(-1))
    assert float(signed_area(out["polygons"].numpy())[0]) > 0


def test_vflip_polygon() -> None:
    out = RandomVerticalFlip(p=1.0)(detection_sample())
    # y -> 6 - y: corners (1,4) (5,4) (5,2) (1,2); reordered to (1,4) (1,2) (5,2) (5,4).
    assert out["polygons"].tolist() == [[1, 4, 1, 2, 5, 2, 5, 4]]
    assert float(signed_area(out["polygons"].numpy())[0]) > 0


def test_rot90_polygon_and_pixels() -> None:
    sample = detection_sample()
    out = RandomRot90(p=1.0)(sample)
    # (x, y) -> (y, W - x) with W = 10: (2,9) (2,5) (4,5) (4,9); a rotation keeps the winding.
    assert out["polygons"].tolist() == [[2, 9, 2, 5, 4, 5, 4, 9]]
    assert out["image"].shape == (3, 10, 6)
    # The pixel at (row 2, col 1) -- inside the box's top-left corner -- lands at (row 10 - 1 - 1, col 2).
    assert out["image"][0, 8, 2] == sample["image"][0, 2, 1]
    assert float(signed_area(out["polygons"].numpy())[0]) > 0


def test_polygon_follows_pixels_under_every_flip_and_rotation() -> None:
    # A one-pixel-wide marker at the box's first corner must stay at the transformed first corner.
    for transform in (RandomHorizontalFlip(1.0), RandomVerticalFlip(1.0), RandomRot90(1.0)):
        sample = detection_sample()
        sample["mask"] = torch.zeros(6, 10, dtype=torch.long)
        sample["mask"][2, 1] = 1  # the pixel whose top-left corner is the box's p1 (1, 2)
        out = transform(sample)
        row, col = (out["mask"] == 1).nonzero()[0].tolist()
        xs, ys = out["polygons"][0, 0::2], out["polygons"][0, 1::2]
        # the marked pixel touches exactly one corner of the transformed box
        touching = [(x, y) for x, y in zip(xs.tolist(), ys.tolist()) if col <= x <= col + 1 and row <= y <= row + 1]
        assert len(touching) == 1


def test_probability_zero_is_identity() -> None:
    sample = detection_sample()
    for transform in (RandomHorizontalFlip(0.0), RandomVerticalFlip(0.0), RandomRot90(0.0)):
        out = transform(sample)
        assert out["polygons"].tolist() == [BOX] and torch.equal(out["image"], sample["image"])


def test_rescale_scales_polygons_and_uses_nearest_for_masks() -> None:
    sample = detection_sample()
    sample["mask"] = torch.randint(0, 5, (6, 10))
    out = Resize(12, 20)(sample)
    assert out["image"].shape == (3, 12, 20)
    assert out["polygons"].tolist() == [[2, 4, 10, 4, 10, 8, 2, 8]]
    assert torch.equal(out["mask"], sample["mask"].repeat_interleave(2, 0).repeat_interleave(2, 1))
    torch.manual_seed(0)
    out = RandomRescale(0.5, 2.0)(seg_sample(40, 40))
    assert 20 <= out["image"].shape[-1] <= 80 and out["image"].shape == (3, *out["mask"].shape)


def test_crop_pads_with_ignore() -> None:
    torch.manual_seed(0)
    sample = seg_sample(6, 10)
    out = RandomCrop(16)(sample)
    assert out["image"].shape == (3, 16, 16) and out["mask"].shape == (16, 16)
    assert torch.equal(out["image"][:, :6, :10], sample["image"])  # smaller image: pad right/bottom only
    assert (
        (out["image"][:, 6:, :] == 0).all() and (out["mask"][6:, :] == 255).all() and (out["mask"][:, 10:] == 255).all()
    )
    assert int(out["valid"].sum()) == 60


def test_crop_moves_and_clips_polygons(monkeypatch: pytest.MonkeyPatch) -> None:
    import s5cli.datasets.augment as augment

    monkeypatch.setattr(augment, "randint", lambda low, high: 1 if high > 1 else 0)  # crop origin (1, 1)
    out = RandomCrop(4)(detection_sample())
    # Crop x 1..5, y 1..5: the box (x 1..5, y 2..4) is fully inside -> shifted by (-1, -1).
    assert out["polygons"].tolist() == [[0, 1, 4, 1, 4, 3, 0, 3]] and out["truncated"].tolist() == [False]
    out = RandomCrop(3)(detection_sample())
    # Crop x 1..4, y 1..4: 3/4 of the box is inside (iof 0.75 >= 0.7) -> clipped and truncated.
    assert out["polygons"].tolist() == [[0, 1, 3, 1, 3, 3, 0, 3]] and out["truncated"].tolist() == [True]
    assert out["labels"].tolist() == [3]


def test_colour_transforms() -> None:
    torch.manual_seed(0)
    sample = seg_sample(16, 16)
    jittered = ColorJitter()(sample)
    assert jittered["image"].shape == (3, 16, 16) and not torch.equal(jittered["image"], sample["image"])
    assert 0 <= float(jittered["image"].min()) and float(jittered["image"].max()) <= 1
    gray = RandomGrayscale(1.0)(sample)["image"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    blurred = RandomBlur(1.0)(sample)["image"]
    assert blurred.shape == (3, 16, 16) and float(blurred.std()) < float(sample["image"].std())
    four = {"image": torch.rand(4, 8, 8)}
    assert ColorJitter()(four)["image"].shape == (4, 8, 8)
    assert torch.equal(RandomGrayscale(1.0)(four)["image"], four["image"])


def test_seeded_through_torch() -> None:
    def run(seed: int) -> dict:
        torch.manual_seed(0)
        sample = seg_sample(24, 24)
        torch.manual_seed(seed)
        return segmentation_augment(16)(sample)

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["image"], c["image"])


def test_views() -> None:
    torch.manual_seed(1)
    weak = weak_view(16)({"image": torch.rand(3, 20, 30)})
    assert weak["image"].shape == (3, 16, 16) and weak["valid"].shape == (16, 16)
    strong = strong_view()(weak)
    assert strong["image"].shape == (3, 16, 16) and torch.equal(strong["valid"], weak["valid"])
    det = detection_augment(rot90=True)(detection_sample())
    assert det["polygons"].shape == (1, 8)
    assert isinstance(Compose([])(detection_sample()), dict)


def test_cutmix_box() -> None:
    torch.manual_seed(0)
    boxes = [cutmix_box(32, p=0.5) for _ in range(400)]
    used = [b for b in boxes if b.any()]
    assert 150 < len(used) < 250  # p = 0.5
    for b in used:
        rows, cols = b.any(1).nonzero(), b.any(0).nonzero()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(b.sum()) == h * w  # one rectangle
        assert 0.3 - 0.1 <= h / w <= 1 / 0.3 + 0.5
        assert int(b.sum()) <= 0.4 * 32 * 32
    assert not cutmix_box((8, 12), p=0.0).any() and cutmix_box((8, 12), p=1.0).shape == (8, 12)
