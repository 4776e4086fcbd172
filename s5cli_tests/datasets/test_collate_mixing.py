import pytest
import torch

from s5cli.datasets.collate import collate_detection, collate_segmentation
from s5cli.datasets.mixing import RepeatToLength, repeat_to_longest
from s5cli.errors import InputError


class Numbers(torch.utils.data.Dataset):
    def __init__(self, n: int, name: str) -> None:
        self.n, self.name = n, name

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full((1, 2, 2), float(i)), "mask": torch.full((2, 2), i), "dataset": self.name}


def test_collate_segmentation_pads() -> None:
    a = {"image": torch.ones(3, 4, 4), "mask": torch.zeros(4, 4, dtype=torch.long), "dataset": "x", "path": "a"}
    b = {"image": torch.ones(3, 2, 6), "mask": torch.ones(2, 6, dtype=torch.long), "dataset": "x", "path": "b"}
    batch = collate_segmentation([a, b])
    assert batch["image"].shape == (2, 3, 4, 6) and batch["mask"].shape == (2, 4, 6)
    assert (batch["mask"][0, :, 4:] == 255).all() and (batch["mask"][1, 2:] == 255).all()
    assert (batch["image"][1, :, 2:] == 0).all()
    assert batch["sizes"] == [(4, 4), (2, 6)] and batch["path"] == ["a", "b"]
    with pytest.raises(ValueError, match="some samples have 'mask'"):
        collate_segmentation([a, {"image": torch.ones(3, 4, 4)}])


def test_collate_detection_lists() -> None:
    polys = [torch.zeros(2, 8), torch.zeros(0, 8)]
    samples = [
        {"image": torch.ones(3, 4, 4), "polygons": p, "labels": torch.zeros(len(p), dtype=torch.long)} for p in polys
    ]
    batch = collate_detection(samples)
    assert batch["image"].shape == (2, 3, 4, 4)
    assert [t.shape for t in batch["polygons"]] == [(2, 8), (0, 8)]
    assert [len(t) for t in batch["labels"]] == [2, 0]


def test_repeat_to_longest() -> None:
    mixed = repeat_to_longest({"a": Numbers(5, "a"), "b": Numbers(2, "b")})
    assert [len(d) for d in mixed.values()] == [5, 5]
    assert [int(mixed["b"][i]["image"][0, 0, 0]) for i in range(5)] == [0, 1, 0, 1, 0]
    with pytest.raises(InputError, match="cannot repeat an empty dataset"):
        RepeatToLength(Numbers(0, "z"), 3)
