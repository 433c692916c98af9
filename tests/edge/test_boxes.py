"""edge/boxes.py, the one box-overlap helper, against IoUs worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edge.boxes import areas, coverage_matrix, grow, intersection_matrix, iou_matrix


def test_iou_matches_hand_computed_values() -> None:
    a = np.array(
        [
            [0, 0, 4, 4],  # vs (2,2,6,6): 2x2 = 4 shared, union 16 + 16 - 4 = 28
            [0, 0, 10, 10],  # vs (5,0,15,10): 5x10 = 50 shared, union 150
            [0, 0, 10, 10],  # vs (2,2,4,4): inside, 4 / 100
        ],
        float,
    )
    b = np.array([[2, 2, 6, 6], [5, 0, 15, 10], [2, 2, 4, 4]], float)
    m = iou_matrix(a, b)
    assert m[0, 0] == pytest.approx(4 / 28)
    assert m[1, 1] == pytest.approx(50 / 150)
    assert m[2, 2] == pytest.approx(4 / 100)
    assert m[0, 1] == 0.0  # (0,0,4,4) and (5,0,15,10) do not touch
    assert m[1, 0] == pytest.approx(16 / 100)  # (2,2,6,6) lies inside (0,0,10,10)
    np.testing.assert_allclose(iou_matrix(b, a), m.T)  # symmetric


def test_against_a_pair_by_pair_reference_on_random_boxes() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (40, 2))
    wh = rng.uniform(1, 40, (40, 2))
    boxes = np.hstack([xy, xy + wh])

    def ref(p: np.ndarray, q: np.ndarray) -> float:
        iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        inter = iw * ih
        return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)

    want = np.array([[ref(p, q) for q in boxes[20:]] for p in boxes[:20]])
    np.testing.assert_allclose(iou_matrix(boxes[:20], boxes[20:]), want, rtol=1e-12)
    assert np.allclose(np.diag(iou_matrix(boxes, boxes)), 1.0)


def test_coverage_is_the_share_of_the_first_box_inside_the_second() -> None:
    head, body = [2, 2, 4, 4], [0, 0, 10, 10]
    np.testing.assert_allclose(coverage_matrix([head, body], [body, head]), [[1, 1], [1, 0.04]])
    assert intersection_matrix([head], [body])[0, 0] == 4


def test_degenerate_and_empty_inputs_give_zeros_not_nan() -> None:
    flat = np.array([[5, 5, 5, 9], [3, 3, 1, 1]], float)  # zero width; inverted
    assert areas(flat).tolist() == [0.0, 0.0]
    m = iou_matrix(flat, flat)
    assert np.isfinite(m).all() and (m == 0).all()
    assert np.isfinite(coverage_matrix(flat, [[0, 0, 10, 10]])).all()
    assert iou_matrix(np.empty((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert iou_matrix([[0, 0, 1, 1], [0, 0, 2, 2]], np.empty((0, 4))).shape == (2, 0)
    assert iou_matrix((0, 0, 2, 2), (1, 1, 3, 3))[0, 0] == pytest.approx(1 / 7)  # one box each


def test_grow_adds_a_share_of_width_and_height_on_every_side() -> None:
    np.testing.assert_allclose(grow([[10, 10, 20, 30]], 0.5), [[5, 0, 25, 40]])
    np.testing.assert_allclose(
        grow([[0, 0, 10, 10], [0, 0, 10, 10]], np.array([0.0, 0.1])),
        [[0, 0, 10, 10], [-1, -1, 11, 11]],
    )
