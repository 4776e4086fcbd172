"""`s5 predict` end to end through real tiny checkpoints (vit-nano, tile 64): the issue's acceptance tests."""

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import Affine, from_origin

from s5cli.cli import app
from s5cli_tests.scenes import make_scene, scene_array


def predict(runner, *args: str):
    result = runner.invoke(app, ["predict", *map(str, args)])
    return result


def ok(result) -> dict:
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_georeferenced_outputs_match_the_scene(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "odd scene.tif", width=150, height=97, nodata_border=6)  # odd, > tile 64
    gpkg, cog = tmp_path / "out.gpkg", tmp_path / "out.tif"
    summary = ok(
        predict(
            runner, scene, "-o", gpkg, "--checkpoint", tiny_ckpt, "--raster", cog, "--sieve", 0, "--probs", "--json"
        )
    )
    info = summary["scenes"][0]
    assert info["layer"] == "odd_scene" and info["tiles"] == 6 and info["working_factor"] == 1.0
    with rasterio.open(scene) as src, rasterio.open(cog) as out:
        assert (out.crs, out.transform, out.width, out.height) == (src.crs, src.transform, src.width, src.height)
        assert out.nodata == 255 and out.colormap(1)[1][:3] == (30, 200, 30)
        assert json.loads(out.tags(1)["CLASS_NAMES"]) == ["ground", "building", "tree"]
        classes = out.read(1)
    with rasterio.open(tmp_path / "out_confidence.tif") as conf:
        c = conf.read(1)
        assert conf.nodata == 0 and ((c == 0) == (classes == 255)).all()
    assert (classes[:6] == 255).all() and (classes[:, :6] == 255).all() and (classes[6:, 6:] != 255).all()
    assert len(np.unique(classes[6:, 6:])) >= 2  # the map is not one flat class
    frame = pyogrio.read_dataframe(gpkg, layer="odd_scene")
    assert frame.crs == rasterio.open(scene).crs
    assert info["polygons"] == len(frame) > 1
    # Without sieve or simplification, each class's polygons cover exactly its pixels.
    for k in range(3):
        pixels = int((classes == k).sum())
        assert frame.loc[frame.class_id == k, "area_m2"].sum() == pytest.approx(pixels * 0.25)
        assert frame.loc[frame.class_id == k].geometry.area.sum() == pytest.approx(pixels * 0.25)
        assert frame.loc[frame.class_id == k, "pixels"].sum() == pixels
    assert set(frame.class_name) <= {"ground", "building", "tree"}
    assert frame.mean_confidence.between(1 / 3 - 1e-6, 1.0).all()
    # Nodata (the 6-px border) carries no polygon.
    border = shapely.box(500000, 5800000 - 3, 500000 + 75, 5800000)
    assert frame.geometry.intersection(border).area.sum() == 0


def test_tile_by_tile_equals_one_by_one_through_the_cli(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    import torch

    from s5cli.models.checkpoint import load_checkpoint

    scene = make_scene(tmp_path / "s.tif", width=128, height=128, nodata_border=0)
    cog = tmp_path / "c.tif"
    ok(predict(runner, scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--overlap", 0, "--sieve", 0, "--json"))
    model, _, _ = load_checkpoint(tiny_ckpt)
    with rasterio.open(scene) as src, rasterio.open(cog) as out:
        x = torch.from_numpy(src.read().astype(np.float32) / 255.0)[None]
        got = out.read(1)
    for r in (0, 64):
        for c in (0, 64):
            with torch.inference_mode():
                alone = model(x[..., r : r + 64, c : c + 64], "demo").argmax(1)[0].numpy()
            assert np.array_equal(got[r : r + 64, c : c + 64], alone)


def test_vrt_input_is_read_like_a_file(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    tif = make_scene(tmp_path / "base.tif", width=70, height=50, nodata_border=0)
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">base.tif'
        f"</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    with rasterio.open(tif) as src:
        geo = ", ".join(repr(v) for v in src.transform.to_gdal())
        crs = src.crs.to_wkt()
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="70" rasterYSize="50"><SRS>{crs}</SRS>'
                   f"<GeoTransform>{geo}</GeoTransform>{bands}</VRTDataset>")  # fmt: skip
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    ok(predict(runner, vrt, "--raster", a, "--checkpoint", tiny_ckpt, "--json"))
    ok(predict(runner, tif, "--raster", b, "--checkpoint", tiny_ckpt, "--json"))
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        assert ra.transform == rb.transform and np.array_equal(ra.read(1), rb.read(1))


def test_png_without_georeferencing(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    png = tmp_path / "photo.png"
    with rasterio.open(png, "w", driver="PNG", width=90, height=70, count=3, dtype="uint8") as dst:
        dst.write(scene_array(90, 70, 3, "uint8"))
    gpkg = tmp_path / "photo.gpkg"
    result = predict(runner, png, "-o", gpkg, "--checkpoint", tiny_ckpt, "--sieve", 0, "--json")
    summary = ok(result)
    stderr = " ".join(result.stderr.split())
    assert "photo.png: no georeferencing; predicting in pixel coordinates" in stderr
    assert "NotGeoreferencedWarning" not in stderr
    frame = pyogrio.read_dataframe(gpkg, layer="photo")
    assert frame.crs is None and summary["scenes"][0]["predicted_pixels"] == 90 * 70
    assert frame.geometry.area.sum() == pytest.approx(90 * 70)
    assert frame.area_m2.isna().all()
    minx, miny, maxx, maxy = frame.total_bounds
    assert (minx, miny, maxx, maxy) == (0, 0, 90, 70)


def test_rgba_png_reads_the_colour_bands(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    png = tmp_path / "rgba.png"
    data = np.concatenate([scene_array(64, 48, 3, "uint8"), np.full((1, 48, 64), 255, np.uint8)])
    data[3, :8] = 0  # transparent top rows: not predicted
    with rasterio.open(png, "w", driver="PNG", width=64, height=48, count=4, dtype="uint8") as dst:
        dst.write(data)
    cog = tmp_path / "rgba.tif"
    result = predict(runner, png, "--raster", cog, "--checkpoint", tiny_ckpt, "--json")
    assert ok(result)["scenes"][0]["predicted_pixels"] == 64 * 40
    assert "are alpha (a mask); reading [1, 2, 3]" in " ".join(result.stderr.split())


def test_geographic_scene_reports_true_square_metres(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = tmp_path / "wgs84.tif"
    deg = 0.5 / 111_320  # about 0.5 m in latitude
    profile = dict(driver="GTiff", width=80, height=70, count=3, dtype="uint8", crs="EPSG:4326", nodata=0)
    with rasterio.open(scene, "w", transform=from_origin(10.0, 60.0, deg, deg), **profile) as dst:
        dst.write(scene_array(80, 70, 3, "uint8"))
    gpkg = tmp_path / "g.gpkg"
    ok(predict(runner, scene, "-o", gpkg, "--checkpoint", tiny_ckpt, "--sieve", 0, "--gsd", "native", "--json"))
    frame = pyogrio.read_dataframe(gpkg, layer="wgs84")
    assert frame.crs.to_epsg() == 4326
    # 80 x 70 pixels of 0.5 m (north-south) by 0.5 m * cos(60) (east-west): 700 m².
    assert frame.area_m2.sum() == pytest.approx(80 * 70 * 0.5 * 0.25, rel=0.01)


def test_rotated_geotransform_is_kept(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = tmp_path / "rot.tif"
    tr = Affine.translation(500000, 5800000) * Affine.rotation(20) * Affine.scale(0.5, -0.5)
    profile = dict(driver="GTiff", width=70, height=66, count=3, dtype="uint8", crs="EPSG:32633", transform=tr)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(scene_array(70, 66, 3, "uint8"))
    gpkg, cog = tmp_path / "r.gpkg", tmp_path / "r.tif"
    ok(predict(runner, scene, "-o", gpkg, "--raster", cog, "--checkpoint", tiny_ckpt, "--sieve", 0, "--json"))
    with rasterio.open(cog) as out:
        assert out.transform.almost_equals(tr) and out.shape == (66, 70)
    frame = pyogrio.read_dataframe(gpkg, layer="rot")
    footprint = shapely.Polygon([tr * (0, 0), tr * (70, 0), tr * (70, 66), tr * (0, 66)])
    assert frame.union_all().symmetric_difference(footprint).area == pytest.approx(0, abs=1e-6)
    assert frame.area_m2.sum() == pytest.approx(70 * 66 * 0.25)


def test_resampled_to_the_checkpoint_gsd_and_back(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "coarse.tif", width=60, height=50, gsd=1.0, nodata_border=4)  # model: 0.5 m
    cog = tmp_path / "c.tif"
    result = predict(runner, scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--json")
    info = ok(result)["scenes"][0]
    assert info["working_factor"] == 2.0 and "resampling from 1 m" in " ".join(result.stderr.split())
    with rasterio.open(scene) as src, rasterio.open(cog) as out:
        assert (out.transform, out.shape, out.crs) == (src.transform, src.shape, src.crs)
        classes = out.read(1)
    assert (classes[:4] == 255).all() and (classes[4:, 4:] != 255).all()


def test_all_nodata_scene_gives_valid_empty_outputs(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "empty.tif", width=70, height=70, nodata_border=70)
    gpkg, cog = tmp_path / "e.gpkg", tmp_path / "e.tif"
    result = predict(runner, scene, "-o", gpkg, "--raster", cog, "--checkpoint", tiny_ckpt, "--json")
    info = ok(result)["scenes"][0]
    assert "every pixel is nodata" in " ".join(result.stderr.split())
    assert info["tiles"] == 0 and info["skipped_tiles"] == 4 and info["polygons"] == 0
    assert pyogrio.read_info(gpkg, layer="empty")["features"] == 0
    with rasterio.open(cog) as out:
        assert (out.read(1) == 255).all()


def test_several_scenes_folder_layers_and_preview(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    make_scene(folder / "a.tif", width=70, height=64)
    make_scene(folder / "b.tif", width=64, height=80, bands=4, dtype="uint16", seed=1)
    gpkg, rasters, previews = tmp_path / "all.gpkg", tmp_path / "rasters", tmp_path / "previews"
    result = predict(
        runner, folder, "-o", gpkg, "--raster", rasters, "--preview", previews,
        "--checkpoint", tiny_ckpt, "-b", "3,2,1", "--stretch", "2,98", "--json",
    )  # fmt: skip
    summary = ok(result)
    assert [s["layer"] for s in summary["scenes"]] == ["a", "b"]
    assert [name for name, _ in pyogrio.list_layers(gpkg)] == ["a", "b", "layer_styles"]  # + QGIS styles
    tifs = sorted(p.name for p in rasters.iterdir() if p.suffix == ".tif")
    assert tifs == ["a.tif", "b.tif"] and (rasters / "a.qml").exists() and (rasters / "b.tif.aux.xml").exists()
    for name in ("a", "b"):
        png = previews / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.rglob(".*") if p.name.startswith((".all", ".s5-", ".a", ".b"))]


def test_same_names_in_two_folders_get_distinct_outputs(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        make_scene(tmp_path / sub / "tile.tif", width=40, height=40)
    rasters = tmp_path / "r"
    summary = ok(
        predict(runner, tmp_path / "x", tmp_path / "y", "--raster", rasters, "--checkpoint", tiny_ckpt, "--json")
    )
    assert [Path(s["raster"]).name for s in summary["scenes"]] == ["tile.tif", "tile_2.tif"]


def test_existing_output_is_refused_untouched(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=40, height=40)
    gpkg = tmp_path / "out.gpkg"
    gpkg.write_bytes(b"precious")
    result = predict(runner, scene, "-o", gpkg, "--checkpoint", tiny_ckpt)
    one_line_error(result, "exists")
    assert gpkg.read_bytes() == b"precious"
    ok(predict(runner, scene, "-o", gpkg, "--checkpoint", tiny_ckpt, "--overwrite", "--json"))
    assert "a" not in [n for n, _ in pyogrio.list_layers(gpkg)] and pyogrio.list_layers(gpkg)[0][0] == "s"


def test_user_errors_are_one_line(runner, tmp_path: Path, tiny_ckpt: Path, two_head_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=40, height=40)
    four = make_scene(tmp_path / "four.tif", width=40, height=40, bands=4, dtype="uint16")
    out = tmp_path / "o.gpkg"
    one_line_error(predict(runner, tmp_path / "missing.tif", "-o", out, "--checkpoint", tiny_ckpt), "missing.tif")
    one_line_error(predict(runner, four, "-o", out, "--checkpoint", tiny_ckpt), "the checkpoint takes 3")
    one_line_error(predict(runner, scene, "-o", out, "--checkpoint", tiny_ckpt, "-b", "1,2,9"), "band 9")
    one_line_error(predict(runner, scene, "-o", out, "--checkpoint", two_head_ckpt), "--dataset")
    one_line_error(predict(runner, scene, "-o", out, "--checkpoint", two_head_ckpt, "--dataset", "nope"), "nope")
    one_line_error(predict(runner, scene, "--checkpoint", tiny_ckpt), "nothing to write")
    one_line_error(predict(runner, scene, "-o", out, "--checkpoint", tiny_ckpt, "--tile-size", 50), "multiple of 16")
    one_line_error(predict(runner, scene, "-o", tmp_path / "o.kml", "--checkpoint", tiny_ckpt), ".fgb, .parquet, .shp")
    two = [scene, four]
    one_line_error(predict(runner, *two, "-o", tmp_path / "o.fgb", "--checkpoint", tiny_ckpt), "several scenes")
    one_line_error(predict(runner, scene, "-o", out, "--checkpoint", tmp_path / "none.pt"), "none.pt")
    assert not out.exists()


def test_dataset_picks_the_head(runner, tmp_path: Path, two_head_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=64, height=64)
    gpkg = tmp_path / "o.gpkg"
    summary = ok(predict(runner, scene, "-o", gpkg, "--checkpoint", two_head_ckpt, "--dataset", "loveda", "--json"))
    assert summary["head"] == "loveda" and summary["classes"] == ["x", "y"]
    assert set(pyogrio.read_dataframe(gpkg, layer="s").class_name) <= {"x", "y"}


def test_interrupted_run_leaves_nothing(runner, tmp_path: Path, tiny_ckpt: Path, monkeypatch) -> None:
    from s5cli.inference import sinks

    scene = make_scene(tmp_path / "s.tif", width=200, height=200)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = {"n": 0}
    original = sinks.GeoTiffSink.write

    def dies_mid_scene(self, row0, classes, conf):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed by Ctrl-C after the first rows were written
        original(self, row0, classes, conf)

    monkeypatch.setattr(sinks.GeoTiffSink, "write", dies_mid_scene)
    result = predict(
        runner, scene, "-o", out_dir / "o.gpkg", "--raster", out_dir / "o.tif", "--preview", out_dir / "o.png",
        "--checkpoint", tiny_ckpt,
    )  # fmt: skip
    assert result.exit_code == 130 and calls["n"] == 2
    assert list(out_dir.iterdir()) == []  # no output, no temporary file, no scratch folder
