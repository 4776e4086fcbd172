from pathlib import Path

import pytest
import torch

from s5cli.datasets.benchmarks import ISAID_CLASSES, ISAID_PALETTE
from s5cli.datasets.isaid import ISAID
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import read_rgb, truncate


@pytest.fixture(scope="module")
def root(data_dir: Path) -> Path:
    return data_dir / "isaid"


def test_getitem(root: Path) -> None:
    sample = ISAID(root, "train", crop_size=32, stride=16)[0]
    assert set(sample) == {"image", "mask", "dataset", "path", "window"}
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
    assert sample["path"].endswith("train/images/P0000.png")


def test_len(root: Path) -> None:
    # Mask files beside the images are not samples.
    assert [len(ISAID(root, s)) for s in ("train", "val", "test")] == [2, 2, 2]
    # P0000 48 x 40 -> rows {0, 16} x cols {0, 8}; P0001 40 x 40 -> {0, 8} x {0, 8}
    assert len(ISAID(root, "train", crop_size=32, stride=16)) == 8
    whole = ISAID(root, "train", crop_size=None)[0]
    assert whole["image"].shape == (3, 48, 40) and whole["window"] == (0, 0, 40, 48)


def test_every_colour_maps_to_its_class(root: Path) -> None:
    ds = ISAID(root, "train", crop_size=None)
    seen = set()
    for i in range(len(ds)):
        mask = ds[i]["mask"].numpy()
        rgb = read_rgb(ds.files[i][1])
        for index, colour in enumerate(ISAID_PALETTE):
            where = (rgb == colour).all(axis=2)
            assert (mask[where] == index).all(), ISAID_CLASSES[index]
            if where.any():
                seen.add(index)
    assert seen == set(range(16))


def test_windows_match_whole_image(root: Path) -> None:
    whole = ISAID(root, "val", crop_size=None)[0]
    ds = ISAID(root, "val", crop_size=32, stride=16)
    for i in range(len(ds)):
        s = ds[i]
        if s["path"] != whole["path"]:
            continue
        c, r, w, h = s["window"]
        assert torch.equal(s["image"], whole["image"][:, r : r + h, c : c + w])
        assert torch.equal(s["mask"], whole["mask"][r : r + h, c : c + w])


def test_class_absent_from_val(root: Path) -> None:
    ds = ISAID(root, "val", crop_size=None)
    seen = torch.cat([ds[i]["mask"].flatten() for i in range(len(ds))]).unique().tolist()
    assert 14 not in seen and 15 not in seen


def test_test_split_has_no_masks(root: Path) -> None:
    assert "mask" not in ISAID(root, "test")[0]


def test_wrong_folder_and_missing_root(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not look like isaid: expected"):
        ISAID(data_dir / "loveda")
    with pytest.raises(InputError, match="no such folder"):
        ISAID(tmp_path / "iSAID")


def test_truncated_image(fake) -> None:
    root = fake("isaid")
    bad = truncate(root / "train" / "images" / "P0001.png")
    with pytest.raises(InputError, match="not a readable image") as err:
        ISAID(root, "train")[1]
    assert err.value.path == str(bad)
