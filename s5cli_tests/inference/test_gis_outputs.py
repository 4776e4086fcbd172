"""Issue 16 (3, 8-11) and issue 19 (2): nodata as GDAL masks it, NaN pixels, outputs that open styled in QGIS,
one minimum mapping unit for raster and polygons, the vector formats users hand on, folders as outputs."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio import features
from rasterio.transform import from_origin

from s5cli.cli import app
from s5cli_tests.inference.conftest import PALETTE
from s5cli_tests.scenes import UTM33, make_scene, scene_array

CLASSES = ["ground", "building", "tree"]  # tiny_ckpt's head


def predict(runner, *args):
    result = runner.invoke(app, ["predict", *map(str, args)])
    assert result.exit_code == 0, result.stderr + result.stdout
    return result


def summary(runner, *args) -> dict:
    return json.loads(predict(runner, *args, "--json").stdout)["scenes"][0]


def write_scene(path: Path, data: np.ndarray, nodata: float | None) -> Path:
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=data.dtype,
                   crs=UTM33, transform=from_origin(500_000.0, 5_800_000.0, 0.5, 0.5), nodata=nodata)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_nodata_follows_the_gdal_dataset_mask(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    data = scene_array(64, 64, 3, "uint8", seed=4)  # values 1..255: 0 is only where it is set below
    data[0, :8, :] = 0  # one band at the nodata value: GDAL (and QGIS) keep these pixels
    data[:, 56:, :32] = 0  # every band: nodata (256 px)
    data[:, 20:24, 20:40] = 77  # 80 px of one colour, for --nodata 77
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    with rasterio.open(scene) as src:
        assert int((src.dataset_mask() == 0).sum()) == 256
    cog = tmp_path / "c.tif"
    info = summary(runner, scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--sieve", 0)
    with rasterio.open(cog) as out:
        classes = out.read(1)
    assert info["invalid_pixels"] == 256 == int((classes == 255).sum()) and info["nonfinite_pixels"] == 0
    assert (classes[:8] != 255).all() and (classes[56:, :32] == 255).all()
    none = summary(runner, scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--nodata", "none", "--overwrite")
    assert none["invalid_pixels"] == 0
    other = summary(runner, scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--nodata", 77, "--overwrite")
    with rasterio.open(cog) as out:
        classes = out.read(1)
    assert other["invalid_pixels"] == 80 and (classes[20:24, 20:40] == 255).all() and (classes[56:] != 255).all()


def test_nan_pixels_are_masked_and_counted_and_leave_the_rest_alone(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    clean = scene_array(40, 40, 3, "float32", seed=2)  # reflectance-like floats in [0, 1], no nodata value
    holed = clean.copy()
    holed[0, 10:20, 10:20] = np.nan  # 100 NaN pixels in one band
    zeroed = clean.copy()
    zeroed[:, 10:20, 10:20] = 0.0
    maps = {}
    for name, data in (("nan", holed), ("zero", zeroed)):
        scene = write_scene(tmp_path / f"{name}.tif", data, nodata=None)
        cog = tmp_path / f"{name}_classes.tif"
        args = [scene, "--raster", cog, "--checkpoint", tiny_ckpt, "--scale", 1, "--sieve", 0]
        info = summary(runner, *args)
        with rasterio.open(cog) as out:
            maps[name] = (info, out.read(1))
    info, classes = maps["nan"]
    assert info["nonfinite_pixels"] == 100 and info["invalid_pixels"] == 100 and info["tiles"] == 1
    assert (classes[10:20, 10:20] == 255).all()
    outside = np.ones((40, 40), bool)
    outside[10:20, 10:20] = False
    assert np.array_equal(classes[outside], maps["zero"][1][outside])  # the NaNs reach no other pixel
    text = predict(runner, tmp_path / "nan.tif", "--raster", tmp_path / "t.tif", "--checkpoint", tiny_ckpt,
                   "--scale", 1)  # fmt: skip
    assert "100 pixel(s) are NaN or infinite; they are masked like nodata" in " ".join(text.stderr.split())


def test_outputs_carry_their_qgis_styles_and_gdal_class_names(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "scene.tif", width=96, height=80)
    gpkg, cog = tmp_path / "out.gpkg", tmp_path / "out.tif"
    predict(runner, scene, "-o", gpkg, "--raster", cog, "--checkpoint", tiny_ckpt)
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for c in PALETTE]
    # The raster's QGIS style: a palette of the head's 3 classes (not 256 entries), colours and names.
    renderer = ET.parse(tmp_path / "out.qml").getroot().find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [(e.get("value"), e.get("color"), e.get("label")) for e in renderer.iter("paletteEntry")]
    assert entries == [("0", hexes[0], "ground"), ("1", hexes[1], "building"), ("2", hexes[2], "tree")]
    # GDAL's class names and attribute table, in the PAM sidecar GDAL reads beside the COG.
    band = ET.parse(tmp_path / "out.tif.aux.xml").getroot().find("PAMRasterBand")
    assert [c.text for c in band.iter("Category")] == CLASSES
    rows = [[f.text for f in row.iter("F")] for row in band.iter("Row")]
    assert rows == [[str(i), n, *map(str, PALETTE[i]), "255"] for i, n in enumerate(CLASSES)]
    with rasterio.open(cog) as out:
        assert out.colormap(1)[1] == (*PALETTE[1], 255) and out.nodata == 255
    if shutil.which("gdalinfo"):  # an extra check where GDAL's tools are installed
        text = subprocess.run(["gdalinfo", str(cog)], capture_output=True, text=True, check=True).stdout
        assert "Categories:" in text and "1: building" in text
    # The GeoPackage's default style for its layer: polygons coloured by class_name with the same palette.
    styles = pyogrio.read_dataframe(gpkg, layer="layer_styles")
    assert styles.f_table_name.tolist() == ["scene"] and styles.useAsDefault.tolist() == [True]
    assert styles.f_table_schema.tolist() == [""]
    assert styles.f_geometry_column.tolist() == [pyogrio.read_info(gpkg, layer="scene")["geometry_name"]]
    renderer = ET.fromstring(styles.styleQML[0].split("\n", 1)[1]).find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_name"
    assert [c.get("value") for c in renderer.iter("category")] == CLASSES
    fills = [p.get("v") for p in renderer.iter("prop") if p.get("k") == "color"]
    assert fills == [f"{r},{g},{b},255" for r, g, b in PALETTE]


def test_the_raster_and_the_polygons_describe_one_sieved_map(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=150, height=97, nodata_border=6)
    raw, cog, gpkg = tmp_path / "raw.tif", tmp_path / "c.tif", tmp_path / "p.gpkg"
    predict(runner, scene, "--raster", raw, "--checkpoint", tiny_ckpt, "--sieve", 0)
    predict(runner, scene, "--raster", cog, "-o", gpkg, "--checkpoint", tiny_ckpt)  # the default: --sieve 4
    with rasterio.open(raw) as a, rasterio.open(cog) as b:
        unsieved, sieved = a.read(1), b.read(1)
    expected = features.sieve(unsieved, size=4, mask=unsieved != 255, connectivity=4)
    assert not np.array_equal(unsieved, sieved) and np.array_equal(sieved, expected)
    frame = pyogrio.read_dataframe(gpkg, layer="s")
    for k in range(3):
        pixels = int((sieved == k).sum())
        assert frame.loc[frame.class_id == k, "pixels"].sum() == pixels
        assert frame.loc[frame.class_id == k].geometry.area.sum() == pytest.approx(pixels * 0.25)


@pytest.mark.parametrize("suffix", [".geojson", ".fgb", ".parquet", ".shp"])
def test_vector_formats_by_extension(runner, tmp_path: Path, tiny_ckpt: Path, suffix: str) -> None:
    scene = make_scene(tmp_path / "s.tif", width=70, height=64)
    predict(runner, scene, "-o", tmp_path / "ref.gpkg", "--checkpoint", tiny_ckpt)
    reference = pyogrio.read_dataframe(tmp_path / "ref.gpkg", layer="s")
    out = tmp_path / "out" / f"polygons{suffix}"
    predict(runner, scene, "-o", out, "--checkpoint", tiny_ckpt)
    got = gpd.read_parquet(out) if suffix == ".parquet" else pyogrio.read_dataframe(out)
    assert got.crs == reference.crs and len(got) == len(reference) > 1
    assert sorted(got.class_name) == sorted(reference.class_name)
    assert got.geometry.area.sum() == pytest.approx(reference.geometry.area.sum())
    confidence = "mean_conf" if suffix == ".shp" else "mean_confidence"  # dBase field names hold 10 characters
    assert got[confidence].sum() == pytest.approx(reference.mean_confidence.sum())
    expected = {f"polygons{s}" for s in ((".shp", ".shx", ".dbf", ".prj", ".cpg") if suffix == ".shp" else (suffix,))}
    assert {p.name for p in out.parent.iterdir()} == expected | {"polygons.qml"}  # a QGIS style, no temp files
    categories = ET.parse(out.with_suffix(".qml")).getroot().iter("category")
    assert [c.get("value") for c in categories] == CLASSES


def test_raster_and_preview_options_name_folders(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "scene.tif", width=40, height=40)
    predict(runner, scene, "--raster", f"{tmp_path / 'new'}/", "--preview", f"{tmp_path / 'looks'}/",
            "--checkpoint", tiny_ckpt)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["scene.qml", "scene.tif", "scene.tif.aux.xml"]
    assert [p.name for p in (tmp_path / "looks").iterdir()] == ["scene.png"]
    (tmp_path / "existing").mkdir()
    predict(runner, scene, "--raster", tmp_path / "existing", "--checkpoint", tiny_ckpt)  # an existing folder
    assert (tmp_path / "existing" / "scene.tif").is_file()


def test_a_folder_of_scenes_is_searched_at_any_depth(runner, tmp_path: Path, tiny_ckpt: Path) -> None:
    (tmp_path / "scenes" / "2024" / "june").mkdir(parents=True)
    (tmp_path / "scenes" / ".hidden").mkdir()
    make_scene(tmp_path / "scenes" / "a.tif", width=40, height=40)
    make_scene(tmp_path / "scenes" / "2024" / "june" / "b.tif", width=40, height=40)
    make_scene(tmp_path / "scenes" / ".hidden" / "c.tif", width=40, height=40)
    gpkg = tmp_path / "all.gpkg"
    result = json.loads(predict(runner, tmp_path / "scenes", "-o", gpkg, "--checkpoint", tiny_ckpt, "--json").stdout)
    assert [Path(s["scene"]).name for s in result["scenes"]] == ["a.tif", "b.tif"]  # hidden folders skipped
