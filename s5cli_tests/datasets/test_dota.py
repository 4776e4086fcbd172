from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from s5cli.datasets.benchmarks import DOTA_CLASSES
from s5cli.datasets.dota import parse_label_txt
from s5cli.datasets.registry import get_dataset
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import truncate

VERSIONS = ["dota-v1.0", "dota-v1.5", "dota-v2.0"]


@pytest.mark.parametrize("name", VERSIONS)
def test_getitem_and_len(data_dir: Path, name: str) -> None:
    root = data_dir / name
    assert [len(get_dataset(name, root, s)) for s in ("train", "val", "trainval", "test")] == [2, 1, 3, 1]
    sample = get_dataset(name, root, "train")[0]
    assert set(sample) == {"image", "polygons", "labels", "difficult", "truncated", "dataset", "path", "window"}
    assert sample["image"].shape == (3, 1024, 1024)  # padded to the full patch, as mmrotate does
    assert sample["polygons"].shape[1] == 8 and sample["polygons"].dtype == torch.float32
    assert len(sample["labels"]) == len(sample["polygons"]) == len(sample["difficult"])
    assert sample["dataset"] == name
    assert set(get_dataset(name, root, "test")[0]) == {"image", "dataset", "path", "window"}


def test_header_lines_and_classes_by_name(data_dir: Path) -> None:
    classes = {c: i for i, c in enumerate(DOTA_CLASSES["2.0"])}
    polys, labels, diff, trunc = parse_label_txt(data_dir / "dota-v2.0" / "val" / "labelTxt" / "P0002.txt", classes)
    names = [DOTA_CLASSES["2.0"][i] for i in labels]
    assert names == ["harbor", "ship", "airport", "helipad"]  # gsd:null and the header are skipped
    assert diff.tolist() == [False, True, False, False]  # the 9-token line has difficult 0
    assert not trunc.any()
    assert polys[0].tolist() == [4, 4, 16, 4, 16, 12, 4, 12]


def test_version_classes(data_dir: Path) -> None:
    v15 = get_dataset("dota-v1.5", data_dir / "dota-v1.5", "train", patch_size=None)[0]
    assert DOTA_CLASSES["1.5"][int(v15["labels"][-1])] == "container-crane"
    with pytest.raises(InputError, match="class 'container-crane' is not a 15-class DOTA class"):
        get_dataset("dota-v1.0", data_dir / "dota-v1.5", "train")[0]


def test_patches(data_dir: Path) -> None:
    ds = get_dataset("dota-v1.0", data_dir / "dota-v1.0", "train", patch_size=32, gap=8)
    # P0000 is 56 x 40: stride 24 -> cols {0, 24}, rows {0, 8}; P0001 (32 x 32) is one patch.
    assert [ds[i]["window"] for i in range(len(ds))] == [
        (0, 0, 32, 32), (24, 0, 32, 32), (0, 8, 32, 32), (24, 8, 32, 32), (0, 0, 32, 32),
    ]  # fmt: skip
    first, second = ds[0], ds[1]
    names = [DOTA_CLASSES["1.0"][i] for i in first["labels"].tolist()]
    assert names == ["plane", "small-vehicle", "large-vehicle"]
    # small-vehicle spans x 22..34: 10/12 of it is inside each patch -> clipped and flagged truncated.
    assert first["polygons"][1].tolist() == [22, 4, 32, 4, 32, 14, 22, 14]
    assert first["truncated"].tolist() == [False, True, False]
    assert second["polygons"].tolist() == [[0, 4, 10, 4, 10, 14, 0, 14]]
    assert second["truncated"].tolist() == [True]
    # Pixels are the window of the whole image.
    whole = np.asarray(Image.open(data_dir / "dota-v1.0" / "train" / "images" / "P0000.png"))
    assert torch.equal(second["image"], torch.from_numpy(whole[0:32, 24:56].transpose(2, 0, 1)).float() / 255)


def test_no_objects_and_grayscale(data_dir: Path) -> None:
    ds = get_dataset("dota-v2.0", data_dir / "dota-v2.0", "train", patch_size=None)
    sample = ds[1]  # P0001: grayscale PNG, header-only labelTxt
    assert Image.open(sample["path"]).mode == "L"
    assert sample["image"].shape == (3, 32, 32)
    assert torch.equal(sample["image"][0], sample["image"][1]) and torch.equal(sample["image"][1], sample["image"][2])
    assert sample["polygons"].shape == (0, 8) and sample["labels"].shape == (0,)


def test_filter_empty(data_dir: Path) -> None:
    ds = get_dataset("dota-v1.0", data_dir / "dota-v1.0", "train", patch_size=32, gap=8, filter_empty=True)
    assert len(ds) == 4 and all(len(ds[i]["labels"]) for i in range(len(ds)))


def test_label_folder_alias(fake) -> None:
    root = fake("dota-v1.5")
    (root / "train" / "labelTxt").rename(root / "train" / "labelTxt-v1.5")
    assert len(get_dataset("dota-v1.5", root, "train")[0]["labels"]) == 5


def test_errors(fake, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        get_dataset("dota-v2.0", tmp_path / "DOTA", "train")
    with pytest.raises(InputError, match=r"does not look like dota-v2.0: expected \{train,val\}/images/P####.png"):
        get_dataset("dota-v2.0", data_dir / "potsdam", "train")
    with pytest.raises(InputError, match="gap must be"):
        get_dataset("dota-v2.0", data_dir / "dota-v2.0", "train", patch_size=32, gap=32)
    root = fake("dota-v2.0")
    bad = truncate(root / "val" / "images" / "P0002.png")
    with pytest.raises(InputError, match="not a readable image") as err:
        get_dataset("dota-v2.0", root, "val")[0]
    assert err.value.path == str(bad)
