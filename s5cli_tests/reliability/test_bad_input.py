"""Bad input through the CLI: each case is a one-line error (exit 2) or a stated warning with right output.

Never a traceback, never a partial output: every output goes to a fresh folder that must be empty (no
file, no hidden temp file) after an error.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import Affine, from_origin

from s5cli.datasets.benchmarks import POTSDAM
from s5cli.models.spec import HeadSpec
from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import (
    DATA,
    REPO,
    build_checkpoint,
    empty,
    invoke,
    last_line_error,
    one_line_error,
    snapshot,
    succeeded,
)

PRETRAIN_TINY = REPO / "configs" / "pretrain" / "tiny.yaml"
FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"
DEG = 0.5 / 111_320  # about 0.5 m of latitude, in degrees


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add contention on the shared 2-core machines."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- scenes ---------------------------------------------------------------------------------------


def _write(path: Path, width: int, height: int, crs: str | None, transform: Affine) -> Path:
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", transform=transform, nodata=0)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scenes.scene_array(width, height, 3, "uint8"))
    return path


ROTATED = Affine.translation(500_000, 5_800_000) * Affine.rotation(20) * Affine.scale(0.5, -0.5)


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BAD_SCENES: dict[str, Callable[[Path], Path]] = {
    "missing": lambda d: d / "missing.tif",
    "empty": lambda d: _empty_file(d / "empty.tif"),
    "truncated": lambda d: scenes.make_truncated(d / "truncated.tif", scenes.make_scene(d / "whole.tif")),
    "text_as_tif": lambda d: scenes.make_not_a_raster(d / "text.tif"),
}
BAD_SCENE_ERRORS = {
    "missing": "no such file",
    "empty": "is empty",
    "truncated": "cannot read",
    "text_as_tif": "not a readable raster",
}


@pytest.mark.parametrize("case", list(BAD_SCENES))
def test_predict_refuses_unreadable_scenes(runner, tmp_path: Path, ckpts, case: str) -> None:
    scene, out = BAD_SCENES[case](tmp_path), tmp_path / "out"
    outputs = ["-o", out / "o.gpkg", "--raster", out / "o.tif"]
    result = invoke(runner, "predict", scene, *outputs, "--checkpoint", ckpts["seg"])
    line = one_line_error(result, BAD_SCENE_ERRORS[case])
    assert str(scene) in line
    empty(out)


@pytest.mark.parametrize("case", ["missing", "empty", "text_as_tif"])
def test_curate_refuses_unreadable_scenes(runner, tmp_path: Path, case: str) -> None:
    scene = BAD_SCENES[case](tmp_path)
    line = one_line_error(invoke(runner, "curate", scene, "-o", tmp_path / "out" / "corpus"), BAD_SCENE_ERRORS[case])
    assert str(scene) in line
    empty(tmp_path / "out")


def test_curate_keeps_what_a_truncated_scene_still_holds(runner, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    good = scenes.make_scene(tmp_path / "in" / "good.tif", width=64, height=64, nodata_border=0)
    bad = scenes.make_truncated(tmp_path / "in" / "bad.tif", scenes.make_scene(tmp_path / "whole.tif"))
    result = invoke(runner, "curate", good, bad, "-o", tmp_path / "corpus", "--chip-size", 32, "--json")
    succeeded(result)
    summary = json.loads(result.stdout)
    # 9 windows of the 96 x 80 scene: its first third still reads (2 windows, in its nodata border), 7 do not
    assert (summary["scenes"], summary["failed_scenes"], summary["kept"]) == (2, 0, 4)
    assert (summary["chips"], summary["lost_windows"], summary["reasons"]["nodata"]) == (13, 7, 2)
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}: 7 of 9 windows unreadable, left out")
    chips = sorted(p.name for p in (tmp_path / "corpus" / "images").rglob("*.tif"))
    assert len(chips) == 4 and all(name.startswith("good-") for name in chips)


def test_wrong_band_count_for_the_checkpoint(runner, tmp_path: Path, ckpts) -> None:
    four = scenes.make_scene(tmp_path / "four.tif", bands=4, dtype="uint16")
    out = tmp_path / "out"
    one_line_error(
        invoke(runner, "predict", four, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]), "the checkpoint takes 3"
    )
    one_line_error(
        invoke(runner, "curate", four, "-o", out / "corpus", "--chip-size", 32, "--teacher", ckpts["seg"]),
        "the teacher takes 3",
    )
    four_bands = ckpts["four_bands"]  # red, green, blue, nir: Potsdam's RGBIR product, which evaluate then reads
    succeeded(invoke(runner, "evaluate", four_bands, "--datasets", "potsdam", "--data-root", DATA, "--json"))
    other = build_checkpoint(tmp_path / "swir.pt", [HeadSpec(name="potsdam", classes=list(POTSDAM.classes))],
                             bands=4, names=["red", "green", "blue", "swir"])  # fmt: skip
    last_line_error(  # the fake Potsdam has 2 of the 14 test tiles: a warning says so first
        invoke(runner, "evaluate", other, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "m.csv"),
        "the model takes (B, 4, H, W) images",
    )
    args = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--init", four_bands]
    last_line_error(invoke(runner, "-q", "finetune", *args, "-o", out / "run"), "the init checkpoint takes 4 bands")
    empty(out)
    # Three of the four bands, chosen by the user, are fine.
    succeeded(invoke(runner, "predict", four, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"], "-b", "1,2,3"))


def test_all_nodata_scene(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "blank.tif", width=70, height=70, nodata_border=70)
    gpkg, cog = tmp_path / "p" / "o.gpkg", tmp_path / "p" / "o.tif"
    result = invoke(runner, "predict", scene, "-o", gpkg, "--raster", cog, "--checkpoint", ckpts["seg"], "--json")
    succeeded(result)
    assert result.stderr.splitlines() == [f"warning: {scene}: every pixel is nodata; its outputs are valid but empty"]
    assert json.loads(result.stdout)["scenes"][0]["polygons"] == 0
    assert pyogrio.read_info(gpkg, layer="blank")["features"] == 0
    with rasterio.open(cog) as out:
        assert out.nodata == 255 and (out.read(1) == 255).all()
    # curate: every chip is dropped for nodata, and the summary says so
    result = invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 32, "--json")
    succeeded(result)
    summary = json.loads(result.stdout)
    assert (summary["chips"], summary["kept"], summary["reasons"]["nodata"]) == (9, 0, 9)


def test_crs_less_raster_keeps_its_grid_without_a_crs(runner, tmp_path: Path, ckpts) -> None:
    scene = _write(tmp_path / "nocrs.tif", 64, 48, None, from_origin(1000.0, 2000.0, 0.5, 0.5))
    gpkg, cog = tmp_path / "p" / "o.gpkg", tmp_path / "p" / "o.tif"
    args = ["-o", gpkg, "--raster", cog, "--checkpoint", ckpts["seg"], "--sieve", 0]
    result = invoke(runner, "predict", scene, *args)
    succeeded(result)
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: ")]
    note = "no CRS; outputs keep its geotransform but carry no CRS (area_m2 left empty)"
    assert warnings == [f"warning: {scene}: {note}"]
    frame = pyogrio.read_dataframe(gpkg)
    assert frame.crs is None and frame.area_m2.isna().all()
    assert tuple(frame.total_bounds) == (1000.0, 1976.0, 1032.0, 2000.0)  # on the scene's grid
    assert frame.geometry.area.sum() == pytest.approx(64 * 48 * 0.25)
    with rasterio.open(cog) as out:
        assert out.crs is None and out.transform == from_origin(1000.0, 2000.0, 0.5, 0.5)
    # A plain image (no transform either) is predicted in pixel coordinates.
    png = tmp_path / "photo.png"
    with rasterio.open(png, "w", driver="PNG", width=40, height=30, count=3, dtype="uint8") as dst:
        dst.write(scenes.scene_array(40, 30, 3, "uint8"))
    result = invoke(runner, "predict", png, "-o", tmp_path / "q.gpkg", "--checkpoint", ckpts["seg"], "--sieve", 0)
    succeeded(result)
    assert f"warning: {png}: no georeferencing; predicting in pixel coordinates (outputs carry no CRS)" in (
        result.stderr.splitlines()
    )
    assert tuple(pyogrio.read_dataframe(tmp_path / "q.gpkg").total_bounds) == (0, 0, 40, 30)
    # curate: chips without CRS, manifest rows without geometry
    result = invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 16, "--json")
    succeeded(result)
    manifest = _manifest(tmp_path / "corpus")
    kept = manifest[manifest.kept]
    assert len(kept) > 0 and kept.crs_name.isna().all() and kept.geometry.isna().all()


def _manifest(corpus: Path):
    import geopandas as gpd

    frame = gpd.read_parquet(corpus / "manifest.parquet")
    return frame.rename(columns={"crs": "crs_name"})


def test_geographic_scene_areas_in_true_square_metres(runner, tmp_path: Path, ckpts) -> None:
    scene = _write(tmp_path / "wgs84.tif", 64, 64, "EPSG:4326", from_origin(10.0, 60.0, DEG, DEG))
    gpkg = tmp_path / "p" / "o.gpkg"
    result = invoke(runner, "predict", scene, "-o", gpkg, "--checkpoint", ckpts["seg"], "--sieve", 0, "--gsd", "native")
    succeeded(result)
    frame = pyogrio.read_dataframe(gpkg)
    assert frame.crs.to_epsg() == 4326
    # 64 x 64 pixels of 0.5 m (north-south) by 0.5 m x cos(60 deg) (east-west)
    assert frame.area_m2.sum() == pytest.approx(64 * 64 * 0.5 * 0.25, rel=0.01)
    result = invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 32, "--json")
    succeeded(result)
    manifest = _manifest(tmp_path / "corpus")
    first = manifest.iloc[0]
    assert first.crs_name == "EPSG:4326" and first.gsd == pytest.approx(0.5 * np.sqrt(0.5), rel=0.01)
    with rasterio.open(tmp_path / "corpus" / first.path) as chip:
        assert chip.crs.to_epsg() == 4326 and chip.transform.almost_equals(from_origin(10.0, 60.0, DEG, DEG))


def test_rotated_geotransform_is_kept(runner, tmp_path: Path, ckpts) -> None:
    scene = _write(tmp_path / "rot.tif", 64, 48, "EPSG:32633", ROTATED)
    gpkg, cog = tmp_path / "p" / "o.gpkg", tmp_path / "p" / "o.tif"
    succeeded(invoke(runner, "predict", scene, "-o", gpkg, "--raster", cog, "--checkpoint", ckpts["seg"], "--sieve", 0))
    with rasterio.open(cog) as out:
        assert out.transform.almost_equals(ROTATED)
    frame = pyogrio.read_dataframe(gpkg)
    footprint = shapely.Polygon([ROTATED * (0, 0), ROTATED * (64, 0), ROTATED * (64, 48), ROTATED * (0, 48)])
    assert frame.union_all().symmetric_difference(footprint).area == pytest.approx(0, abs=1e-6)
    assert frame.area_m2.sum() == pytest.approx(64 * 48 * 0.25)
    succeeded(invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 32))
    manifest = _manifest(tmp_path / "corpus").set_index(["col", "row"])
    chip = manifest.loc[(32, 0)]
    with rasterio.open(tmp_path / "corpus" / chip.path) as src:
        assert src.transform.almost_equals(ROTATED * Affine.translation(32, 0))


# ---- datasets --------------------------------------------------------------------------------------


def _finetune(runner, data_root: Path, datasets: str, out: Path, *extra: object):
    args = ["--config", FINETUNE_TINY, "--datasets", datasets, "--data-root", data_root, "-o", out]
    return invoke(runner, "-q", "finetune", *args, "--iterations", 1, "--eval-every", 0, *extra)


def test_dataset_missing_half_its_label_files(runner, tmp_path: Path, dataset_copy, ckpts) -> None:
    potsdam = dataset_copy("potsdam")
    for path in sorted((potsdam / "5_Labels_all").iterdir())[:2]:  # 2_10 (train) and 2_13 (test) of 4 tiles
        path.unlink()
    out = tmp_path / "out"
    last_line_error(_finetune(runner, potsdam.parent, "potsdam", out / "run"), "no full label for tile 2_10")
    one_line_error(
        invoke(runner, "evaluate", ckpts["potsdam"], "--datasets", "potsdam", "--data-root", potsdam.parent,
               "-o", out / "m.csv"),
        "no full label for tile 2_13",
    )  # fmt: skip
    isaid = dataset_copy("isaid")
    for path in sorted(isaid.rglob("*_instance_color_RGB.png"))[::2]:
        path.unlink()
    args = ["--config", PRETRAIN_TINY, "--data-root", isaid.parent, "--unlabeled-folder", DATA / "million-aid"]
    last_line_error(invoke(runner, "-q", "pretrain", *args, "-o", out / "s4p"), "no colour mask")
    dior = dataset_copy("dior-r")
    for path in sorted((dior / "JPEGImages-trainval").iterdir())[::2]:
        path.unlink()
    last_line_error(_finetune(runner, dior.parent, "dior-r", out / "run"), "train images not found (first: 00001.jpg)")
    empty(out)


def test_dataset_missing_half_its_images_is_scored_on_the_rest_with_a_warning(
    runner, tmp_path: Path, dataset_copy, ckpts
) -> None:
    potsdam = dataset_copy("potsdam")
    for product in potsdam.glob("*_Ortho_*"):  # tile 2_13 (of the test tiles 2_13, 7_13) in every image product
        for path in product.glob("top_potsdam_2_13_*"):
            path.unlink()
    result = invoke(runner, "evaluate", ckpts["potsdam"], "--datasets", "potsdam", "--data-root", potsdam.parent,
                    "--json")  # fmt: skip
    succeeded(result)
    assert result.stderr.splitlines() == [
        f"warning: {potsdam}: 1 of the 14 potsdam test tiles found; the others are skipped"
    ]
    scored = json.loads(result.stdout)["datasets"][0]
    assert scored["images"] == 1  # one 40 px tile, one crop window


def test_unreadable_image_in_an_unlabeled_folder(runner, tmp_path: Path) -> None:
    folder = tmp_path / "unlabeled"
    shutil.copytree(DATA / "million-aid", folder, ignore=shutil.ignore_patterns("data.py"))
    (folder / "train" / "junk.jpg").write_text("not a JPEG")
    args = ["--config", PRETRAIN_TINY, "--data-root", DATA, "--unlabeled-folder", folder, "--iterations", 2]
    result = invoke(runner, "-q", "pretrain", *args, "--eval-every", 0, "-o", tmp_path / "out" / "run")
    last_line_error(result, "junk.jpg: not a readable image")
    empty(tmp_path / "out")  # the run failed before its first step: no run directory is left


MALFORMED_DIOR = {
    "truncated_xml": (lambda text: text[:300], "not a readable annotation XML"),
    "no_robndbox": (lambda text: text.replace("robndbox>", "bndbox>"), "without <robndbox>"),
    "text_corner": (lambda text: re.sub(r"<x_left_top>[^<]*<", "<x_left_top>four<", text), "non-numeric corner"),
    "unknown_class": (lambda text: re.sub(r"<name>[^<]*<", "<name>golf-course<", text), "class 'golf-course'"),
}


@pytest.mark.parametrize("case", list(MALFORMED_DIOR))
def test_malformed_dior_xml(runner, tmp_path: Path, dataset_copy, ckpts, case: str) -> None:
    edit, fragment = MALFORMED_DIOR[case]
    dior = dataset_copy("dior-r")
    for name in ("00001", "11726"):  # the first train and the first test image, both with objects
        xml = dior / "Annotations" / "Oriented Bounding Boxes" / f"{name}.xml"
        xml.write_text(edit(xml.read_text()))
    out = tmp_path / "out"
    workers = 1 if case == "truncated_xml" else 0  # once through a DataLoader worker process (slow to start)
    line = last_line_error(_finetune(runner, dior.parent, "dior-r", out / "run", "--workers", workers), fragment)
    assert ".xml" in line
    result = invoke(runner, "evaluate", ckpts["det"], "--datasets", "dior-r", "--data-root", dior.parent,
                    "-o", out / "m.csv", "--save-predictions", out / "pred")  # fmt: skip
    one_line_error(result, fragment)
    empty(out)


MALFORMED_DOTA = {
    "text_coordinate": ("2 2 12 2 12 x 2 10 plane 0", "line 3: expected 8 numbers"),
    "unknown_class": ("2 2 12 2 12 10 2 10 aeroplane 0", "line 3: class 'aeroplane'"),
    "text_difficulty": ("2 2 12 2 12 10 2 10 plane hard", "line 3: expected 8 numbers, a class and a difficulty"),
}


@pytest.mark.parametrize("case", list(MALFORMED_DOTA))
def test_malformed_dota_lines(runner, tmp_path: Path, dataset_copy, ckpts, case: str) -> None:
    bad, fragment = MALFORMED_DOTA[case]
    dota = dataset_copy("dota-v1.0")
    for split in ("train", "val"):
        for label in (dota / split / "labelTxt").glob("*.txt"):
            lines = label.read_text().splitlines()
            label.write_text("\n".join([*lines[:2], bad, *lines[2:]]) + "\n")  # after the two header lines
    out = tmp_path / "out"
    line = last_line_error(_finetune(runner, dota.parent, "dota-v1.0", out / "run"), fragment)
    assert "labelTxt" in line
    result = invoke(runner, "evaluate", ckpts["dota"], "--datasets", "dota-v1.0", "--data-root", dota.parent,
                    "-o", out / "m.csv")  # fmt: skip
    one_line_error(result, fragment)
    empty(out)


# ---- configs and checkpoints ----------------------------------------------------------------------


def test_unknown_config_keys(runner, tmp_path: Path, ckpts) -> None:
    out = tmp_path / "out"
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    cases = [
        ("predict", "tile_sise: 64\n", [scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]]),
        ("curate", "chip_sise: 64\n", [scene, "-o", out / "corpus"]),
        ("pretrain", PRETRAIN_TINY.read_text() + "iteratons: 3\n", ["-o", out / "run"]),
        ("finetune", FINETUNE_TINY.read_text() + "model:\n  presett: vit-b\n", ["-o", out / "run"]),
        ("evaluate", "datasets: [potsdam]\nmodee: crop\n", [ckpts["potsdam"], "-o", out / "m.csv"]),
    ]
    for command, text, args in cases:
        config = tmp_path / f"{command}.yaml"
        config.write_text(text)
        key = text.splitlines()[-1].split(":")[0].strip()
        line = one_line_error(invoke(runner, command, *args, "--config", config), "unknown key '")
        assert line.startswith(f"error: {config}: unknown key") and key in line, line
    empty(out)


def test_checkpoint_of_the_wrong_task(runner, tmp_path: Path, ckpts) -> None:
    out = tmp_path / "out"
    evaluate = ["--data-root", DATA, "-o", out / "m.csv"]
    one_line_error(
        invoke(runner, "evaluate", ckpts["det_as_seg"], "--datasets", "potsdam", *evaluate),
        "the potsdam head is a detection head but potsdam is a segmentation dataset",
    )
    one_line_error(
        invoke(runner, "evaluate", ckpts["seg_as_det"], "--datasets", "dior-r", *evaluate),
        "the dior-r head is a segmentation head but dior-r is a detection dataset",
    )
    one_line_error(
        invoke(runner, "evaluate", ckpts["det"], "--datasets", "potsdam", *evaluate),
        "no head for potsdam in this checkpoint; it has: dior-r",
    )
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    one_line_error(
        invoke(runner, "predict", scene, "--raster", out / "o.tif", "--checkpoint", ckpts["det"]),
        "head 'dior-r' detects objects: it writes -o OUT.gpkg, not --raster",
    )
    one_line_error(
        invoke(runner, "curate", scene, "-o", out / "corpus", "--teacher", ckpts["det"]),
        "the teacher needs a segmentation head",
    )
    one_line_error(invoke(runner, "export", ckpts["seg"], "--dataset", "potsdam", "-o", out / "e.pt"), "no head for")
    empty(out)


@pytest.mark.parametrize(
    "content, message",
    [(b"not a checkpoint", "not a PyTorch checkpoint"), (b"", "is empty"), (b"PK\x03\x04" + bytes(60), "truncated")],
    ids=["text", "empty", "truncated"],
)
def test_not_a_checkpoint(runner, tmp_path: Path, content: bytes, message: str) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    tune = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA]
    for command, args in [
        ("predict", [scene, "-o", out / "o.gpkg", "--checkpoint", bad]),
        ("evaluate", [bad, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "m.csv"]),
        ("export", [bad, "--dataset", "potsdam", "-o", out / "e.pt"]),
        ("curate", [scene, "-o", out / "corpus", "--teacher", bad]),
        ("finetune", [*tune, "--init", bad, "-o", out / "run"]),
    ]:
        result = invoke(runner, "-q", command, *args)
        # finetune reads its datasets before the init checkpoint (the fake Potsdam's partial-split warning first)
        line = last_line_error(result) if command == "finetune" else one_line_error(result)
        assert line.startswith(f"error: {bad}: ") and message in line, line
    empty(out)


@pytest.mark.parametrize(
    "text, message",
    [("", "missing key"), ("a: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "must hold a mapping")],
    ids=["empty", "invalid_yaml", "not_a_mapping"],
)
@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_broken_config_files(runner, tmp_path: Path, text: str, message: str, command: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    line = one_line_error(invoke(runner, command, "--config", config, "-o", tmp_path / "out" / "run"), message)
    assert line.startswith(f"error: {config}: ")
    empty(tmp_path / "out")


# ---- the general rule, for every registered command -------------------------------------------------

# command -> (args with one input path missing, args whose output exists, that output); None: not applicable.
# `models` reads no file and writes none.
NO_PATHS = {"models"}


def _general_cases(tmp: Path, ckpts: dict[str, Path]) -> dict[str, tuple[list | None, list | None, Path]]:
    missing = tmp / "missing"
    scene = scenes.make_scene(tmp / "s.tif", width=40, height=40)
    out = tmp / "existing"
    cfg = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--iterations", 1]
    pre = ["--config", PRETRAIN_TINY, "--data-root", DATA, "--unlabeled-folder", DATA / "million-aid"]
    return {
        "weights": (["import", missing / "s5.pth", "-o", tmp / "w.pt"], ["import", ckpts["seg"], "-o", out], out),
        "datasets": (["--data-root", missing], None, out),
        "prepare": (["dota-v1.0", "--root", missing, "-o", tmp / "p"],
                    ["dota-v1.0", "--data-root", DATA, "-o", out], out),
        "predict": ([missing / "s.tif", "-o", tmp / "o.gpkg", "--checkpoint", ckpts["seg"]],
                    [scene, "-o", out, "--checkpoint", ckpts["seg"]], out),
        "pretrain": ([*pre[:4], "--unlabeled-folder", missing, "-o", tmp / "r"], [*pre, "-o", out], out),
        "finetune": ([*cfg[:4], "--data-root", missing, "-o", tmp / "r"], [*cfg, "-o", out], out),
        "evaluate": ([missing / "c.pt", "--datasets", "potsdam", "--data-root", DATA],
                     [ckpts["potsdam"], "--datasets", "potsdam", "--data-root", DATA, "-o", out], out),
        "export": ([missing / "c.pt", "--dataset", "demo", "-o", tmp / "e.pt"],
                   [ckpts["seg"], "--dataset", "demo", "-o", out], out),
        "curate": ([missing / "scenes", "-o", tmp / "corpus"], [scene, "-o", out], out),
        "demo": (None, ["--workdir", out], out),
    }  # fmt: skip


def test_the_rule_covers_every_registered_command(tmp_path: Path, ckpts) -> None:
    from s5cli.cli import COMMANDS

    assert set(COMMANDS) == set(_general_cases(tmp_path, ckpts)) | NO_PATHS


@pytest.mark.parametrize(
    "command",
    ["weights", "datasets", "prepare", "predict", "pretrain", "finetune", "evaluate", "export", "curate", "demo"],
)
@pytest.mark.parametrize("existing", ["file", "folder"])
def test_missing_input_and_existing_output(runner, tmp_path: Path, ckpts, command: str, existing: str) -> None:
    missing_args, output_args, out = _general_cases(tmp_path, ckpts)[command]
    if existing == "file" and missing_args is not None:  # the missing-input half runs once per command
        line = one_line_error(invoke(runner, command, *missing_args))
        assert str(tmp_path / "missing") in line and ("no such" in line or "not found" in line), line
    if output_args is None:
        return
    if existing == "file":
        out.write_bytes(b"precious bytes")
    else:  # a run directory, corpus or prediction folder with a file of the user's in it
        out.mkdir()
        (out / "notes.txt").write_text("precious")
    before = snapshot(tmp_path)
    refusal = "exists and won't be overwritten without --overwrite"
    if existing == "file" and command in ("pretrain", "finetune"):  # a run directory
        refusal = "is not a folder"
    one_line_error(invoke(runner, command, *output_args), refusal)
    assert snapshot(tmp_path) == before  # byte-identical, nothing beside it either
