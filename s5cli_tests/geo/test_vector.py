import math
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from s5cli.geo.polygonize import Piece
from s5cli.geo.vector import (
    SEGMENT_FIELDS,
    AreaCalculator,
    LayerWriter,
    layer_name,
    pixel_to_map,
    row_pixel_areas,
    segment_frame,
)

UTM = CRS.from_epsg(32633)


def test_layer_names() -> None:
    assert layer_name("/data/scene 1.tif") == "scene_1"
    assert layer_name("/vsicurl/https://x.org/a/b/tile-7.TIF") == "tile_7"
    assert layer_name("2024_mosaic.vrt") == "scene_2024_mosaic"
    assert layer_name("a/scene.tif", ["scene"]) == "scene_2"
    assert layer_name("b/scene.tif", ["scene", "Scene_2"]) == "scene_3"


def test_pixel_to_map_north_up_no_half_pixel_shift() -> None:
    tr = from_origin(500000, 5800000, 0.5, 0.5)
    out = pixel_to_map(np.array([shapely.box(2, 2, 5, 5)], dtype=object), tr)[0]
    # Pixel corners (2, 2) and (5, 5) -> the map corners of those pixels, not their centres.
    assert shapely.bounds(out).tolist() == [500001.0, 5799997.5, 500002.5, 5799999.0]


def test_pixel_to_map_rotated_uses_full_affine() -> None:
    tr = Affine.translation(100, 200) * Affine.rotation(30) * Affine.scale(2, -2)
    out = pixel_to_map(np.array([shapely.Point(3, 4)], dtype=object), tr)[0]
    x, y = tr * (3, 4)
    assert (out.x, out.y) == pytest.approx((x, y))


def test_projected_area_is_pixels_times_pixel_area() -> None:
    tr = from_origin(0, 0, 0.5, 0.5)
    calc = AreaCalculator(tr, UTM, 100, 100)
    assert calc.areas(np.array([]), np.array([9.0, 2.0]), np.array([])).tolist() == [2.25, 0.5]


def test_projected_area_in_feet_is_converted() -> None:
    ft = CRS.from_epsg(2263)  # NAD83 / New York Long Island (ftUS)
    calc = AreaCalculator(from_origin(0, 0, 1, 1), ft, 10, 10)
    assert calc.areas(np.array([]), np.array([1.0]), np.array([]))[0] == pytest.approx(0.3048006096**2, rel=1e-6)


def test_geographic_area_is_true_square_metres() -> None:
    # A 0.01 x 0.01 degree box at 60 N: its geodesic area from pyproj.Geod is the truth.
    deg = 0.0001
    tr = from_origin(10.0, 60.01, deg, deg)
    calc = AreaCalculator(tr, CRS.from_epsg(4326), 100, 100)
    pix = np.array([shapely.box(0, 0, 100, 100)], dtype=object)
    geo = pixel_to_map(pix, tr)
    area = calc.areas(pix, np.array([10_000.0]), geo)[0]
    truth = abs(Geod(ellps="WGS84").geometry_area_perimeter(geo[0])[0])
    assert area == pytest.approx(truth, rel=1e-4)
    assert 600_000 < area < 650_000  # ~1113 m x ~556 m


def test_row_pixel_areas_follow_latitude_in_a_geographic_crs() -> None:
    deg = 0.0001  # the same 0.01 x 0.01 degree box at 60 N, pixel by pixel
    tr = from_origin(10.0, 60.01, deg, deg)
    rows = row_pixel_areas(tr, CRS.from_epsg(4326), 100, 100)
    truth = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.box(10.0, 60.0, 10.01, 60.01))[0])
    assert rows.sum() * 100 == pytest.approx(truth, rel=1e-4)
    assert rows[0] < rows[-1]  # pixels shrink towards the pole
    assert row_pixel_areas(from_origin(0, 0, 0.5, 0.5), UTM, 4, 3).tolist() == [0.25] * 3
    assert np.isnan(row_pixel_areas(Affine.identity(), None, 4, 3)).all()


def test_no_crs_area_is_nan() -> None:
    calc = AreaCalculator(Affine.identity(), None, 10, 10)
    assert math.isnan(calc.areas(np.array([]), np.array([4.0]), np.array([]))[0])


def test_segment_frame_attributes_min_area_and_simplify() -> None:
    tr = from_origin(0, 100, 1, 1)
    stair = shapely.Polygon([(0, 0), (10, 0), (10, 1), (9, 1), (9, 2), (0, 2)])
    pieces = [Piece(1, shapely.box(0, 0, 2, 2), 4, 2.0), Piece(0, stair, stair.area, stair.area)]
    calc = AreaCalculator(tr, UTM, 100, 100)
    frame = segment_frame(pieces, ["bg", "house"], tr, UTM, calc)
    assert frame.columns.tolist()[:5] == list(SEGMENT_FIELDS)
    assert frame.crs == UTM
    assert frame["class_name"].tolist() == ["house", "bg"]
    assert frame["area_m2"].tolist() == [4.0, 19.0]
    assert frame["mean_confidence"].tolist() == [0.5, 1.0]
    small = segment_frame(pieces, ["bg", "house"], tr, UTM, calc, min_area=5)
    assert small["class_name"].tolist() == ["bg"]
    simple = segment_frame(pieces, ["bg", "house"], tr, UTM, calc, simplify=1.5)
    assert len(simple.geometry.iloc[1].exterior.coords) < len(stair.exterior.coords)
    assert simple["area_m2"].tolist() == [4.0, 19.0]  # areas are of the unsimplified polygons


def test_layer_writer_appends_and_keeps_empty_layers(tmp_path: Path) -> None:
    gpkg = tmp_path / "out.gpkg"
    tr = from_origin(0, 100, 1, 1)
    calc = AreaCalculator(tr, UTM, 100, 100)
    writer = LayerWriter(gpkg, "a", UTM, SEGMENT_FIELDS)
    for k in range(2):
        writer.write(segment_frame([Piece(k, shapely.box(k, 0, k + 1, 1), 1, 1)], ["x", "y"], tr, UTM, calc))
    writer.close()
    empty = LayerWriter(gpkg, "b", UTM, SEGMENT_FIELDS)
    empty.close()
    layers = dict(pyogrio.list_layers(gpkg))
    assert layers == {"a": "Polygon", "b": "Polygon"}
    assert pyogrio.read_info(gpkg, layer="a")["features"] == 2
    info = pyogrio.read_info(gpkg, layer="b")
    assert info["features"] == 0 and list(info["fields"]) == list(SEGMENT_FIELDS)
    assert pyogrio.read_dataframe(gpkg, layer="b").crs == UTM


def test_a_layer_without_crs_is_written_without_pyogrios_warning(tmp_path: Path) -> None:
    import warnings

    import geopandas as gpd

    frame = gpd.GeoDataFrame({"class_id": np.array([1], np.int16)}, geometry=[shapely.box(0, 0, 1, 1)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        writer = LayerWriter(tmp_path / "p.gpkg", "pixels", None, ["class_id"])
        writer.write(frame)
        writer.close()
    assert not [w for w in seen if "crs" in str(w.message)]  # predict said so once, in its own words
    assert pyogrio.read_info(tmp_path / "p.gpkg", layer="pixels")["features"] == 1
