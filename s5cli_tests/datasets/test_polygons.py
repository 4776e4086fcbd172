import numpy as np
from shapely.geometry import Polygon

from s5cli.datasets.polygons import clip_to_window, corners_of, degenerate, make_clockwise, signed_area

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
