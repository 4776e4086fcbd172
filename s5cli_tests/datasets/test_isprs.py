from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from s5cli.datasets.benchmarks import ISPRS_CLASSES, ISPRS_PALETTE
from s5cli.datasets.isprs import Potsdam, Vaihingen
from s5cli.datasets.registry import get_dataset
from s5cli.errors import InputError
from s5cli_tests.datasets.conftest import read_rgb, truncate


@pytest.fixture(scope="module")
def potsdam_root(data_dir: Path) -> Path:
    return data_dir / "potsdam"


@pytest.fixture(scope="module")
def vaihingen_root(data_dir: Path) -> Path:
    return data_dir / "vaihingen"


class TestPotsdam:
    def test_getitem(self, potsdam_root: Path) -> None:
        sample = Potsdam(potsdam_root, "train", crop_size=32)[0]
        assert set(sample) == {"image", "mask", "dataset", "path", "window"}
        assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
        assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (32, 32)
        assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
        assert sample["dataset"] == "potsdam"
        assert sample["path"].endswith("2_Ortho_RGB/top_potsdam_2_10_RGB.tif")
        assert sample["window"] == (0, 0, 32, 32)

    def test_image_is_the_window_of_the_tile(self, potsdam_root: Path) -> None:
        ds = Potsdam(potsdam_root, "train", crop_size=32)
        sample = ds[3]  # 40 px tile, 32 windows, stride 16 -> origins {0, 8} x {0, 8}
        assert sample["window"] == (8, 8, 32, 32)
        with rasterio.open(potsdam_root / "2_Ortho_RGB" / "top_potsdam_2_10_RGB.tif") as src:
            raw = src.read(window=((8, 40), (8, 40)))
        assert torch.equal(sample["image"], torch.from_numpy(raw).float() / 255)

    def test_len(self, potsdam_root: Path) -> None:
        # 2 tiles per split of 40 x 40: 1 whole-tile window at 512, 2 x 2 windows at 32 (train stride 16,
        # test stride 32 with the last window snapped to the edge).
        assert len(Potsdam(potsdam_root, "train")) == 2
        assert len(Potsdam(potsdam_root, "test")) == 2
        assert len(Potsdam(potsdam_root, "train", crop_size=32)) == 8
        assert len(Potsdam(potsdam_root, "test", crop_size=32)) == 8
        assert len(Potsdam(potsdam_root, "train", crop_size=20, stride=20)) == 8
        assert len(Potsdam(potsdam_root, "train", crop_size=None)) == 2
        assert Potsdam(potsdam_root, "train", crop_size=None)[0]["image"].shape == (3, 40, 40)

    def test_val_is_the_test_split(self, potsdam_root: Path) -> None:
        ds = Potsdam(potsdam_root, "val")
        assert ds.split == "test"
        assert [Path(t[0]).name for t in ds.tiles] == ["top_potsdam_2_13_RGB.tif", "top_potsdam_7_13_RGB.tif"]

    def test_every_colour_maps_to_its_class(self, potsdam_root: Path) -> None:
        sample = Potsdam(potsdam_root, "train", crop_size=None)[0]
        rgb = read_rgb(potsdam_root / "5_Labels_all" / "top_potsdam_2_10_label.tif")
        mask = sample["mask"].numpy()
        for index, colour in enumerate(ISPRS_PALETTE):
            where = (rgb == colour).all(axis=2)
            assert where.any(), ISPRS_CLASSES[index]
            assert (mask[where] == index).all(), ISPRS_CLASSES[index]
        assert (mask != 255).all()  # full labels: no boundary pixels

    def test_eroded_boundaries_are_ignored_not_clutter(self, potsdam_root: Path) -> None:
        full = Potsdam(potsdam_root, "train", crop_size=None)[0]["mask"]
        eroded = Potsdam(potsdam_root, "train", crop_size=None, labels="eroded")[0]["mask"]
        rgb = read_rgb(potsdam_root / "5_Labels_all_noBoundary" / "top_potsdam_2_10_label_noBoundary.tif")
        black = torch.from_numpy((rgb == 0).all(axis=2))
        assert black.any()
        assert (eroded[black] == 255).all()
        assert torch.equal(eroded[~black], full[~black])
        assert int((eroded == 5).sum()) == int((full[~black] == 5).sum())

    def test_clutter_can_be_ignored(self, potsdam_root: Path) -> None:
        full = Potsdam(potsdam_root, "train", crop_size=None)[0]["mask"]
        ignored = Potsdam(potsdam_root, "train", crop_size=None, clutter="ignore")[0]["mask"]
        assert (full == 5).any()
        assert torch.equal(ignored, torch.where(full == 5, 255, full))

    def test_bands(self, potsdam_root: Path) -> None:
        rgb = Potsdam(potsdam_root, "train", crop_size=None)[0]["image"]
        irrg = Potsdam(potsdam_root, "train", crop_size=None, bands="IRRG")[0]["image"]
        rgbir = Potsdam(potsdam_root, "train", crop_size=None, bands="RGBIR")[0]["image"]
        assert rgbir.shape == (4, 40, 40)
        assert torch.equal(rgb, rgbir[:3])
        assert torch.equal(irrg, rgbir[[3, 0, 1]])

    def test_rgb_from_rgbir_when_not_unzipped(self, fake, potsdam_root: Path) -> None:
        import shutil

        root = fake("potsdam")
        shutil.rmtree(root / "2_Ortho_RGB")
        ds = Potsdam(root, "train", crop_size=None)
        assert "4_Ortho_RGBIR" in ds[0]["path"]
        assert torch.equal(ds[0]["image"], Potsdam(potsdam_root, "train", crop_size=None)[0]["image"])

    def test_labels_flat_in_the_folder(self, fake) -> None:
        root = fake("potsdam")
        for p in (root / "5_Labels_all").iterdir():
            p.rename(root / p.name)
        (root / "5_Labels_all").rmdir()
        assert len(Potsdam(root, "test")) == 2

    def test_missing_label_names_the_tile(self, fake) -> None:
        root = fake("potsdam")
        (root / "5_Labels_all" / "top_potsdam_6_7_label.tif").unlink()
        with pytest.raises(InputError, match="no full label for tile 6_7"):
            Potsdam(root, "train")

    def test_missing_root(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="no such folder") as err:
            Potsdam(tmp_path / "nope")
        assert str(tmp_path / "nope") in err.value.message

    def test_wrong_folder(self, data_dir: Path) -> None:
        with pytest.raises(InputError, match="does not look like potsdam: expected 2_Ortho_RGB"):
            Potsdam(data_dir / "loveda")

    def test_invalid_split(self, potsdam_root: Path) -> None:
        with pytest.raises(InputError, match="valid splits: train, test"):
            Potsdam(potsdam_root, "trainval")

    def test_invalid_options(self, potsdam_root: Path) -> None:
        with pytest.raises(InputError, match="bands"):
            Potsdam(potsdam_root, bands="NIR")
        with pytest.raises(InputError, match="labels must be"):
            Potsdam(potsdam_root, labels="noBoundary")

    def test_truncated_file(self, fake) -> None:
        root = fake("potsdam")
        bad = truncate(root / "5_Labels_all" / "top_potsdam_6_7_label.tif")
        with pytest.raises(InputError) as err:
            get_dataset("potsdam", root, "train")[1]
        assert err.value.path == str(bad)


class TestVaihingen:
    def test_getitem_and_len(self, vaihingen_root: Path) -> None:
        ds = Vaihingen(vaihingen_root, "train", crop_size=32)
        # area1 40 x 56 -> rows {0, 8} x cols {0, 16, 24}; area3 48 x 36 -> rows {0, 16} x cols {0, 4}
        assert len(ds) == 6 + 4
        sample = ds[0]
        assert sample["image"].shape == (3, 32, 32) and sample["mask"].shape == (32, 32)
        assert sample["path"].endswith("top/top_mosaic_09cm_area1.tif")
        assert [s["window"] for s in (ds[i] for i in range(3))] == [(0, 0, 32, 32), (16, 0, 32, 32), (24, 0, 32, 32)]
        assert len(Vaihingen(vaihingen_root, "test")) == 2

    def test_image_and_label_with_the_same_name(self, vaihingen_root: Path) -> None:
        ds = Vaihingen(vaihingen_root, "test", crop_size=None)
        image, label, _ = ds.tiles[0]
        assert image.name == label.name == "top_mosaic_09cm_area2.tif"
        assert image.parent.name == "top" and label.parent == vaihingen_root

    def test_colours_and_absent_class(self, vaihingen_root: Path) -> None:
        ds = Vaihingen(vaihingen_root, "test", crop_size=None)
        for i in range(len(ds)):
            mask = ds[i]["mask"].numpy()
            rgb = read_rgb(ds.tiles[i][1])
            for index, colour in enumerate(ISPRS_PALETTE):
                assert (mask[(rgb == colour).all(axis=2)] == index).all()
            assert not (mask == 4).any()  # car is absent from the test split

    def test_eroded(self, vaihingen_root: Path) -> None:
        ds = Vaihingen(vaihingen_root, "train", crop_size=None, labels="eroded")
        assert ds.tiles[0][1].name == "top_mosaic_09cm_area1_noBoundary.tif"
        mask = ds[0]["mask"]
        assert (mask == 255).any() and int(mask[mask != 255].max()) == 5

    def test_wrong_folder(self, data_dir: Path) -> None:
        with pytest.raises(InputError, match="does not look like vaihingen: expected top/top_mosaic_09cm_area"):
            Vaihingen(data_dir / "potsdam")

    def test_truncated_image(self, fake) -> None:
        root = fake("vaihingen")
        bad = truncate(root / "top" / "top_mosaic_09cm_area38.tif")
        with pytest.raises(InputError) as err:
            Vaihingen(root, "test")[1]
        assert err.value.path == str(bad)


def test_window_reads_only_the_window(potsdam_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A crop must never decode the whole tile: every read asks rasterio for the window alone.
    seen = []
    real = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("window"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    Potsdam(potsdam_root, "train", crop_size=16, stride=16)[0]
    assert seen and all(w is not None and (w.width, w.height) == (16, 16) for w in seen)
    assert np.all([w.col_off == 0 and w.row_off == 0 for w in seen])


def test_s5_protocol_window_counts() -> None:
    from s5cli.datasets.base import tile_windows

    # S5's Potsdam crops: 529 train windows (512, stride 256) and 144 test windows per 6000 px tile.
    assert len(tile_windows(6000, 6000, 512, 256)) == 529
    assert len(tile_windows(6000, 6000, 512, 512)) == 144
    assert tile_windows(6000, 6000, 512, 512)[11] == (5488, 0, 512, 512)


def test_dataloader_with_workers(potsdam_root: Path) -> None:
    from torch.utils.data import DataLoader

    from s5cli.datasets.augment import segmentation_augment
    from s5cli.datasets.collate import collate_segmentation

    ds = Potsdam(potsdam_root, "train", crop_size=32, transforms=segmentation_augment(24))
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_segmentation)
    batches = list(loader)
    assert [b["image"].shape for b in batches] == [(4, 3, 24, 24)] * 2
    assert all(b["mask"].dtype == torch.int64 and b["dataset"] == ["potsdam"] * 4 for b in batches)
