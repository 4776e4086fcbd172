from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from s5cli.datasets.openearthmap import OpenEarthMap
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import truncate


@pytest.fixture(scope="module")
def root(data_dir: Path) -> Path:
    return data_dir / "openearthmap"


def test_getitem(root: Path) -> None:
    sample = OpenEarthMap(root, "train")[0]
    assert set(sample) == {"image", "mask", "dataset", "path"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (32, 32)
    assert sample["path"].endswith("OpenEarthMap_wo_xBD/aachen/images/aachen_1.tif")


def test_len_skips_label_only_xbd_names(root: Path) -> None:
    # train.txt lists 4 names and val.txt 3, but palu_* (xBD) have labels and no images.
    assert [len(OpenEarthMap(root, s)) for s in ("train", "val", "test")] == [3, 2, 2]
    names = [p.name for p, _ in OpenEarthMap(root, "train").files]
    assert names == ["aachen_1.tif", "aachen_2.tif", "buenos_aires_1.tif"]


def test_inner_folder_given_directly(root: Path) -> None:
    assert len(OpenEarthMap(root / "OpenEarthMap_wo_xBD", "val")) == 2


def test_sizes_are_not_assumed(root: Path) -> None:
    sample = OpenEarthMap(root, "train")[2]
    assert sample["image"].shape == (3, 36, 28) and sample["mask"].shape == (36, 28)


def test_values_are_classes_and_unknown_is_a_class(root: Path) -> None:
    ds = OpenEarthMap(root, "train")
    for i in range(len(ds)):
        with rasterio.open(ds.files[i][1]) as src:
            raw = src.read(1).astype(np.int64)
        assert np.array_equal(ds[i]["mask"].numpy(), raw)
    seen = torch.cat([ds[i]["mask"].flatten() for i in range(len(ds))]).unique().tolist()
    assert seen == list(range(9))
    val = OpenEarthMap(root, "val")
    assert 6 not in torch.cat([val[i]["mask"].flatten() for i in range(len(val))]).unique().tolist()


def test_test_split_has_no_masks(root: Path) -> None:
    assert set(OpenEarthMap(root, "test")[0]) == {"image", "dataset", "path"}


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        OpenEarthMap(tmp_path / "oem")


def test_wrong_folder(data_dir: Path) -> None:
    with pytest.raises(InputError, match="does not look like openearthmap: expected OpenEarthMap_wo_xBD"):
        OpenEarthMap(data_dir / "dior-r")


def test_truncated_label(fake) -> None:
    root = fake("openearthmap")
    bad = truncate(root / "OpenEarthMap_wo_xBD" / "buenos_aires" / "labels" / "buenos_aires_2.tif")
    with pytest.raises(InputError) as err:
        OpenEarthMap(root, "val")[1]
    assert err.value.path == str(bad)
