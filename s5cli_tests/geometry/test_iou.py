import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s5cli.geometry.boxes import rboxes_to_corners
from s5cli.geometry.iou import is_convex, quad_iou_aligned, rotated_iou, rotated_iou_aligned


def shapely_iou(a, b):
    pa = shapely.polygons(rboxes_to_corners(a).double().numpy())
    pb = shapely.polygons(rboxes_to_corners(b).double().numpy())
    inter = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    union = shapely.area(pa)[:, None] + shapely.area(pb)[None, :] - inter
    return inter / union


def random_rboxes(n, seed, dtype=torch.float64, spread=60.0):
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=gen, dtype=dtype) * spread
    size = torch.rand(n, 2, generator=gen, dtype=dtype) * 40 + 0.5
    angle = (torch.rand(n, 1, generator=gen, dtype=dtype) - 0.5) * 2 * math.pi
    return torch.cat([centre, size, angle], 1)


def test_box_with_itself_is_one():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 5.0, 0.3], [1000.5, 700.25, 40.0, 40.0, -1.2], [0.0, 0.0, 1.0, 1.0, 0.0]])
    assert torch.allclose(rotated_iou(boxes, boxes).diagonal(), torch.ones(3), atol=1e-5)


def test_square_against_itself_rotated_45_degrees():
    # The overlap is a regular octagon of area 2(sqrt2 - 1) s^2 (the square minus four corner triangles of
    # legs s(1 - 1/sqrt2)), the union 2 s^2 minus it, so IoU = (sqrt2 - 1) / (2 - sqrt2) = 1/sqrt2 = 0.7071...
    s = 10.0
    octagon = 2 * (math.sqrt(2) - 1) * s * s
    expected = octagon / (2 * s * s - octagon)
    assert expected == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    square = torch.tensor([[5.0, 5.0, s, s, 0.0]], dtype=torch.float64)
    turned = torch.tensor([[5.0, 5.0, s, s, math.pi / 4]], dtype=torch.float64)
    assert rotated_iou(square, turned).item() == pytest.approx(expected, abs=1e-12)
    assert rotated_iou(square.float(), turned.float()).item() == pytest.approx(0.7071, abs=1e-4)


def test_known_cases():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0]], dtype=torch.float64)
    b = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0, math.pi / 2],  # the same square turned a quarter: identical
            [5.0, 0.0, 10.0, 10.0, 0.0],  # half overlap: 50 / 150
            [10.0, 0.0, 10.0, 10.0, 0.0],  # shared edge only
            [10.0, 10.0, 10.0, 10.0, 0.0],  # shared corner only
            [0.0, 0.0, 4.0, 2.0, 0.7],  # inside: area ratio 8 / 100
            [30.0, 0.0, 10.0, 10.0, 0.3],  # far apart
            [0.0, 0.0, 0.0, 10.0, 0.2],  # degenerate (zero width)
        ],
        dtype=torch.float64,
    )
    expected = torch.tensor([[1.0, 1 / 3, 0.0, 0.0, 0.08, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(rotated_iou(a, b), expected, atol=1e-12)


def test_degenerate_boxes_give_zero_not_nan():
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0, 0.5]])
    iou = rotated_iou(boxes, boxes)
    assert torch.isfinite(iou).all() and (iou == 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_agrees_with_shapely_on_random_boxes(dtype):
    a, b = random_rboxes(200, 0, dtype), random_rboxes(150, 1, dtype)
    ours = rotated_iou(a, b).double().numpy()
    ref = shapely_iou(a, b)
    assert (ref > 0).mean() > 0.3  # many overlapping pairs, not a trivial comparison
    assert np.abs(ours - ref).max() < 1e-4


def test_agrees_with_shapely_far_from_origin_in_float32():
    a = random_rboxes(100, 2)
    b = a.clone()
    b[:, :2] += torch.rand(100, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 10
    b[:, 4] += 0.2
    a[:, :2] += 5000
    b[:, :2] += 5000
    ours = rotated_iou_aligned(a.float(), b.float()).double().numpy()
    ref = np.diag(shapely_iou(a, b))
    assert np.abs(ours - ref).max() < 1e-4


def test_quads_of_any_orientation():
    corners = rboxes_to_corners(random_rboxes(50, 4))
    assert torch.allclose(quad_iou_aligned(corners, corners.flip(1)), torch.ones(50, dtype=torch.float64))


def test_empty_inputs():
    assert rotated_iou(torch.zeros(0, 5), torch.zeros(3, 5)).shape == (0, 3)
    assert rotated_iou_aligned(torch.zeros(0, 5), torch.zeros(0, 5)).shape == (0,)


box = st.tuples(
    st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 40), st.floats(0.5, 40), st.floats(-math.pi, math.pi)
)


@settings(max_examples=60, deadline=None)
@given(box, box)
def test_iou_properties(p, q):
    a = torch.tensor([p], dtype=torch.float64)
    b = torch.tensor([q], dtype=torch.float64)
    ab, ba = rotated_iou(a, b).item(), rotated_iou(b, a).item()
    assert 0.0 <= ab <= 1.0 + 1e-12
    assert ab == pytest.approx(ba, abs=1e-9)
    assert rotated_iou(a, a).item() == pytest.approx(1.0, abs=1e-9)
    assert ab == pytest.approx(shapely_iou(a, b).item(), abs=1e-6)


def test_boxes_without_area_have_iou_zero():
    empty = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0, 0.3], [5.0, 5.0, 0.0, 3.0, 0.3]])
    square = torch.tensor([[0.0, 0.0, 4.0, 4.0, 0.0]]).expand(3, 5)
    assert rotated_iou_aligned(empty, square).tolist() == [0.0, 0.0, 0.0]  # was 3.0 and 1.6e10
    assert rotated_iou_aligned(empty, empty).tolist() == [0.0, 0.0, 0.0]


# Pairs of float32 boxes that touch along a side (b = a shifted by its width along its own axis), for which
# the old parallel-edge tolerance (1e-12 of the squared size) took the rounding of the shared line for a
# crossing and gave IoU 0.01-0.07.
TOUCHING = [
    ([131.624786, 141.903717, 44.1219215, 26.1313477, -0.720565677], [164.779434, 171.015793]),
    ([529.141052, 755.791443, 28.9062138, 21.6900864, -0.788453341], [549.518311, 776.293579]),
    ([101.855324, 60.4996719, 37.1051445, 49.0710564, 0.41119346], [135.867538, 45.6686134]),
    ([27.1837959, 133.261368, 10.3334904, 40.8662987, 1.44385481], [28.4920254, 123.011017]),
]


def test_float32_boxes_that_touch_do_not_overlap():
    a = torch.tensor([box for box, _ in TOUCHING])
    b = a.clone()
    b[:, :2] = torch.tensor([centre for _, centre in TOUCHING])
    assert rotated_iou_aligned(a, b).max().item() < 1e-4
    # Many random touching pairs, along either side, in float32.
    gen = torch.Generator().manual_seed(7)
    n = 20000
    boxes = torch.cat(
        [torch.rand(n, 2, generator=gen) * 1000, torch.rand(n, 2, generator=gen) * 50 + 1,
         (torch.rand(n, 1, generator=gen) - 0.5) * math.pi], 1,
    ).double()  # fmt: skip
    along_w = torch.rand(n, generator=gen) < 0.5
    cos, sin = boxes[:, 4].cos(), boxes[:, 4].sin()
    step = torch.where(
        along_w[:, None], torch.stack([cos, -sin], 1) * boxes[:, 2:3], torch.stack([sin, cos], 1) * boxes[:, 3:4]
    )
    other = boxes.clone()
    other[:, :2] += step
    assert rotated_iou_aligned(boxes.float(), other.float()).max().item() < 1e-3


def test_concave_quads_agree_with_shapely():
    gen = np.random.default_rng(3)
    pairs = []
    while len(pairs) < 400:
        p, q = gen.uniform(0, 20, (4, 2)), gen.uniform(0, 20, (4, 2))
        sp, sq = shapely.Polygon(p), shapely.Polygon(q)
        if sp.is_valid and sq.is_valid and min(sp.area, sq.area) > 1:
            pairs.append((p, q, sp.intersection(sq).area / sp.union(sq).area))
    p = torch.tensor(np.stack([a for a, _, _ in pairs]))
    q = torch.tensor(np.stack([b for _, b, _ in pairs]))
    ours = quad_iou_aligned(p, q).numpy()
    assert (~(is_convex(p) & is_convex(q))).sum() > 100  # many pairs have a dent
    assert np.abs(ours - np.array([r for _, _, r in pairs])).max() < 1e-12
