from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from s5cli.datasets.loveda import LoveDA
from s5cli.datasets.registry import get_dataset
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import truncate


@pytest.fixture(scope="module")
def root(data_dir: Path) -> Path:
    return data_dir / "loveda"


def test_getitem(root: Path) -> None:
    sample = LoveDA(root, "train")[0]
    assert set(sample) == {"image", "mask", "dataset", "path"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (32, 32)
    assert sample["path"].endswith("Train/Rural/images_png/0.png")


def test_len_and_order(root: Path) -> None:
    assert [len(LoveDA(root, s)) for s in ("train", "val", "trainval", "test")] == [3, 2, 5, 3]
    ds = LoveDA(root, "trainval")
    assert [Path(p).stem for p, _ in ds.files] == ["0", "1", "2", "3", "4"]  # numeric ids across folders
    assert len(LoveDA(root, "train", scenes=["urban"])) == 1


def test_values_shift_and_no_data_is_ignored(root: Path) -> None:
    ds = LoveDA(root, "train")
    for i in range(len(ds)):
        mask_path = ds.files[i][1]
        raw = np.asarray(Image.open(mask_path)).astype(np.int64)
        mask = ds[i]["mask"].numpy()
        assert (raw == 0).any()
        assert (mask[raw == 0] == 255).all()
        assert (mask[raw > 0] == raw[raw > 0] - 1).all()
    seen = torch.cat([ds[i]["mask"].flatten() for i in range(len(ds))]).unique().tolist()
    assert seen == [0, 1, 2, 3, 4, 5, 6, 255]


def test_class_absent_from_val(root: Path) -> None:
    ds = LoveDA(root, "val")
    seen = torch.cat([ds[i]["mask"].flatten() for i in range(len(ds))]).unique().tolist()
    assert 3 not in seen  # water (raw 4) is absent from val


def test_test_split_has_no_masks(root: Path) -> None:
    sample = LoveDA(root, "test")[0]
    assert set(sample) == {"image", "dataset", "path"}


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder") as err:
        LoveDA(tmp_path / "LoveDA")
    assert err.value.path == str(tmp_path / "LoveDA")


def test_wrong_folder(data_dir: Path) -> None:
    with pytest.raises(InputError, match=r"does not look like loveda: expected \{Train,Val,Test\}"):
        LoveDA(data_dir / "potsdam")


def test_invalid_split(root: Path) -> None:
    with pytest.raises(InputError, match="valid splits: train, val, trainval, test"):
        LoveDA(root, "training")


def test_truncated_mask(fake) -> None:
    root = fake("loveda")
    bad = truncate(root / "Val" / "Urban" / "masks_png" / "4.png")
    with pytest.raises(InputError, match="not a readable image") as err:
        get_dataset("loveda", root, "val")[1]
    assert err.value.path == str(bad)


def test_missing_mask(fake) -> None:
    root = fake("loveda")
    (root / "Train" / "Urban" / "masks_png" / "2.png").unlink()
    with pytest.raises(InputError, match="no mask for this image"):
        LoveDA(root, "train")[2]
