from pathlib import Path

import pytest

from s5cli.datasets.registry import DATASETS, canonical_name, dataset_info, find_dataset_root, get_dataset
from s5cli.errors import InputError


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(InputError, match="unknown dataset 'potsdamm'; valid names: potsdam, vaihingen, loveda"):
        dataset_info("potsdamm")


def test_aliases_and_metrics() -> None:
    assert canonical_name("DIOR") == "dior-r" and canonical_name("LoveDA") == "loveda"
    assert canonical_name("DOTA-v2.0") == "dota-v2.0" and canonical_name("iSAID") == "isaid"
    metrics = {name: info.metric for name, info in DATASETS.items()}
    assert metrics["potsdam"] == "mF1" and metrics["vaihingen"] == "mIoU" and metrics["openearthmap"] == "mIoU"
    assert metrics["loveda"] == "mIoU" and metrics["isaid"] == "mIoU"
    assert {metrics[n] for n in ("dior-r", "dota-v1.0", "dota-v1.5", "dota-v2.0")} == {"mAP"}


def test_tables() -> None:
    assert [len(DATASETS[n].classes) for n in ("potsdam", "loveda", "openearthmap", "isaid", "dior-r")] == [
        6, 7, 9, 16, 20,
    ]  # fmt: skip
    assert [len(DATASETS[f"dota-v{v}"].classes) for v in ("1.0", "1.5", "2.0")] == [15, 16, 18]
    for info in DATASETS.values():
        if info.palette:
            assert len(info.palette) == len(info.classes)
    assert DATASETS["potsdam"].ignored == ("clutter",) and DATASETS["potsdam"].excluded == ("clutter",)
    assert DATASETS["openearthmap"].metric_exclude == ()
    assert (DATASETS["potsdam"].crop_size, DATASETS["potsdam"].stride, DATASETS["potsdam"].test_stride) == (
        512,
        256,
        512,
    )
    assert (DATASETS["dota-v2.0"].patch_size, DATASETS["dota-v2.0"].patch_gap) == (1024, 200)


def test_head_spec() -> None:
    from s5cli.models.spec import HeadSpec

    head = HeadSpec.from_dataset(dataset_info("vaihingen"))
    assert head.name == "vaihingen" and head.task == "segmentation" and head.num_classes == 5  # clutter ignored
    assert head.palette[1] == (0, 0, 255) and "clutter" not in head.classes
    dior = HeadSpec.from_dataset(dataset_info("dior-r"), 1024)
    assert dior.task == "detection" and (dior.input.size, dior.input.overlap_px) == (1024, 200)
    with pytest.raises(InputError, match="no labels"):
        HeadSpec.from_dataset(dataset_info("million-aid"))


def test_find_dataset_root(tmp_path: Path, data_dir: Path) -> None:
    assert find_dataset_root(data_dir, "dota-v1.5") == data_dir / "dota-v1.5"
    (tmp_path / "DIOR").mkdir()
    (tmp_path / "Potsdam").mkdir()
    assert find_dataset_root(tmp_path, "dior-r") == tmp_path / "DIOR"
    assert find_dataset_root(tmp_path, "potsdam") == tmp_path / "Potsdam"
    with pytest.raises(InputError, match="no loveda folder here") as err:
        find_dataset_root(tmp_path, "loveda")
    assert err.value.path == str(tmp_path)
    with pytest.raises(InputError, match="expected a data root"):
        find_dataset_root(tmp_path / "nope", "loveda")


def test_get_dataset_options(data_dir: Path) -> None:
    ds = get_dataset("Potsdam", data_dir / "potsdam", "train", crop_size=32)
    assert len(ds) == 8
    with pytest.raises(InputError, match="potsdam has no option crop; its options: bands, crop_size"):
        get_dataset("potsdam", data_dir / "potsdam", "train", crop=32)
