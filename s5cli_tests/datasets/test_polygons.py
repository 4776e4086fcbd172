import numpy as np
from shapely.geometry import Polygon

from s5cli.datasets.polygons import (
    clip_to_window,
    corners_of,
    degenerate,
    make_clockwise,
    objects_in_window,
    signed_area,
    untangle,
    window_iof,
)

SQUARE = np.array([[0, 0, 2, 0, 2, 2, 0, 2]], dtype=np.float64)  # clockwise on screen (y down)


def test_winding() -> None:
    assert signed_area(SQUARE).tolist() == [4.0]
    ccw = SQUARE[:, [0, 1, 6, 7, 4, 5, 2, 3]]
    assert signed_area(ccw).tolist() == [-4.0]
    assert make_clockwise(ccw).tolist() == SQUARE.tolist()


def test_degenerate() -> None:
    polys = np.array([[0, 0, 0, 0, 2, 2, 0, 2], [0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 2, 0, 2, 2, 0, 2]], dtype=float)
    assert degenerate(polys).tolist() == [True, True, False]


def test_corners_of_rotated_rectangle() -> None:
    diamond = Polygon([(2, 0), (4, 2), (2, 4), (0, 2)])
    assert sorted(map(tuple, corners_of(diamond).reshape(4, 2).round(6).tolist())) == [(0, 2), (2, 0), (2, 4), (4, 2)]
    assert signed_area(corners_of(diamond)[None]).tolist()[0] > 0


def test_clip_to_window() -> None:
    polys = np.array(
        [
            [1, 1, 3, 1, 3, 3, 1, 3],  # inside
            [8, 1, 12, 1, 12, 3, 8, 3],  # half outside (iof 0.5)
            [9, 5, 11, 5, 11, 7, 9, 7],  # 1/2 inside
            [2, 9, 5, 9, 5, 10.5, 2, 10.5],  # 2/3 inside
            [20, 20, 22, 20, 22, 22, 20, 22],  # outside
        ],
        dtype=float,
    )
    clipped, keep, cut = clip_to_window(polys, (0, 0, 10, 10), min_iof=0.6)
    assert keep.tolist() == [0, 3] and cut.tolist() == [False, True]
    assert clipped.tolist() == [[1, 1, 3, 1, 3, 3, 1, 3], [2, 9, 5, 9, 5, 10, 2, 10]]
    clipped, keep, _ = clip_to_window(polys, (5, 0, 10, 10), min_iof=0.5)
    assert keep.tolist() == [1, 2]
    assert clipped[0].tolist() == [3, 1, 7, 1, 7, 3, 3, 3]
    empty, keep, cut = clip_to_window(np.zeros((0, 8)), (0, 0, 4, 4))
    assert empty.shape == (0, 8) and keep.shape == (0,) and cut.shape == (0,)


def test_untangle_reorders_crossing_corners_along_the_hull() -> None:
    polys = np.array(
        [
            [0, 0, 10, 10, 10, 0, 0, 10],  # edges 0 and 2 cross
            [0, 0, 0, 10, 10, 0, 10, 10],  # edges 1 and 3 cross
            [0, 0, 10, 5, 0, 10, 3, 5],  # concave but simple: unchanged
        ],
        dtype=float,
    )
    out = untangle(polys)
    assert out[0].tolist() == [0, 0, 10, 0, 10, 10, 0, 10]
    assert out[1].tolist() == [0, 0, 0, 10, 10, 10, 10, 0]
    assert out[2].tolist() == polys[2].tolist()


def test_window_iof_is_exact_along_the_window_edges() -> None:
    polys = np.array(
        [
            [0, 0, 4, 0, 4, 4, 0, 4],  # on the window's corner, inside: 1
            [8, 0, 12, 0, 12, 4, 8, 4],  # its top edge on the window's top edge: 1/2
            [-3, 2, 1, 2, 1, 6, -3, 6],  # 1/4 inside
            [10, 0, 14, 0, 14, 4, 10, 4],  # touches the window's right edge only: 0
            [2, 2, 2, 2, 2, 2, 2, 2],  # no area: 0
            [4, 4, 9, 4, 4, 9, 6, 6],  # concave dart, inside: 1
        ],
        dtype=float,
    )
    assert window_iof(polys, (0, 0, 10, 10)).tolist() == [1.0, 0.5, 0.25, 0.0, 0.0, 1.0]


def test_objects_in_window_keep_whole_polygons() -> None:
    polys = np.array(
        [
            [1, 1, 3, 1, 3, 3, 1, 3],  # inside
            [7, 1, 17, 1, 17, 3, 7, 3],  # iof 0.3: out
            [3, 7, 13, 7, 13, 9, 3, 9],  # iof 0.7 exactly: in, whole, truncated
            [4, 4, 14, 4, 14, 6, 4, 6],  # iof 0.6: out
        ],
        dtype=float,
    )
    rel, keep, cut = objects_in_window(polys, (0, 0, 10, 10), min_iof=0.7)
    assert keep.tolist() == [0, 2] and cut.tolist() == [False, True]
    assert rel.tolist() == polys[[0, 2]].tolist()  # not clipped: the cut one still reaches x = 13
    rel, keep, cut = objects_in_window(polys, (2, 0, 10, 10), min_iof=0.7)  # iof 0.5, 0.5, 0.9, 0.8
    assert keep.tolist() == [2, 3] and cut.tolist() == [True, True]
    assert rel[0].tolist() == [1, 7, 11, 7, 11, 9, 1, 9]  # in the window's coordinates
    empty, keep, cut = objects_in_window(np.zeros((0, 8)), (0, 0, 4, 4))
    assert empty.shape == (0, 8) and keep.shape == (0,) and cut.shape == (0,)
