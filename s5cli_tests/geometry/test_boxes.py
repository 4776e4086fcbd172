import math

import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s5cli.geometry.boxes import (
    hbox_iou,
    hboxes_to_rboxes,
    polygons_to_hboxes,
    polygons_to_rboxes,
    rboxes_to_corners,
    rboxes_to_hboxes,
    rboxes_to_polygons,
    rectangles_to_rboxes,
    regularize_rboxes,
    wrap_angle,
)


def random_rboxes(n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=gen, dtype=dtype) * 100
    size = torch.rand(n, 2, generator=gen, dtype=dtype) * 50 + 1
    angle = (torch.rand(n, 1, generator=gen, dtype=dtype) - 0.5) * 2 * math.pi
    return torch.cat([centre, size, angle], 1)


def test_corners_of_axis_aligned_box_are_clockwise_on_screen():
    poly = rboxes_to_polygons(torch.tensor([[10.0, 20.0, 8.0, 4.0, 0.0]]))
    assert poly.tolist() == [[6.0, 18.0, 14.0, 18.0, 14.0, 22.0, 6.0, 22.0]]


def test_positive_angle_turns_counter_clockwise_on_screen():
    # w side along (cos a, -sin a): at a = pi/4 the right end of the long side goes up (smaller y).
    c = rboxes_to_corners(torch.tensor([[0.0, 0.0, 2 * math.sqrt(2), 0.0, math.pi / 4]], dtype=torch.float64))[0]
    assert torch.allclose(c[1], torch.tensor([1.0, -1.0], dtype=torch.float64))  # right end: up and right
    assert torch.allclose(c[0], torch.tensor([-1.0, 1.0], dtype=torch.float64))


def test_regularize_swaps_sides_and_wraps_angle():
    r = regularize_rboxes(torch.tensor([[0.0, 0.0, 4.0, 10.0, 0.0], [0.0, 0.0, 10.0, 4.0, math.pi]]))
    assert torch.allclose(r[0], torch.tensor([0.0, 0.0, 10.0, 4.0, -math.pi / 2]))
    assert torch.allclose(r[1], torch.tensor([0.0, 0.0, 10.0, 4.0, 0.0]), atol=1e-6)
    assert wrap_angle(torch.tensor([math.pi / 2], dtype=torch.float64)).item() == -math.pi / 2


def test_hboxes_to_rboxes_upright_box():
    r = hboxes_to_rboxes(torch.tensor([[0.0, 0.0, 4.0, 10.0], [0.0, 0.0, 10.0, 4.0]]))
    assert torch.allclose(r, torch.tensor([[2.0, 5.0, 10.0, 4.0, -math.pi / 2], [5.0, 2.0, 10.0, 4.0, 0.0]]))
    back = polygons_to_hboxes(rboxes_to_polygons(r))
    assert torch.allclose(back, torch.tensor([[0.0, 0.0, 4.0, 10.0], [0.0, 0.0, 10.0, 4.0]]), atol=1e-5)


def test_polygons_to_rboxes_round_trip_any_corner_order():
    boxes = regularize_rboxes(random_rboxes(500))
    boxes = boxes[(boxes[:, 2] - boxes[:, 3]) > 1e-3]  # squares have two valid angles
    polys = rboxes_to_polygons(boxes)
    shuffled = polys.reshape(-1, 4, 2)[:, [2, 0, 3, 1]].reshape(-1, 8)
    for p in (polys, shuffled):
        back = polygons_to_rboxes(p)
        diff = back - boxes
        diff[:, 4] = wrap_angle(diff[:, 4])  # a rectangle's angle is defined modulo pi
        assert diff.abs().max() < 1e-9


def test_polygons_to_rboxes_fits_minimum_area_rectangle_of_a_quad():
    # A non-rectangular quad (a kite-like DOTA annotation): the fit must contain it with minimum area.
    quad = torch.tensor([[0.0, 0.0, 10.0, 1.0, 11.0, 6.0, 1.0, 5.0]], dtype=torch.float64)
    box = polygons_to_rboxes(quad)

    mrr = shapely.minimum_rotated_rectangle(shapely.Polygon(quad.reshape(4, 2).numpy()))
    assert abs(box[0, 2] * box[0, 3] - mrr.area) < 1e-9
    ours = shapely.Polygon(rboxes_to_corners(box)[0].numpy())
    assert ours.buffer(1e-9).contains(shapely.Polygon(quad.reshape(4, 2).numpy()))


def test_degenerate_polygon_becomes_zero_size_box():
    box = polygons_to_rboxes(torch.tensor([[3.0, 4.0] * 4]))
    assert box.tolist() == [[3.0, 4.0, 0.0, 0.0, 0.0]]


def test_rectangles_to_rboxes_inverts_corners():
    boxes = regularize_rboxes(random_rboxes(100, seed=1))
    back = rectangles_to_rboxes(rboxes_to_corners(boxes))
    keep = (boxes[:, 2] - boxes[:, 3]) > 1e-3
    d = back[keep] - boxes[keep]
    d[:, 4] = wrap_angle(d[:, 4])
    assert d.abs().max() < 1e-9


def test_enclosing_hbox_of_rotated_square():
    h = rboxes_to_hboxes(torch.tensor([[0.0, 0.0, 2.0, 2.0, math.pi / 4]], dtype=torch.float64))
    s = math.sqrt(2)
    assert torch.allclose(h, torch.tensor([[-s, -s, s, s]], dtype=torch.float64))


def test_hbox_iou_known_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    assert torch.allclose(hbox_iou(a, b), torch.tensor([[1 / 3, 0.0, 1.0]]))


@settings(max_examples=50, deadline=None)
@given(
    st.floats(-500, 500),
    st.floats(-500, 500),
    st.floats(1, 300),
    st.floats(1, 300),
    st.floats(-10, 10),
)
def test_regularized_box_keeps_its_polygon(cx, cy, w, h, a):
    box = torch.tensor([[cx, cy, w, h, a]], dtype=torch.float64)
    reg = regularize_rboxes(box)
    assert reg[0, 2] >= reg[0, 3]
    assert -math.pi / 2 <= reg[0, 4] < math.pi / 2
    same = polygons_to_hboxes(rboxes_to_polygons(reg)) - polygons_to_hboxes(rboxes_to_polygons(box))
    assert same.abs().max() < 1e-6
