import shutil
from pathlib import Path

import pytest
import torch

from s5cli.datasets.benchmarks import DIOR_CLASSES
from s5cli.datasets.dior import DIORR
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import truncate


@pytest.fixture(scope="module")
def root(data_dir: Path) -> Path:
    return data_dir / "dior-r"


def test_getitem(root: Path) -> None:
    sample = DIORR(root, "train")[0]
    assert set(sample) == {"image", "polygons", "labels", "difficult", "truncated", "dataset", "path"}
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["polygons"].dtype == torch.float32 and sample["polygons"].shape == (3, 8)
    assert sample["labels"].dtype == torch.int64 and sample["labels"].shape == (3,)
    assert sample["difficult"].dtype == torch.bool and sample["truncated"].dtype == torch.bool
    assert sample["path"].endswith("JPEGImages-trainval/00001.jpg")


def test_corners_and_mixed_case_names(root: Path) -> None:
    sample = DIORR(root, "train")[0]
    # LT, RT, RB, LB as in the XML; "Expressway-Service-area" matched lower-cased, by name.
    assert sample["polygons"].tolist() == [
        [4, 5, 20, 5, 20, 15, 4, 15],
        [16, 18, 28, 22, 25, 31, 13, 27],
        [2, 24, 6, 24, 6, 26, 2, 26],
    ]
    names = [DIOR_CLASSES[i] for i in sample["labels"].tolist()]
    assert names == ["golffield", "expressway-service-area", "vehicle"]
    assert sample["difficult"].tolist() == [False, False, True]


def test_len_and_trainval_built_from_train_and_val(root: Path) -> None:
    assert [len(DIORR(root, s)) for s in ("train", "val", "trainval", "test")] == [2, 2, 4, 2]
    assert DIORR(root, "test")[0]["path"].endswith("JPEGImages-test/11726.jpg")


def test_no_objects(root: Path) -> None:
    sample = DIORR(root, "train")[1]
    assert sample["polygons"].shape == (0, 8) and sample["labels"].shape == (0,)
    assert sample["difficult"].shape == (0,) and sample["truncated"].shape == (0,)


def test_degenerate_box_dropped_and_truncated_flag(root: Path) -> None:
    sample = DIORR(root, "val")[0]
    assert [DIOR_CLASSES[i] for i in sample["labels"].tolist()] == ["expressway-toll-station", "ship"]
    assert sample["truncated"].tolist() == [True, False]


def test_obb_alias_layout(fake) -> None:
    root = fake("dior-r")
    (root / "Annotations" / "Oriented Bounding Boxes").rename(root / "Annotations" / "obb")
    merged = root / "JPEGImages"
    merged.mkdir()
    for folder in ("JPEGImages-trainval", "JPEGImages-test"):
        for p in (root / folder).iterdir():
            shutil.move(p, merged / p.name)
    ds = DIORR(root, "test")
    assert len(ds) == 2 and ds[1]["labels"].tolist() == [13, 8]


def test_unknown_class_names_the_file(fake) -> None:
    root = fake("dior-r")
    xml = root / "Annotations" / "Oriented Bounding Boxes" / "00004.xml"
    xml.write_text(xml.read_text().replace("windmill", "lighthouse"))
    with pytest.raises(InputError, match="unknown DIOR-R class 'lighthouse'") as err:
        DIORR(root, "val")[1]
    assert err.value.path == str(xml)


def test_missing_root_wrong_folder_missing_list(fake, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        DIORR(tmp_path / "DIOR")
    with pytest.raises(InputError, match="does not look like dior-r: expected JPEGImages-trainval/"):
        DIORR(data_dir / "dota-v1.0")
    root = fake("dior-r")
    (root / "ImageSets" / "Main" / "test.txt").unlink()
    with pytest.raises(InputError, match=r"no ImageSets/Main/test.txt"):
        DIORR(root, "test")


def test_truncated_image(fake) -> None:
    root = fake("dior-r")
    bad = truncate(root / "JPEGImages-test" / "11727.jpg")
    with pytest.raises(InputError, match="not a readable image") as err:
        DIORR(root, "test")[1]
    assert err.value.path == str(bad)


def test_difficult_objects_count_in_the_dior_r_score(root: Path) -> None:
    from s5cli.metrics.detection import evaluator_for

    sample = DIORR(root, "train")[0]  # its vehicle is flagged <difficult>1</difficult>
    found = ~sample["difficult"]
    prediction = {
        "boxes": sample["polygons"][found],
        "scores": torch.tensor([0.9, 0.8]),
        "labels": sample["labels"][found],
    }
    evaluator = evaluator_for("dior-r")  # S5 scores DIOR-R with BboxToolkit, whose reader skips <difficult>
    evaluator.add(prediction, sample)
    result = evaluator.compute()
    assert result.num_gt["vehicle"] == 1 and result.ap["vehicle"] == 0.0  # missed, not ignored
    assert result.map == pytest.approx(2 / 3)
