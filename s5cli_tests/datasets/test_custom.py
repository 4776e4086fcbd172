from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
import yaml
from pandas import concat as pd_concat
from shapely.geometry import Polygon, box

from s5cli.datasets.custom import CustomDataset, custom_info
from s5cli.datasets.registry import dataset_info, get_dataset
from s5cli.errors import ConfigError, InputError
from s5cli_tests import scenes

X0, Y0, GSD = 500_000.0, 5_800_000.0, 0.5  # scenes.make_scene: top-left corner and pixel size (EPSG:32633)


def pixel_box(col0: float, row0: float, col1: float, row1: float) -> Polygon:
    return box(X0 + GSD * col0, Y0 - GSD * row1, X0 + GSD * col1, Y0 - GSD * row0)


@pytest.fixture()
def project(tmp_path: Path):
    """Two 96 x 80 scenes (4 px nodata border) and labels stored in EPSG:4326 (so they get reprojected)."""
    scenes.make_scene(tmp_path / "north.tif", seed=1)
    scenes.make_scene(tmp_path / "south.tif", seed=2)
    frame = gpd.GeoDataFrame(
        {
            "kind": ["building", "Road", "building"],
            "geometry": [
                pixel_box(8, 4 + 2, 20, 14 + 2),  # inside window (0, 0)
                pixel_box(40, 0, 44, 80),  # a north-south road across windows
                Polygon(
                    [
                        (X0 + GSD * 80, Y0 - GSD * 50),
                        (X0 + GSD * 86, Y0 - GSD * 56),
                        (X0 + GSD * 80, Y0 - GSD * 62),
                        (X0 + GSD * 74, Y0 - GSD * 56),
                    ]
                ),  # a diamond
            ],
        },
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")
    frame.to_file(tmp_path / "labels.geojson", driver="GeoJSON")

    def write(name: str = "data.yaml", labels: str = "labels.geojson", **extra):
        cfg = {
            "name": "mytown",
            "classes": ["background", "building", "road"],
            "scenes": [{"path": "north.tif", "split": "train"}, {"path": "south.tif", "split": "val"}],
            "labels": labels,
            "class_column": "kind",
            "tile_size": 32,
        }
        cfg.update(extra)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


def test_segmentation_windows_and_rasterised_labels(project) -> None:
    ds = get_dataset("custom", project(background="background"), "train")
    assert len(ds) == 9  # 96 x 80 at 32: cols {0, 32, 64} x rows {0, 32, 48}
    sample = ds[0]
    assert set(sample) == {"image", "mask", "dataset", "path", "window"}
    assert sample["dataset"] == "mytown" and sample["window"] == (0, 0, 32, 32)
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    mask = sample["mask"]
    assert mask.dtype == torch.int64 and mask.shape == (32, 32)
    expected = torch.zeros((32, 32), dtype=torch.int64)
    expected[6:16, 8:20] = 1
    expected[:4, :] = 255  # the nodata border of make_scene
    expected[:, :4] = 255
    assert torch.equal(mask, expected)
    road = ds[1]["mask"]  # window (32, 0): the road covers cols 40..44 -> 8..12 in the window
    assert (road[4:, 8:12] == 2).all() and (road[4:, :8] == 0).all() and (road[:4] == 255).all()


def test_unlabeled_pixels_ignored_without_background(project) -> None:
    mask = CustomDataset(project(), "train")[0]["mask"]
    assert set(mask.unique().tolist()) == {1, 255}


@pytest.mark.parametrize("suffix", ["gpkg", "shp"])
def test_geopackage_and_shapefile(project, tmp_path: Path, suffix: str) -> None:
    gpd.read_file(tmp_path / "labels.geojson").to_file(tmp_path / f"labels.{suffix}")
    ds = CustomDataset(project(labels=f"labels.{suffix}", background="background"), "val")
    assert int((ds[0]["mask"] == 1).sum()) == 120


def test_detection_boxes(project) -> None:
    ds = CustomDataset(project(task="detection"), "train")
    first = ds[0]
    assert set(first) == {"image", "polygons", "labels", "difficult", "truncated", "dataset", "path", "window"}
    assert first["labels"].tolist() == [1]
    assert np.allclose(first["polygons"].numpy(), [[8, 6, 20, 6, 20, 16, 8, 16]], atol=1e-3)
    diamond = ds[8]  # window (64, 48): the diamond centred on (80, 56) -> (16, 8)
    assert diamond["window"] == (64, 48, 32, 32)
    assert diamond["labels"].tolist() == [1]
    corners = sorted(map(tuple, np.round(diamond["polygons"].numpy().reshape(4, 2), 3).tolist()))
    assert corners == [(10.0, 8.0), (16.0, 2.0), (16.0, 14.0), (22.0, 8.0)]
    road = ds[1]  # the road is cut by the window: 32 of 80 rows inside (iof 0.4) -> dropped at min_iof 0.7
    assert road["labels"].tolist() == []
    assert dataset_info("custom", project(task="detection")).metric == "mAP"


def test_split_by_fraction(project) -> None:
    path = project(split_by="fraction", val_fraction=0.25)
    train, val = CustomDataset(path, "train"), CustomDataset(path, "val")
    assert (len(train), len(val)) == (14, 4)  # 18 cells, round(4.5) = 4 to val, one window each
    assert not {(s, w) for s, w, _ in train.index} & {(s, w) for s, w, _ in val.index}
    assert len(CustomDataset(path, "val", scoring=True)) == 4  # scored on the same 4 cells


def test_info_and_head(project) -> None:
    info = custom_info(project())
    assert info.name == "mytown" and info.classes == ("background", "building", "road")
    from s5cli.models.spec import HeadSpec

    head = HeadSpec.from_dataset(info)
    assert head.name == "mytown" and head.num_classes == 3 and len(head.palette) == 3
    from s5cli.datasets.info import NEUTRAL

    assert info.palette[0] == NEUTRAL  # a class named background is neutral grey without a `background:` key


def test_errors(project, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'tilesize'"):
        CustomDataset(project(tilesize=64))
    with pytest.raises(InputError, match="no column 'class'; columns: kind"):
        CustomDataset(project(class_column="class"))
    with pytest.raises(InputError, match="class values not in the YAML's classes: Road"):
        CustomDataset(project(classes=["background", "building"]))
    with pytest.raises(InputError, match="background 'grass' is not one of the classes"):
        CustomDataset(project(background="grass"))
    scenes.make_scene(tmp_path / "nocrs.tif", crs=None)
    with pytest.raises(InputError, match="has no CRS"):
        CustomDataset(project(scenes=["nocrs.tif"]))
    with pytest.raises(InputError, match="a custom dataset is given by its YAML file"):
        CustomDataset(tmp_path)
    with pytest.raises(InputError, match="no such label file"):
        CustomDataset(project(labels="missing.gpkg"))


def test_pixel_format_records_bands_scale_dtype_and_gsd(tmp_path: Path) -> None:
    from s5cli.datasets.custom_config import custom_pixel_format

    for name in ("a", "b"):  # 12-bit data stored in uint16, 4 bands, 0.3 m pixels
        scenes.make_scene(tmp_path / f"{name}.tif", bands=4, dtype="uint16", gsd=0.3)
    gpd.GeoDataFrame({"class": ["x"]}, geometry=[pixel_box(2, 2, 9, 9)], crs="EPSG:32633").to_file(tmp_path / "l.gpkg")
    base = {"classes": ["background", "x"], "scenes": ["a.tif", "b.tif"], "labels": "l.gpkg", "tile_size": 32}
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text(yaml.safe_dump({**base, "bands": [2, 3, 4], "scale": 4095}))
    fmt = custom_pixel_format(chosen)
    assert (fmt.bands, fmt.names, fmt.scale, fmt.dtype) == ((2, 3, 4), ("band2", "band3", "band4"), 4095.0, "uint16")
    assert fmt.gsd == pytest.approx(0.3) and fmt.origin == str(chosen)
    ds = CustomDataset(chosen)  # and the loader reads exactly that: band 2 of the raster / 4095 is channel 0
    with rasterio.open(tmp_path / "a.tif") as src:
        raw = src.read(2, window=rasterio.windows.Window(0, 0, 32, 32))
    assert torch.allclose(ds[0]["image"][0], torch.from_numpy(raw / 4095.0).float().clamp(0, 1))
    every = tmp_path / "every.yaml"
    every.write_text(yaml.safe_dump(base))
    fmt = custom_pixel_format(every)
    assert fmt.bands == (1, 2, 3, 4) and fmt.scale == 65535.0  # no `scale:`: the dtype's maximum, as the loader
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base, "bands": [2, 5]}))
    with pytest.raises(InputError, match="band 5 but the scenes have 4"):
        custom_pixel_format(bad)
    scenes.make_scene(tmp_path / "c.tif", bands=4, dtype="uint8")
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump({**base, "scenes": ["a.tif", "c.tif"]}))
    with pytest.raises(InputError, match=r"mix data types \(uint16, uint8\): set `scale:`"):
        custom_pixel_format(mixed)


def test_wgs84_labels_over_scenes_in_two_utm_zones(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    from s5cli.datasets.custom_config import custom_pixel_format

    parts = []
    for name, epsg, seed in (("west", 32632, 1), ("east", 32633, 2)):
        scenes.make_scene(tmp_path / f"{name}.tif", crs=CRS.from_epsg(epsg), seed=seed, nodata_border=0)
        one = gpd.GeoDataFrame({"kind": ["building"]}, geometry=[pixel_box(8, 8, 24, 20)], crs=f"EPSG:{epsg}")
        parts.append(one.to_crs("EPSG:4326"))
    labels = gpd.GeoDataFrame(pd_concat(parts), crs="EPSG:4326")
    labels.to_file(tmp_path / "labels.geojson", driver="GeoJSON")
    path = tmp_path / "zones.yaml"
    cfg = {"classes": ["background", "building"], "scenes": ["west.tif", "east.tif"], "labels": "labels.geojson"}
    path.write_text(yaml.safe_dump({**cfg, "class_column": "kind", "background": "background", "tile_size": 32}))
    ds = CustomDataset(path)
    first_of = {ds.scenes[s].name: i for i, (s, w, _) in reversed(list(enumerate(ds.index))) if w[:2] == (0, 0)}
    for name in ("west.tif", "east.tif"):  # each scene gets its own building, reprojected from WGS84 to its zone
        mask = ds[first_of[name]]["mask"]
        assert int((mask == 1).sum()) == 16 * 12 and bool((mask[8:20, 8:24] == 1).all())
    assert custom_pixel_format(path).gsd == pytest.approx(0.5)


def _valid_pixels(path: Path) -> int:
    """Pixels of a scene that are not nodata in any band: what scoring may count."""
    import rasterio

    from s5cli.geo.raster import read_window

    with rasterio.open(path) as src:
        return int(read_window(src, rasterio.windows.Window(0, 0, src.width, src.height))[1].sum())


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_scoring_cells_count_every_pixel_of_the_scene_once(project, tmp_path: Path, overlap: float) -> None:
    path = project(background="background", overlap=overlap)
    windows = CustomDataset(path, "val")  # training windows: the last ones snap back and overlap
    cells = CustomDataset(path, "val", scoring=True)
    valid = _valid_pixels(tmp_path / "south.tif")
    assert sum(int((s["mask"] != 255).sum()) for s in windows) > valid
    assert len(cells) == 9 and sum(int((s["mask"] != 255).sum()) for s in cells) == valid
    sample = cells[8]  # the last cell: cols 64-96, rows 64-80, read through the window snapped to (64, 48)
    assert sample["window"] == (64, 48, 32, 32) and sample["region"] == (0, 16, 32, 32)
    assert sample["image"].shape == (3, 32, 32) and (sample["mask"][:16] == 255).all()


def _scattered_objects(tmp_path: Path, n: int = 40) -> int:
    """n buildings over the val scene (many across cell borders) and one outside it; labels rewritten."""
    rng = np.random.default_rng(3)
    boxes = [pixel_box(c, r, c + w, r + h) for c, r, w, h in zip(
        rng.uniform(-6, 90, n), rng.uniform(-6, 74, n), rng.uniform(3, 14, n), rng.uniform(3, 14, n)
    )]  # fmt: skip
    boxes.append(pixel_box(200, 200, 210, 210))  # beyond the scene: not one of its objects
    frame = gpd.GeoDataFrame({"kind": ["building"] * len(boxes), "geometry": boxes}, crs="EPSG:32633")
    frame.to_file(tmp_path / "objects.geojson", driver="GeoJSON")
    return n


def test_scoring_cells_count_every_object_of_the_scene_once(project, tmp_path: Path) -> None:
    n = _scattered_objects(tmp_path)
    path = project(task="detection", labels="objects.geojson", overlap=0.5)
    windows = CustomDataset(path, "val")
    cells = CustomDataset(path, "val", scoring=True)
    assert sum(len(s["labels"]) for s in windows) != n  # cut at min_iof and repeated by the overlap
    scored = sum(int((~s["difficult"]).sum()) for s in cells)
    assert scored == n
    assert all((s["polygons"].numpy() >= -1e-3).all() and (s["polygons"].numpy() <= 32 + 1e-3).all() for s in cells)


def test_evaluate_scores_each_pixel_of_a_custom_dataset_once(runner, project, tmp_path: Path) -> None:
    import json

    from s5cli.cli import app
    from s5cli.models.spec import HeadSpec
    from s5cli_tests.reliability.helpers import build_checkpoint

    seg = project(background="background", overlap=0.5)
    head = HeadSpec.from_dataset(custom_info(seg), 32)
    ckpt = build_checkpoint(tmp_path / "seg.pt", [head], tile=32)
    result = runner.invoke(app, ["evaluate", str(ckpt), "--datasets", str(seg), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["datasets"][0]["per_class"]
    assert sum(r["num_gt"] for r in rows) == sum(r["num_det"] for r in rows) == _valid_pixels(tmp_path / "south.tif")
    # without --datasets: a head of your own data needs its YAML, and the error names the one it was trained with
    result = runner.invoke(app, ["evaluate", str(ckpt)])
    assert result.stderr.splitlines() == [
        f"error: {ckpt}: the mytown head was trained on your own data: pass the dataset YAML with --datasets"
    ]
    saved = torch.load(ckpt, weights_only=True)
    torch.save({**saved, "config": {"datasets": [str(seg)]}}, ckpt)
    result = runner.invoke(app, ["evaluate", str(ckpt)])
    assert result.exit_code == 2 and result.stderr.strip().endswith(f"--datasets; it was trained with {seg}")


def test_evaluate_scores_each_object_of_a_custom_detection_dataset_once(runner, project, tmp_path: Path) -> None:
    import json

    from s5cli.cli import app
    from s5cli.models.spec import HeadSpec
    from s5cli_tests.reliability.helpers import build_checkpoint

    n = _scattered_objects(tmp_path)
    det = project("det.yaml", task="detection", labels="objects.geojson", overlap=0.5, tile_size=64)
    narrow = {"fc_channels": 32, "fpn_channels": 32}
    head = HeadSpec.from_dataset(custom_info(det), 64, options=narrow)
    ckpt = build_checkpoint(tmp_path / "det.pt", [head], tile=64)
    result = runner.invoke(app, ["evaluate", str(ckpt), "--datasets", str(det), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["datasets"][0]["per_class"]
    assert sum(r["num_gt"] for r in rows) == n
