"""Offline floor helpers (storesense_tools/floor_offline.py): video reading and the grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from storesense_tools.floor_offline import occupancy_grid, read_video


def test_occupancy_grid_means_per_cell_over_the_frames_of_each_interval() -> None:
    samples = [
        (0.0, np.array([[0.2, 0.2], [1.7, 0.1]])),
        (0.5, np.array([[0.3, 0.4]])),
        (1.0, np.empty((0, 2))),
        (1.5, np.array([[-0.5, 2.1], [np.nan, 0.0]])),
    ]
    grid = occupancy_grid(samples, cell_m=1.0, interval_s=1.0)
    assert grid == [(0.0, 0, 0, 1.0), (0.0, 1, 0, 0.5), (1.0, -1, 2, 0.5)]
    with pytest.raises(ValueError):
        occupancy_grid(samples, cell_m=0, interval_s=1.0)


def test_the_grid_is_person_seconds_over_observed_seconds_as_on_the_hub() -> None:
    """10 fps for 2 s, one person standing in cell (2, 1) for 0.7 s of the first second and
    two people in cell (0, 0) all the second one: the hub's rule (each frame a 0.1 s slot)
    gives 0.7 person-s / 1 s observed and 2.0 person-s / 1 s."""
    samples = []
    for i in range(20):
        t = i / 10  # exact multiples of the interval (1.0, 2.0) must start the next interval
        if i < 7:
            xy = np.array([[1.1, 0.6]])
        elif i < 10:
            xy = np.empty((0, 2))
        else:
            xy = np.array([[0.1, 0.1], [0.4, 0.2]])
        samples.append((t, xy))
    grid = occupancy_grid(samples, cell_m=0.5, interval_s=1.0)
    assert [(t, cx, cy) for t, cx, cy, _ in grid] == [(0.0, 2, 1), (1.0, 0, 0)]
    assert [mean for *_, mean in grid] == pytest.approx([0.7, 2.0])


def test_read_video_yields_every_frame_in_order_and_refuses_a_non_video(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for k in range(12):
        writer.write(np.full((48, 64, 3), k * 20, np.uint8))
    writer.release()
    fps, frames = read_video(str(clip))
    got = [int(f.mean()) for f in frames]
    assert fps == pytest.approx(5.0)
    assert len(got) == 12 and got == sorted(got)  # every frame, in the file's order
    assert len(list(read_video(str(clip), max_frames=4)[1])) == 4
    bad = tmp_path / "not-a-video.avi"
    bad.write_text("hello")
    with pytest.raises(ValueError):
        read_video(str(bad))
