"""Data that cannot be used as it is: label/image size mismatches, manifests of the wrong types, custom datasets
whose labels fit no scene, corrupt tiles, FIFOs, complex pixels, paths no GDAL call could take.

Each case runs through the CLI: exit 2 with one error line (warnings may precede it under -q) and an empty
destination, or exit 0 with the stated warning and a right output.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
import yaml
from PIL import Image
from shapely.geometry import LineString, Point, box

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import (
    REPO,
    build_checkpoint,
    empty,
    invoke,
    last_line_error,
    one_line_error,
    pretrain_on_manifest,
    succeeded,
)

FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"


def _finetune(runner, data_root: Path, datasets: str, out: Path):
    args = ["--config", FINETUNE_TINY, "--datasets", datasets, "--data-root", data_root, "-o", out]
    return invoke(runner, "-q", "finetune", *args, "--iterations", 1, "--eval-every", 0)


# ---- labels whose size differs from their image --------------------------------------------------------


def _shrink_png(path: Path) -> None:
    with Image.open(path) as img:
        img.crop((0, 0, 16, 16)).save(path)


def _shrink_tif(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ISPRS labels carry no georeferencing
        with rasterio.open(path) as src:
            data, profile = src.read(window=((0, 16), (0, 16))), src.profile
        profile.update(width=16, height=16, tiled=False)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


# dataset -> (label files to shrink, the command that used to train or score silently, or crash)
MISMATCHED = {
    "loveda": ("Train/*/masks_png/*.png", "finetune"),
    "potsdam": ("5_Labels_all/*.tif", "finetune"),
    "openearthmap": ("OpenEarthMap_wo_xBD/*/labels/*.tif", "evaluate"),
    "isaid": ("*/images/*_instance_color_RGB.png", "evaluate"),
}


@pytest.mark.parametrize("name", list(MISMATCHED))
def test_labels_of_another_size_than_their_image(runner, tmp_path: Path, dataset_copy, name: str) -> None:
    from s5cli.datasets.registry import DATASETS
    from s5cli.models.spec import HeadSpec

    pattern, command = MISMATCHED[name]
    root = dataset_copy(name)
    for label in root.glob(pattern):
        (_shrink_png if label.suffix == ".png" else _shrink_tif)(label)
    out = tmp_path / "out"
    if command == "finetune":
        result = _finetune(runner, root.parent, name, out / "run")
    else:
        head = HeadSpec(name=name, classes=list(DATASETS[name].head_classes))
        ckpt = build_checkpoint(tmp_path / "ckpts" / f"{name}.pt", [head])
        args = [ckpt, "--datasets", name, "--data-root", root.parent, "-o", out / "m.csv"]
        result = invoke(runner, "-q", "evaluate", *args)
    line = last_line_error(result, "the label is 16x16 px but its image ")
    assert str(root) in line and " px" in line.split("its image ")[1]  # names the label and its image
    empty(out)


# ---- manifests -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small curated corpus (4 kept chips of 32 px), made once."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("corpus")
    scene = scenes.make_scene(folder / "s.tif", width=64, height=64, nodata_border=0)
    succeeded(invoke(CliRunner(), "curate", scene, "-o", folder / "corpus", "--chip-size", 32))
    return folder / "corpus"


def _retyped(corpus: Path, column: str, values: pa.Array) -> None:
    table = pq.read_table(corpus / "manifest.parquet")
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, values), corpus / "manifest.parquet")


def _rows(corpus: Path) -> int:
    return pq.read_metadata(corpus / "manifest.parquet").num_rows


MANIFESTS = {
    "no_kept_chip": (lambda c: _retyped(c, "kept", pa.array([False] * _rows(c))), "the corpus keeps no chip"),
    "path_of_integers": (
        lambda c: _retyped(c, "path", pa.array(list(range(_rows(c))), pa.int64())),
        "column 'path' holds int64 values, not text",
    ),
    "kept_of_strings": (
        lambda c: _retyped(c, "kept", pa.array(["yes"] * _rows(c))),
        "column 'kept' holds string values, not bool",
    ),
    "nul_in_a_path": (
        lambda c: _retyped(c, "path", pa.array(["images/a\x00.tif"] * _rows(c))),
        "images/a\\x00.tif: holds a NUL byte",
    ),
}


@pytest.mark.parametrize("case", list(MANIFESTS))
def test_manifests_of_the_wrong_types(runner, tmp_path: Path, corpus_template: Path, case: str) -> None:
    edit, fragment = MANIFESTS[case]
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_template, corpus)
    edit(corpus)
    out = tmp_path / "out"
    last_line_error(pretrain_on_manifest(runner, corpus / "manifest.parquet", out / "run"), fragment)
    empty(out)


# ---- custom datasets -------------------------------------------------------------------------------------

X0, Y0, GSD = 500_000.0, 5_800_000.0, 0.5  # scenes.make_scene: top-left corner and pixel size (EPSG:32633)


def _project(tmp: Path, geometries: list, crs: str | None = "EPSG:32633", driver: str = "GPKG", **extra) -> Path:
    """A custom dataset YAML over one 96 x 80 scene (train and val windows) and the given label features."""
    scenes.make_scene(tmp / "scene.tif", seed=1)
    frame = gpd.GeoDataFrame({"kind": ["building"] * len(geometries)}, geometry=geometries, crs=crs)
    labels = tmp / ("labels.gpkg" if driver == "GPKG" else "labels.geojson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio warns when it writes a file without a CRS, as asked
        frame.to_file(labels, driver=driver)
    cfg = {
        "name": "mytown",
        "classes": ["background", "building"],
        "scenes": ["scene.tif"],
        "labels": labels.name,
        "class_column": "kind",
        "tile_size": 32,
        "split_by": "fraction",
        "val_fraction": 0.3,
        **extra,
    }
    path = tmp / "mytown.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _utm_box(col0: float, row0: float, col1: float, row1: float):
    return box(X0 + GSD * col0, Y0 - GSD * row1, X0 + GSD * col1, Y0 - GSD * row0)


def _custom_cases(tmp: Path) -> dict[str, tuple[list, dict, str]]:
    """case -> (label features, dataset YAML changes, the error line) of custom datasets no run can use."""
    labels, geojson = tmp / "labels.gpkg", tmp / "labels.geojson"
    building = _utm_box(8, 8, 20, 20)
    point, line = Point(X0 + 10, Y0 - 10), LineString([(X0 + 2, Y0 - 2), (X0 + 20, Y0 - 20)])
    far_away = box(X0 + 10_000, Y0 - 10_000, X0 + 10_020, Y0 - 9_980)  # 10 km east of the scene
    return {
        "detection_of_points_and_lines": (
            [building, point, line],
            {"task": "detection"},
            f"error: {labels}: 2 feature(s) are LineString, Point; "
            "a detection dataset needs Polygon or MultiPolygon features",
        ),
        "class_named_twice": (
            [building],
            {"classes": ["background", "building", "Building"]},
            f"error: {tmp / 'mytown.yaml'}: class 'Building' is named twice (as 'building' too)",
        ),
        # UTM coordinates written with no CRS: GeoJSON readers take them as WGS84 longitudes and latitudes.
        "geojson_without_a_crs_over_utm": (
            [building],
            {"crs": None, "driver": "GeoJSON"},
            f"error: {geojson}: coordinates (500004, 5.79999e+06, 500010, 5.8e+06) are not "
            "longitude/latitude, but the file says EPSG:4326 (a GeoJSON without a CRS is read as WGS84): "
            "save the labels with their CRS",
        ),
        "labels_on_no_scene": (
            [far_away],
            {},
            f"error: {labels}: the labels cover none of the scene {tmp / 'scene.tif'} (check their CRS and extent)",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["detection_of_points_and_lines", "class_named_twice", "geojson_without_a_crs_over_utm", "labels_on_no_scene"],
)
def test_custom_datasets_no_run_can_use(runner, tmp_path: Path, case: str) -> None:
    features, changes, expected = _custom_cases(tmp_path)[case]
    frame = {k: changes.pop(k) for k in ("crs", "driver") if k in changes}
    project = _project(tmp_path, features, **frame, **changes)
    out = tmp_path / "out"
    assert last_line_error(_finetune(runner, tmp_path, str(project), out / "run")) == expected
    empty(out)


def test_empty_and_null_geometries_are_dropped_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from shapely.geometry import Polygon

    from s5cli.datasets.registry import get_dataset

    project = _project(tmp_path, [_utm_box(8, 8, 20, 20), Polygon(), None])
    code = f"from s5cli.datasets.registry import get_dataset; print(len(get_dataset('custom', {str(project)!r})))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: {tmp_path / 'labels.gpkg'}: 2 feature(s) with an empty or NULL geometry left out"
    ]  # one line, not geopandas' UserWarning with its source line
    assert len(get_dataset("custom", project)) > 0


# ---- corrupt tiles in curate --------------------------------------------------------------------------------


def _corrupt_tiles(path: Path, tiles: list[tuple[int, int]] | None = None) -> Path:
    """Overwrite the compressed bytes of some 16 px tiles (all of them when None) of a tiled GeoTIFF."""
    with rasterio.open(path) as src:
        rows, cols = src.height // 16, src.width // 16
        where = []
        for row, col in tiles if tiles is not None else [(r, c) for r in range(rows) for c in range(cols)]:
            for band in range(1, src.count + 1):
                offset = int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band))
                size = int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band))
                where.append((offset, size))
    data = bytearray(path.read_bytes())
    for offset, size in where:
        data[offset : offset + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    return path


def test_curate_counts_windows_lost_to_a_corrupt_tile(runner, tmp_path: Path) -> None:
    scene = _corrupt_tiles(scenes.make_scene(tmp_path / "s.tif", width=64, height=64, nodata_border=0), [(0, 0)])
    result = invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 32, "--json")
    succeeded(result)
    summary = json.loads(result.stdout)
    assert (summary["chips"], summary["kept"], summary["lost_windows"], summary["failed_scenes"]) == (4, 3, 1, 0)
    assert summary["reasons"]["unreadable"] == 1
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {scene}: 1 of 4 windows unreadable, left out")


def test_curate_fails_when_no_scene_can_be_read(runner, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    whole = _corrupt_tiles(scenes.make_scene(tmp_path / "in" / "bad.tif", width=64, height=64, nodata_border=0))
    out = tmp_path / "out"
    line = last_line_error(invoke(runner, "curate", whole, "-o", out / "corpus", "--chip-size", 32))
    assert line.startswith(f"error: none of the 1 scene(s) could be read (first: {whole}: no window of the scene")
    empty(out)
    # Beside a good scene, the unreadable one counts in failed_scenes and the corpus holds the good one.
    good = scenes.make_scene(tmp_path / "in" / "good.tif", width=64, height=64, nodata_border=0)
    result = invoke(runner, "curate", good, whole, "-o", out / "corpus", "--chip-size", 32, "--json")
    succeeded(result)
    summary = json.loads(result.stdout)
    assert (summary["scenes"], summary["failed_scenes"], summary["kept"]) == (2, 1, 4)


# ---- files that are not regular, pixels that are not real, paths that are not text -------------------------


def test_a_fifo_named_tif_is_refused_before_it_is_opened(runner, tmp_path: Path, ckpts) -> None:
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    for command, args in [
        ("predict", [fifo, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]]),
        ("curate", [fifo, "-o", out / "corpus"]),
    ]:
        line = one_line_error(invoke(runner, command, *args))  # returns at once: nothing blocks on the FIFO
        assert line == f"error: {fifo}: is not a regular file (a FIFO, socket or device?)"
    empty(out)


def test_complex_pixels_are_refused(runner, tmp_path: Path, ckpts) -> None:
    scene = tmp_path / "slc.tif"
    profile = dict(driver="GTiff", width=40, height=40, count=3, dtype="complex64", crs="EPSG:32633",
                   transform=rasterio.transform.from_origin(X0, Y0, GSD, GSD))  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write((np.ones((3, 40, 40)) * (1 + 2j)).astype(np.complex64))
    out = tmp_path / "out"
    fragment = "has complex pixels (complex64); convert them to real bands first (e.g. amplitude)"
    one_line_error(invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]), fragment)
    last_line_error(invoke(runner, "curate", scene, "-o", out / "corpus", "--chip-size", 32), fragment)
    empty(out)


NOT_UTF8 = os.fsdecode(b"sc\xffne.tif")  # how Python hands over a name holding a byte that is not UTF-8


def test_paths_that_are_not_utf8(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    odd = tmp_path / NOT_UTF8
    shutil.copy(scene, os.fsencode(odd))
    out = tmp_path / "out"
    refusal = "is not valid UTF-8 (GDAL and GeoPackage need UTF-8 names); rename it"
    shown = str(tmp_path / "sc\\xffne.tif")  # the byte, escaped: the line itself stays printable
    for command, args in [
        ("predict", [odd, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]]),
        ("curate", [odd, "-o", out / "corpus"]),
        ("predict", [scene, "-o", out / os.fsdecode(b"\xff.gpkg"), "--checkpoint", ckpts["seg"]]),
        ("curate", [scene, "-o", out / os.fsdecode(b"c\xff")]),
    ]:
        line = one_line_error(invoke(runner, command, *args), refusal)
        assert shown in line or "\\xff" in line, line
    # a folder walk meets the odd name: the same line, before any scene is tiled
    line = one_line_error(invoke(runner, "curate", tmp_path, "-o", out / "corpus"), refusal)
    assert shown in line
    empty(out)


def test_nul_bytes_in_path_options(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", f"{out}/o\x00.gpkg", "--checkpoint", ckpts["seg"])
    one_line_error(result, "Invalid value for '--output' / '-o': Value error, embedded null byte")  # Typer's Path
    result = invoke(runner, "predict", f"{scene}\x00", "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"])
    assert one_line_error(result) == "error: <options>: key 'scenes.0': holds a NUL byte"
    result = invoke(runner, "curate", f"{scene}\x00", "-o", out / "corpus")
    assert one_line_error(result) == f"error: {scene}\\x00: holds a NUL byte"
    empty(out)


def test_scene_names_that_are_reserved_geopackage_tables(runner, tmp_path: Path, ckpts) -> None:
    names = ["gpkg_contents.tif", "sqlite_master.tif", "rtree_x.tif"]
    (tmp_path / "in").mkdir()
    for k, name in enumerate(names):
        scenes.make_scene(tmp_path / "in" / name, width=40, height=40, seed=k)
    gpkg = tmp_path / "o.gpkg"
    succeeded(invoke(runner, "predict", tmp_path / "in", "-o", gpkg, "--checkpoint", ckpts["seg"]))
    layers = sorted(name for name, _ in pyogrio.list_layers(gpkg) if name != "layer_styles")  # QGIS's styles table
    assert layers == ["scene_gpkg_contents", "scene_rtree_x", "scene_sqlite_master"]
    assert all(pyogrio.read_info(gpkg, layer=layer)["features"] > 0 for layer in layers)


def test_the_predict_config_names_the_scenes(runner, tmp_path: Path, ckpts, monkeypatch) -> None:
    scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    config = tmp_path / "predict.yaml"
    config.write_text(f"scenes: [s.tif]\noutput: out/o.gpkg\ncheckpoint: {ckpts['seg']}\n")
    monkeypatch.chdir(tmp_path)
    succeeded(invoke(runner, "predict", "--config", config))  # no SCENES argument: the config's list
    assert pyogrio.read_info(tmp_path / "out" / "o.gpkg", layer="s")["features"] > 0
