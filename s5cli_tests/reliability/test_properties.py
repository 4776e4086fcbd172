"""Property-based tests (hypothesis): label parsers, palettes, the window grid, rotated-box IoU."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s5cli.datasets.base import colours_to_index
from s5cli.datasets.dior import parse_obb_xml
from s5cli.datasets.dota import parse_label_txt
from s5cli.datasets.registry import DATASETS
from s5cli.errors import InputError
from s5cli.geo.tiles import iter_rows, window_grid
from s5cli.geometry.boxes import rboxes_to_corners
from s5cli.geometry.iou import rotated_iou, rotated_iou_aligned

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOTA_CLASSES = {c: i for i, c in enumerate(DATASETS["dota-v2.0"].classes)}
DIOR_CLASSES = {c: i for i, c in enumerate(DATASETS["dior-r"].classes)}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module: each example rewrites its file (function fixtures do not reset per example)."""
    return tmp_path_factory.mktemp("properties")


# ---- DOTA labelTxt ----------------------------------------------------------------------------------

coordinate = st.one_of(
    st.integers(-5000, 25000).map(str),  # v1.0 writes integers
    st.floats(-5000, 25000, allow_nan=False).map(lambda v: f"{v:.1f}"),  # later versions floats
)
dota_object = st.tuples(
    st.lists(coordinate, min_size=8, max_size=8),
    st.sampled_from(sorted(DOTA_CLASSES)),
    st.sampled_from([None, "0", "1", "2"]),  # difficulty flag absent, easy, difficult, truncated (patch tools)
    st.sampled_from([str.lower, str.upper, str.title]),  # class names match case-insensitively
)
header = st.sampled_from(["imagesource:GoogleEarth", "gsd:0.146343590398", "gsd:null", "imagesource:GF2", ""])


@SETTINGS
@given(headers=st.lists(header, max_size=3), objects=st.lists(dota_object, max_size=12))
def test_dota_lines_round_trip(scratch: Path, headers: list[str], objects: list) -> None:
    lines = list(headers)
    for coords, name, flag, case in objects:
        lines.append(" ".join([*coords, case(name), *([flag] if flag is not None else [])]))
    path = scratch / "P0000.txt"
    path.write_text("\n".join(lines) + "\n")
    polys, labels, difficult, truncated = parse_label_txt(path, DOTA_CLASSES)
    assert polys.shape == (len(objects), 8)
    assert polys.tolist() == [[float(v) for v in coords] for coords, _, _, _ in objects]
    assert labels.tolist() == [DOTA_CLASSES[name] for _, name, _, _ in objects]
    assert difficult.tolist() == [flag == "1" for _, _, flag, _ in objects]
    assert truncated.tolist() == [flag == "2" for _, _, flag, _ in objects]


junk_token = st.one_of(
    st.sampled_from(["plane", "ship", "nan", "inf", "-inf", "1e999", "0x10", "", "gsd:", "1,5", "½", "NaN"]),
    st.integers(-10, 10).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
number_like = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "1_000", "0x10", "1,5", "", "x"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
object_like = st.tuples(
    st.lists(number_like, min_size=8, max_size=8),
    st.sampled_from(sorted(DOTA_CLASSES)),
    st.lists(junk_token, max_size=2),
).map(lambda t: " ".join([*t[0], t[1], *t[2]]))
junk_line = st.one_of(st.lists(junk_token, max_size=12).map(" ".join), st.text(max_size=40), object_like)


@SETTINGS
@given(lines=st.lists(junk_line, max_size=8), raw=st.binary(max_size=40))
def test_dota_junk_is_an_input_error_or_finite_objects(scratch: Path, lines: list[str], raw: bytes) -> None:
    path = scratch / "P0001.txt"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n" + raw)
    try:
        polys, labels, difficult, truncated = parse_label_txt(path, DOTA_CLASSES)
    except InputError as exc:
        assert exc.path == str(path) and "\n" not in exc.message
        return
    assert np.isfinite(polys).all()  # a NaN or infinite corner would poison every loss downstream
    assert polys.shape == (len(labels), 8) and len(difficult) == len(truncated) == len(labels)
    assert ((labels >= 0) & (labels < len(DOTA_CLASSES))).all()


# ---- DIOR-R XML ---------------------------------------------------------------------------------------

CORNERS = ("x_left_top", "y_left_top", "x_right_top", "y_right_top",
           "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom")  # fmt: skip


@st.composite
def dior_box(draw) -> list[float]:
    """Corners of a rectangle of any orientation, in half pixels (exact in float32): p, p + u, p + u + v, p + v."""
    x, y = draw(st.integers(0, 1200)), draw(st.integers(0, 1200))
    a, b = draw(st.tuples(st.integers(-60, 60), st.integers(-60, 60)).filter(lambda ab: ab != (0, 0)))
    c = draw(st.integers(1, 4))
    u, v = (a, b), (-c * b, c * a)  # v is u turned a quarter and scaled: area c (a^2 + b^2) > 0
    corners = [(x, y), (x + u[0], y + u[1]), (x + u[0] + v[0], y + u[1] + v[1]), (x + v[0], y + v[1])]
    return [coord / 2 for corner in corners for coord in corner]


dior_object = st.tuples(
    dior_box(),
    st.sampled_from(sorted(DIOR_CLASSES)),
    st.sampled_from([str.lower, str.title, lambda s: s.replace("expressway", "Expressway")]),
    st.booleans(),
    st.booleans(),
)


def _dior_xml(objects: list) -> str:
    parts = ["<annotation><filename>00001.jpg</filename><size><width>800</width><height>800</height></size>"]
    for corners, name, case, difficult, truncated in objects:
        box = "".join(f"<{tag}>{value:g}</{tag}>" for tag, value in zip(CORNERS, corners))
        parts.append(
            f"<object><type>robndbox</type><name>{case(name)}</name><pose>Unspecified</pose>"
            f"<truncated>{int(truncated)}</truncated><difficult>{int(difficult)}</difficult>"
            f"<robndbox>{box}</robndbox><angle>0</angle></object>"
        )
    return "".join(parts) + "</annotation>"


@SETTINGS
@given(objects=st.lists(dior_object, max_size=10))
def test_dior_xml_round_trip(scratch: Path, objects: list) -> None:
    path = scratch / "00001.xml"
    path.write_text(_dior_xml(objects))
    polys, labels, difficult, truncated = parse_obb_xml(path, DIOR_CLASSES)
    assert polys.dtype == np.float32 and polys.tolist() == [list(corners) for corners, *_ in objects]
    assert labels.tolist() == [DIOR_CLASSES[name] for _, name, *_ in objects]
    assert difficult.tolist() == [d for *_, d, _ in objects]
    assert truncated.tolist() == [t for *_, t in objects]


@SETTINGS
@given(objects=st.lists(dior_object, min_size=1, max_size=4), cut=st.integers(0, 2000), value=junk_token)
def test_dior_broken_xml_is_an_input_error(scratch: Path, objects: list, cut: int, value: str) -> None:
    text = _dior_xml(objects)
    path = scratch / "00002.xml"
    # a truncated file, or one corner replaced by junk
    path.write_text(
        text[: cut % len(text)] if cut % 2 else text.replace(f"<{CORNERS[0]}>", f"<{CORNERS[0]}>{value}", 1)
    )
    try:
        polys, *_ = parse_obb_xml(path, DIOR_CLASSES)
    except InputError as exc:
        assert exc.path == str(path) and "\n" not in exc.message
        return
    assert np.isfinite(polys).all()


# ---- palettes ------------------------------------------------------------------------------------------

PALETTED = [name for name, info in DATASETS.items() if info.palette]


@pytest.mark.parametrize("name", PALETTED)
def test_palettes_are_one_to_one(name: str) -> None:
    info = DATASETS[name]
    assert len(info.palette) == len(info.classes) and len(set(info.palette)) == len(info.palette)


@pytest.mark.parametrize("name", PALETTED)
@SETTINGS
@given(data=st.data())
def test_every_palette_colour_maps_to_its_class_and_others_to_ignore(name: str, data) -> None:
    info = DATASETS[name]
    table = {tuple(colour): k for k, colour in enumerate(info.palette)}
    colour = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
    pixels = data.draw(st.lists(st.one_of(st.sampled_from(list(table)), colour), min_size=1, max_size=64))
    rgb = np.asarray(pixels, dtype=np.uint8).T.reshape(3, 1, len(pixels))
    got = colours_to_index(rgb, table)[0].tolist()
    assert got == [table.get(tuple(p), 255) for p in pixels]
    every = np.asarray(list(table), dtype=np.uint8).T.reshape(3, 1, len(table))
    assert colours_to_index(every, table)[0].tolist() == list(range(len(table)))  # every colour, its class


# ---- the window grid ---------------------------------------------------------------------------------------


@SETTINGS
@given(
    width=st.integers(1, 600),
    height=st.integers(1, 600),
    size=st.integers(16, 160),
    overlap_fraction=st.floats(0.0, 0.95),
)
def test_window_grid_covers_everything_inside_the_bounds(
    width: int, height: int, size: int, overlap_fraction: float
) -> None:
    overlap = min(int(size * overlap_fraction), size - 1)
    windows = window_grid(width, height, size, overlap)
    covered = np.zeros((height, width), dtype=np.int32)
    for w in windows:
        assert (w.width, w.height) == (size, size)  # every window is one tile; the reader pads past the edge
        assert w.col_off >= 0 and w.row_off >= 0
        # inside the raster, except for a side shorter than a tile: then one window from 0, padded
        assert w.col_off + size <= width or (width < size and w.col_off == 0)
        assert w.row_off + size <= height or (height < size and w.row_off == 0)
        covered[w.row_off : w.row_off + size, w.col_off : w.col_off + size] += 1
    assert (covered >= 1).all()  # full coverage
    rows = list(iter_rows(windows))
    cols = [w.col_off for w in rows[0]]
    starts = [r[0].row_off for r in rows]
    assert all([w.col_off for w in r] == cols for r in rows)  # a regular, row-major grid
    for offsets in (cols, starts):
        steps = np.diff(offsets)
        assert (steps > 0).all() and (steps <= size - overlap).all()  # neighbours share >= overlap pixels
        assert (steps[:-1] == size - overlap).all()  # only the last window snaps to the edge


# ---- rotated boxes ---------------------------------------------------------------------------------------

rbox = st.tuples(
    st.floats(-100, 100), st.floats(-100, 100), st.floats(1, 80), st.floats(1, 80), st.floats(-math.pi, math.pi)
)


def _polygon(box: tuple) -> shapely.Polygon:
    return shapely.Polygon(rboxes_to_corners(torch.tensor([box], dtype=torch.float64))[0].tolist())


@SETTINGS
@given(a=st.lists(rbox, min_size=1, max_size=6), b=st.lists(rbox, min_size=1, max_size=6))
def test_rotated_iou_is_symmetric_bounded_and_exact(a: list, b: list) -> None:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    iou = rotated_iou(ta, tb)
    assert iou.shape == (len(a), len(b))
    torch.testing.assert_close(iou, rotated_iou(tb, ta).T, rtol=0, atol=1e-9)
    assert ((iou >= 0) & (iou <= 1 + 1e-9)).all()
    for i, j in [(0, 0), (len(a) - 1, len(b) - 1)]:
        pa, pb = _polygon(a[i]), _polygon(b[j])
        exact = pa.intersection(pb).area / pa.union(pb).area
        assert float(iou[i, j]) == pytest.approx(exact, abs=1e-6)


@SETTINGS
@given(boxes=st.lists(rbox, min_size=1, max_size=8), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_rotated_iou_of_a_box_with_itself_is_one(boxes: list, dtype: torch.dtype) -> None:
    t = torch.tensor(boxes, dtype=dtype)
    same = rotated_iou_aligned(t, t)
    torch.testing.assert_close(same, torch.ones(len(boxes), dtype=dtype), rtol=0, atol=1e-4)
    torch.testing.assert_close(torch.diagonal(rotated_iou(t, t)), same, rtol=0, atol=1e-6)
