from pathlib import Path

import pytest
import torch

from s5cli.datasets.imagefolder import ImageFolder
from s5cli.datasets.registry import get_dataset
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import truncate


def test_any_depth(data_dir: Path) -> None:
    ds = ImageFolder(data_dir / "million-aid", "all")
    rel = [p.relative_to(data_dir / "million-aid").as_posix() for p in ds.files]
    assert rel == [
        "test/P0000102.jpg",
        "test/arable_land/P0000101.jpg",
        "train/agriculture_land/grassland/meadow/P0115918.jpg",
        "train/water_area/beach/P0060208.jpg",
        "train/water_area/beach/P0060209.jpg",
    ]
    assert [len(ImageFolder(data_dir / "million-aid", s)) for s in ("train", "test")] == [3, 2]


def test_getitem(data_dir: Path) -> None:
    sample = get_dataset("imagefolder", data_dir / "million-aid", "train")[1]
    assert set(sample) == {"image", "dataset", "path"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 24, 40)
    assert sample["dataset"] == "million-aid"


def test_errors(data_dir: Path, tmp_path: Path, fake) -> None:
    with pytest.raises(InputError, match="no such folder"):
        ImageFolder(tmp_path / "none")
    with pytest.raises(InputError, match="no 'val' folder; use split 'all' or one of the sub-folders: test, train"):
        ImageFolder(data_dir / "million-aid", "val")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="no image files"):
        ImageFolder(tmp_path / "empty")
    root = fake("million-aid")
    bad = truncate(root / "test" / "P0000102.jpg")
    with pytest.raises(InputError, match="not a readable image") as err:
        ImageFolder(root, "test")[0]
    assert err.value.path == str(bad)
