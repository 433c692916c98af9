"""The occupancy grid's cell and slot rule shared by the hub and the offline command."""

from __future__ import annotations

import numpy as np
import pytest

from storesense.floor_grid import cell_indices, slot_index


def test_cells_are_floor_of_metres_over_cell_size_negative_included() -> None:
    xy = np.array([[0.0, 0.0], [0.49, 0.51], [1.0, 2.24], [-0.01, -0.5]])
    assert cell_indices(xy, 0.5).tolist() == [[0, 0], [0, 1], [2, 4], [-1, -1]]
    assert cell_indices(np.empty((0, 2)), 0.5).shape == (0, 2)
    with pytest.raises(ValueError):
        cell_indices(xy, 0.0)


def test_a_time_on_a_slot_boundary_starts_the_next_slot() -> None:
    assert [slot_index(i / 10, 0.1) for i in range(6)] == [0, 1, 2, 3, 4, 5]  # 0.3/0.1 < 3
    assert slot_index(4.99, 5.0) == 0 and slot_index(5.0, 5.0) == 1
    assert slot_index(1_764_052_803.0, 5.0) == 352_810_560
    with pytest.raises(ValueError):
        slot_index(1.0, 0)
