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
    # small-vehicle spans x 22..34: 10/12 of it is inside each patch -> kept whole (BboxToolkit img_split
    # translates, never clips) and flagged truncated.
    assert first["polygons"][1].tolist() == [22, 4, 34, 4, 34, 14, 22, 14]
    assert first["truncated"].tolist() == [False, True, False]
    assert second["polygons"].tolist() == [[-2, 4, 10, 4, 10, 14, -2, 14]]
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


def _one_image_dota(root: Path, lines: list[str], size: tuple[int, int] = (48, 64)) -> Path:
    """A DOTA-v1.0 folder with one train image of size (h, w) and the given label lines."""
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labelTxt").mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train" / "images" / "P0706.png")
    text = "imagesource:GoogleEarth\ngsd:0.25\n" + "".join(f"{line}\n" for line in lines)
    (root / "train" / "labelTxt" / "P0706.txt").write_text(text)
    return root


def test_whole_images_carry_the_raw_polygons(tmp_path: Path) -> None:
    # An object poking past the image edge (the DOTA devkit's P0706 has such ships): the devkit scores the
    # polygon as written; until issue 15 it came back clipped and re-fitted.
    lines = ["54 10 70 12 68 22 52 20 ship 0", "-6 30 4 30 4 40 -6 40 harbor 1", "10 10 20 10 20 11 10 11 plane 0"]
    root = _one_image_dota(tmp_path / "dota", lines)
    sample = get_dataset("dota-v1.0", root, "train", patch_size=None)[0]
    assert sample["image"].shape == (3, 48, 64)
    assert sample["polygons"].tolist() == [
        [54, 10, 70, 12, 68, 22, 52, 20], [-6, 30, 4, 30, 4, 40, -6, 40], [10, 10, 20, 10, 20, 11, 10, 11],
    ]  # fmt: skip
    assert sample["difficult"].tolist() == [False, True, False]


def test_patches_are_cut_as_bboxtoolkit_cuts_them(tmp_path: Path) -> None:
    lines = [
        "22 4 32 4 32 14 22 14 plane 0",  # x 22..32: 7/10 inside the first patch (iof 0.7): kept whole
        "25 20 35 20 35 30 25 30 ship 0",  # 0.4 x 0.9 inside the first patch: not in it; 0.9 in the second
        "4 20 5.5 20 5.5 30 4 30 small-vehicle 0",  # 1.5 px wide: dropped from patches
        "28 2 30 2 30 12 28 12 bridge 0",  # 2 px wide: kept where it is inside (half of it in the first)
    ]
    root = _one_image_dota(tmp_path / "dota", lines, size=(40, 48))
    ds = get_dataset("dota-v1.0", root, "train", patch_size=29, gap=10)
    assert [w for _, w in ds.index] == [(0, 0, 29, 29), (19, 0, 29, 29), (0, 11, 29, 29), (19, 11, 29, 29)]
    first = ds[0]
    assert [DOTA_CLASSES["1.0"][i] for i in first["labels"]] == ["plane"]
    assert first["polygons"].tolist() == [[22, 4, 32, 4, 32, 14, 22, 14]] and first["truncated"].tolist() == [True]
    second = ds[1]  # x from 19: the plane and the bridge whole, the ship cut at y = 29
    assert [DOTA_CLASSES["1.0"][i] for i in second["labels"]] == ["plane", "ship", "bridge"]
    assert second["truncated"].tolist() == [False, True, False]
    assert second["polygons"][1].tolist() == [6, 20, 16, 20, 16, 30, 6, 30]
    # The 1.5 px object is kept on whole images only (DOTASpecialIgnore(ignore_size=2) is a training rule).
    whole = get_dataset("dota-v1.0", root, "train", patch_size=None)[0]
    assert DOTA_CLASSES["1.0"].index("small-vehicle") in whole["labels"].tolist()
    kept = get_dataset("dota-v1.0", root, "train", patch_size=29, gap=10, min_box_size=0)[2]
    assert DOTA_CLASSES["1.0"].index("small-vehicle") in kept["labels"].tolist()


def test_padding_is_the_mean_colour(data_dir: Path) -> None:
    ds = get_dataset("dota-v1.0", data_dir / "dota-v1.0", "train", patch_size=64, gap=8)
    sample = ds[0]  # P0000 is 56 x 40: one 64 px window, padded right and bottom
    image = np.asarray(Image.open(sample["path"]).convert("RGB"))
    assert torch.equal(sample["image"][:, :40, :56], torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255)
    colour = torch.tensor([124, 116, 104]).float()[:, None] / 255  # BboxToolkit [104, 116, 124] is BGR
    assert torch.equal(sample["image"][:, :, 56:].reshape(3, -1), colour.expand(3, 64 * 8))
    assert torch.equal(sample["image"][:, 40:, :].reshape(3, -1), colour.expand(3, 24 * 64))


def test_patch_size_and_gap_come_from_the_registry(data_dir: Path) -> None:
    from s5cli.datasets.registry import DATASETS

    info = DATASETS["dota-v2.0"]
    ds = get_dataset("dota-v2.0", data_dir / "dota-v2.0", "val")
    assert (ds.patch_size, ds.gap) == (info.patch_size, info.patch_gap)
    assert get_dataset("dota-v2.0", data_dir / "dota-v2.0", "val", patch_size=512).gap == 100


def test_windows_the_image_covers_too_little_of_give_way() -> None:
    from s5cli.datasets.dota import covered_windows

    windows = [(0, 0, 10, 10), (10, 0, 10, 10), (9, 0, 10, 10)]  # a 16 x 10 image covers 1, 0.6 and 0.7 of them
    assert covered_windows(windows, 16, 10, 0.6) == [(0, 0, 10, 10), (9, 0, 10, 10)]  # rate > 0.6
    assert covered_windows(windows, 16, 10, 1.0) == [(0, 0, 10, 10)]  # none above: the best-covered one
    assert covered_windows([(0, 0, 10, 10)], 5, 5, 0.6) == [(0, 0, 10, 10)]  # a small image keeps its window
