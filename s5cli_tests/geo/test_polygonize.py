from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio import features
from rasterio.transform import Affine, from_origin
from shapely.geometry import shape

from s5cli.geo.cog import CLASS_NODATA
from s5cli.geo.polygonize import (
    Piece,
    RowPolygonizer,
    SeamMerger,
    block_pieces,
    polygonize_raster,
    prefix_sums,
    sieve_raster,
)


def write_classes(path: Path, arr: np.ndarray, conf: np.ndarray | None = None) -> tuple[Path, Path | None]:
    profile = {
        "driver": "GTiff",
        "width": arr.shape[1],
        "height": arr.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 5800000, 1, 1),
        "nodata": CLASS_NODATA,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
    conf_path = None
    if conf is not None:
        conf_path = path.with_name(path.stem + "_conf.tif")
        with rasterio.open(conf_path, "w", **{**profile, "nodata": 0}) as dst:
            dst.write(conf, 1)
    return path, conf_path


def whole_array(arr: np.ndarray) -> list[tuple[int, shapely.Geometry]]:
    return [(int(v), shape(g)) for g, v in features.shapes(arr, mask=arr != CLASS_NODATA, connectivity=4)]


def blockwise(path: Path, block: int, sieve: int = 0, conf: Path | None = None) -> list[Piece]:
    return [p for batch in polygonize_raster(path, conf, block=block, sieve=sieve) for p in batch]


def assert_same_polygons(pieces: list[Piece], expected: list[tuple[int, shapely.Geometry]]) -> None:
    assert len(pieces) == len(expected)

    def key(item: tuple[int, shapely.Geometry]) -> tuple:
        return (item[0], *shapely.bounds(item[1]), item[1].area)

    got = sorted(((p.class_id, p.geom) for p in pieces), key=key)
    want = sorted(expected, key=key)
    for (c1, g1), (c2, g2) in zip(got, want):
        assert c1 == c2
        assert g1.is_valid
        assert shapely.equals(g1, g2), (g1.wkt, g2.wkt)


def test_known_square_exact_coordinates(tmp_path: Path) -> None:
    # rasterio's test habit: a 3x3 square of ones at [2:5, 2:5] in a 10x10 map.
    arr = np.zeros((10, 10), np.uint8)
    arr[2:5, 2:5] = 1
    path, _ = write_classes(tmp_path / "c.tif", arr)
    pieces = blockwise(path, block=4)  # the square is cut by the seams at 4
    ones = [p for p in pieces if p.class_id == 1]
    assert len(ones) == 1
    assert shapely.equals(ones[0].geom, shapely.box(2, 2, 5, 5))
    assert ones[0].pixels == 9
    background = [p for p in pieces if p.class_id == 0]
    assert len(background) == 1 and background[0].pixels == 91
    assert len(background[0].geom.interiors) == 1  # holes kept


def test_nodata_carries_no_polygon(tmp_path: Path) -> None:
    arr = np.full((12, 12), CLASS_NODATA, np.uint8)
    arr[3:9, 3:9] = 2
    path, _ = write_classes(tmp_path / "c.tif", arr)
    pieces = blockwise(path, block=5)
    assert [p.class_id for p in pieces] == [2]
    assert shapely.equals(pieces[0].geom, shapely.box(3, 3, 9, 9))


def test_all_nodata_gives_nothing(tmp_path: Path) -> None:
    path, _ = write_classes(tmp_path / "c.tif", np.full((9, 7), CLASS_NODATA, np.uint8))
    assert blockwise(path, block=4) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    height=st.integers(5, 23),
    width=st.integers(5, 23),
    block=st.integers(3, 9),
    classes=st.integers(1, 4),
)
def test_blockwise_equals_whole_array(tmp_path: Path, seed: int, height: int, width: int, block: int, classes: int):
    rng = np.random.default_rng(seed)
    # Blobby maps (upsampled noise) so polygons span seams, plus nodata pixels.
    small = rng.integers(0, classes, size=(height // 2 + 1, width // 2 + 1)).astype(np.uint8)
    arr = np.kron(small, np.ones((2, 2), np.uint8))[:height, :width].copy()
    arr[rng.random(arr.shape) < 0.08] = CLASS_NODATA
    path, _ = write_classes(tmp_path / f"c{seed}.tif", arr)
    assert_same_polygons(blockwise(path, block=block), whole_array(arr))


def test_confidence_means(tmp_path: Path) -> None:
    arr = np.zeros((6, 8), np.uint8)
    arr[:, 4:] = 1
    conf = np.full((6, 8), 255, np.uint8)
    conf[:, 4:] = 51  # p = 0.2
    conf[0, 0] = 0  # p = 0 on one pixel of class 0
    path, conf_path = write_classes(tmp_path / "c.tif", arr, conf)
    pieces = {p.class_id: p for p in blockwise(path, block=3, conf=conf_path)}
    assert pieces[1].mean_conf == pytest.approx(0.2)
    assert pieces[0].mean_conf == pytest.approx(23 / 24)
    assert pieces[0].pixels == 24 and pieces[1].pixels == 24


def test_sieve_removes_specks_across_seams(tmp_path: Path) -> None:
    arr = np.zeros((20, 20), np.uint8)
    arr[:, 10:] = 1
    arr[4, 4] = 2  # a speck inside a block
    arr[9, 9] = 2  # a speck on the corner of four blocks (block = 10... seam at 10)
    arr[9:11, 15] = 2  # 2 pixels straddling a horizontal seam
    path, _ = write_classes(tmp_path / "c.tif", arr)
    pieces = blockwise(path, block=10, sieve=3)
    assert sorted(p.class_id for p in pieces) == [0, 1]
    whole = features.sieve(arr, size=3, connectivity=4)
    assert_same_polygons(pieces, whole_array(whole))


def test_seam_merger_needs_a_shared_edge() -> None:
    merger = SeamMerger()
    a = Piece(1, shapely.box(0, 0, 2, 2), 4, 4)
    b = Piece(1, shapely.box(2, 2, 4, 4), 4, 2)  # touches a at a corner only
    c = Piece(1, shapely.box(2, 0, 4, 2), 4, 0)  # shares an edge with a and with b
    merger.add([a, b])
    assert len(merger.release(None)) == 2
    merger.add([a, b, c])
    merged = merger.release(None)
    assert len(merged) == 1 and merged[0].pixels == 12 and merged[0].conf_sum == 6


def test_block_pieces_offsets_to_scene_pixels() -> None:
    block = np.array([[1, 1], [0, 1]], np.uint8)
    pieces = block_pieces(block, None, col0=10, row0=20)
    ones = next(p for p in pieces if p.class_id == 1)
    assert shapely.bounds(ones.geom).tolist() == [10, 20, 12, 22]
    assert ones.pixels == 3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), height=st.integers(3, 25), width=st.integers(3, 25), classes=st.integers(1, 3))
def test_boundary_sums_equal_burned_sums(seed: int, height: int, width: int, classes: int) -> None:
    """Pixel counts and confidence sums from the boundary alone (holes included) equal burning each polygon."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, classes, size=(height, width)).astype(np.uint8)
    arr[rng.random(arr.shape) < 0.1] = CLASS_NODATA
    conf = rng.integers(1, 256, size=arr.shape).astype(np.uint8)
    pieces = block_pieces(arr, conf, col0=7, row0=3)
    assert len(pieces) == len(whole_array(arr))
    for piece in pieces:
        burned = features.rasterize([(piece.geom, 1)], out_shape=arr.shape, transform=Affine.translation(7, 3)) == 1
        assert piece.pixels == piece.geom.area == burned.sum()
        assert piece.conf_sum == pytest.approx(conf[burned].sum() / 255.0)
        assert (arr[burned] == piece.class_id).all()


def test_ring_with_holes_sums() -> None:
    arr = np.zeros((9, 9), np.uint8)
    arr[2:7, 2:7] = 1
    arr[4, 4] = 0  # a hole in the hole: an island of class 0 inside class 1 inside class 0
    conf = np.arange(81, dtype=np.uint8).reshape(9, 9)
    pieces = sorted(block_pieces(arr, conf, 0, 0), key=lambda p: (p.class_id, p.pixels))
    assert [(p.class_id, p.pixels) for p in pieces] == [(0, 1), (0, 56), (1, 24)]
    assert pieces[0].conf_sum * 255 == pytest.approx(40)
    assert pieces[2].conf_sum * 255 == pytest.approx(conf[arr == 1].sum())
    assert pieces[1].conf_sum * 255 == pytest.approx(conf.sum() - conf[arr == 1].sum() - 40)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), block=st.integers(4, 12), sieve=st.sampled_from([0, 3]))
def test_rows_in_any_strips_equal_the_raster_path(tmp_path: Path, seed: int, block: int, sieve: int) -> None:
    """Rows pushed in uneven strips (as the engine finishes them) give the polygons of the raster path."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 3, size=(14, 16)).astype(np.uint8)
    arr = np.kron(small, np.ones((2, 2), np.uint8))[:27, :31].copy()
    arr[rng.random(arr.shape) < 0.05] = CLASS_NODATA
    conf = rng.integers(1, 256, size=arr.shape).astype(np.uint8)
    path, conf_path = write_classes(tmp_path / f"c{seed}.tif", arr, conf)
    from_file = blockwise(path, block=block, sieve=sieve, conf=conf_path)
    rows = RowPolygonizer(31, 27, block=block, sieve=sieve)
    streamed: list[Piece] = []
    r0 = 0
    while r0 < 27:
        n = int(rng.integers(1, 9))
        rows.push(r0, arr[r0 : r0 + n], conf[r0 : r0 + n])
        streamed += [p for pieces in rows.finished() for p in pieces]
        r0 += n
    assert_same_polygons(streamed, [(p.class_id, p.geom) for p in from_file])
    key = sorted((p.class_id, p.pixels, round(p.conf_sum, 6)) for p in streamed)
    assert key == sorted((p.class_id, p.pixels, round(p.conf_sum, 6)) for p in from_file)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), block=st.integers(4, 12))
def test_the_streamed_sieve_is_sieve_raster(tmp_path: Path, seed: int, block: int) -> None:
    """The sieved blocks a RowPolygonizer hands on make the raster sieve_raster writes: one map, sieved once."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 3, size=(27, 31)).astype(np.uint8)
    arr[rng.random(arr.shape) < 0.05] = CLASS_NODATA
    path, _ = write_classes(tmp_path / f"c{seed}.tif", arr)
    with rasterio.open(sieve_raster(path, tmp_path / f"s{seed}.tif", 3, block)) as src:
        expected = src.read(1)
    streamed = np.full_like(arr, 77)

    def keep(win, classes) -> None:
        streamed[win.toslices()] = classes

    rows = RowPolygonizer(31, 27, block=block, sieve=3, on_sieved=keep)
    for r0 in range(0, 27, 5):
        rows.push(r0, arr[r0 : r0 + 5])
        for _ in rows.finished():
            pass
    assert np.array_equal(streamed, expected) and not np.array_equal(expected, arr)


def test_rows_out_of_order_are_refused() -> None:
    rows = RowPolygonizer(10, 10, block=4)
    rows.push(0, np.zeros((3, 10), np.uint8))
    with pytest.raises(ValueError, match="in order"):
        rows.push(4, np.zeros((3, 10), np.uint8))


def test_prefix_sums_by_rows_equal_numpy_cumsum() -> None:
    values = np.random.default_rng(0).integers(0, 256, size=(37, 23)).astype(np.uint8)
    q = prefix_sums(values)
    assert q.shape == (38, 24) and q.dtype == np.int64
    assert np.array_equal(q[1:, 1:], values.astype(np.int64).cumsum(0).cumsum(1))
    assert (q[0] == 0).all() and (q[:, 0] == 0).all()
