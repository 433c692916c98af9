"""Fixed-lag smoothing: gaps of re-found people filled on the line, nothing lost or reordered.

Synthetic frames, because the rule is geometric and exact; the real-footage effect (recall up
on both MOT clips) is in test_pipeline.py's PETS09 test and bench/floor_smoothing.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.floor.person_tracker import TrackedPerson
from edge.floor.pipeline import FloorFrame
from edge.floor.smoothing import FixedLagSmoother

FPS = 10.0


def frame(t: float, people: dict[int, tuple[float, float, float]]) -> FloorFrame:
    """people: id -> (x px, floor x m, coasted_s); a 20x60 box with its foot at (x, 200)."""
    ps, feet, floor = [], [], []
    for tid, (x, fx, coasted) in people.items():
        box = np.array([x - 10, 140, x + 10, 200], float)
        ps.append(TrackedPerson(tid, box, 0.6, coasted))
        feet.append((x, 200.0))
        floor.append((fx, 3.0))
    return FloorFrame(
        t=t,
        frame_size=(480, 360),
        people=ps,
        foot_px=np.array(feet, float).reshape(-1, 2),
        floor_xy=np.array(floor, float).reshape(-1, 2),
    )


def run(sm: FixedLagSmoother, frames: list[FloorFrame]) -> list[tuple[FloorFrame, float]]:
    out = []
    for f in frames:
        out += sm.push(f, 1000.0 + f.t)
    return out + sm.flush()


def walker(n: int, missing: set[int], coast_missing: bool = False) -> list[FloorFrame]:
    """Person 7 walks 10 px and 0.1 m per frame; absent (or coasted) in ``missing`` frames."""
    out = []
    for i in range(n):
        t = i / FPS
        if i in missing:
            people = {7: (100 + 10 * i + 5, 1.0 + 0.1 * i + 0.05, t)} if coast_missing else {}
        else:
            people = {7: (100 + 10 * i, 1.0 + 0.1 * i, 0.0)}
        out.append(frame(t, people))
    return out


def test_a_gap_of_a_person_seen_again_is_filled_on_the_line_and_marked_coasted() -> None:
    sm = FixedLagSmoother(0.75, max_gap_s=0.75, drop_unresolved=False)
    out = run(sm, walker(12, missing={4, 5, 6}))
    assert [f.t for f, _ in out] == [i / FPS for i in range(12)]  # every frame, in order
    assert [w for _, w in out] == [1000.0 + i / FPS for i in range(12)]
    for i in (4, 5, 6):
        (p,) = out[i][0].people
        assert p.track_id == 7
        assert p.coasted_s == pytest.approx((i - 3) / FPS)  # since the last sighting
        np.testing.assert_allclose(p.box, [100 + 10 * i - 10, 140, 100 + 10 * i + 10, 200])
        np.testing.assert_allclose(out[i][0].foot_px[0], [100 + 10 * i, 200])
        np.testing.assert_allclose(out[i][0].floor_xy[0], [1.0 + 0.1 * i, 3.0])
    assert sm.filled == 3 and sm.dropped == 0


def test_a_coasted_prediction_is_replaced_by_the_line_once_the_person_is_seen_again() -> None:
    sm = FixedLagSmoother(0.75, max_gap_s=0.75, drop_unresolved=False)
    out = run(sm, walker(12, missing={4, 5}, coast_missing=True))
    for i in (4, 5):
        (p,) = out[i][0].people
        np.testing.assert_allclose(out[i][0].floor_xy[0], [1.0 + 0.1 * i, 3.0])  # not +0.05
        assert p.coasted_s == pytest.approx((i - 3) / FPS)
    assert sm.filled == 2  # replaced predictions count as filled


def test_a_gap_longer_than_max_gap_is_left_alone() -> None:
    sm = FixedLagSmoother(2.0, max_gap_s=0.5, drop_unresolved=False)
    out = run(sm, walker(20, missing=set(range(4, 12))))  # 0.9 s between sightings
    assert all(not out[i][0].people for i in range(4, 12))
    assert sm.filled == 0


def test_unresolved_predictions_are_kept_or_dropped_as_asked() -> None:
    """A person coasted at the end of the clip who is never seen again: a prediction only."""
    frames = walker(10, missing={7, 8, 9}, coast_missing=True)
    kept = run(FixedLagSmoother(0.5, drop_unresolved=False), frames)
    assert [len(f.people) for f, _ in kept] == [1] * 10
    sm = FixedLagSmoother(0.5, drop_unresolved=True)
    dropped = run(sm, frames)
    assert [len(f.people) for f, _ in dropped] == [1] * 7 + [0] * 3
    assert sm.dropped == 3


def test_frames_come_out_only_once_they_are_older_than_the_lag() -> None:
    sm = FixedLagSmoother(0.5)
    frames = walker(12, missing=set())
    released = [len(sm.push(f, f.t)) for f in frames]
    # frame i is out when frame i + 5 (0.5 s later) arrives
    assert released == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert len(sm.flush()) == 5 and sm.flush() == []


def test_no_lag_passes_frames_through_unchanged() -> None:
    sm = FixedLagSmoother(0.0)
    frames = walker(6, missing={2, 3})
    for f in frames:
        (out,) = sm.push(f, f.t)
        assert out[0].people == f.people
    assert sm.filled == 0


def test_a_person_beyond_the_horizon_stays_off_the_floor_when_filled() -> None:
    frames = walker(8, missing={3})
    nan_floor = [
        FloorFrame(f.t, f.frame_size, f.people, f.foot_px, np.full_like(f.floor_xy, np.nan))
        for f in frames
    ]
    out = run(FixedLagSmoother(0.5), nan_floor)
    assert out[3][0].people and np.isnan(out[3][0].floor_xy).all()


def test_two_people_are_filled_independently() -> None:
    frames = []
    for i in range(10):
        people = {}
        if i not in (3, 4):
            people[1] = (50 + 5 * i, 0.5 * i, 0.0)
        if i != 6:
            people[2] = (400 - 5 * i, 9 - 0.5 * i, 0.0)
        frames.append(frame(i / FPS, people))
    out = run(FixedLagSmoother(0.5), frames)
    assert [sorted(p.track_id for p in f.people) for f, _ in out] == [[1, 2]] * 10
    f6 = out[6][0]
    (i2,) = [k for k, p in enumerate(f6.people) if p.track_id == 2]
    np.testing.assert_allclose(f6.floor_xy[i2], [9 - 3.0, 3.0])


@pytest.mark.parametrize("kwargs", [{"lag_s": -1}, {"lag_s": 11}, {"lag_s": 1, "max_gap_s": -1}])
def test_absurd_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be in"):
        FixedLagSmoother(**kwargs)


@pytest.mark.parametrize(("clip", "frames"), [("pets09-s2l1", 100), ("tud-campus", 71)])
def test_on_real_clips_filling_finds_more_people_at_little_precision_cost(
    clip: str, frames: int
) -> None:
    """Real weights, frames and gt, the camera's own path (calibrated tiles, tile skipping):
    seen people alone against seen + filled (0.75 s, the camera's default). Measured on the
    whole clips (bench/floor_smoothing.py): recall PETS09 0.781 -> 0.819, TUD-Campus 0.702 ->
    0.813; precision 0.854 -> 0.833 and 0.966 -> 0.927."""
    from edge.floor.person_detect import make_person_detector
    from edge.floor.pipeline import DETECTOR_OPTIONS, FloorPipeline
    from edge.floor.smoothing import FLOOR_FILL_GAPS_S
    from storesense_tools.mot_data import score_frame
    from tests.edge.floor.test_pipeline import clip_and_calibration

    seq, hom = clip_and_calibration(clip)
    pipe = FloorPipeline(
        make_person_detector("ssdlite", **DETECTOR_OPTIONS["ssdlite"]), hom, coast_s=0.0
    )
    seen = [pipe.process(f, i / seq.info.frame_rate) for i, f in seq.frames(0, frames)]
    sm = FixedLagSmoother(FLOOR_FILL_GAPS_S, max_gap_s=FLOOR_FILL_GAPS_S)
    filled = [f for f, _ in run(sm, seen)]

    def pr(out: list[FloorFrame]) -> tuple[float, float]:
        tp = fp = fn = 0
        for i, ff in enumerate(out):
            b, _, ign = seq.gt.at(i)
            s = score_frame(np.array([p.box for p in ff.people]).reshape(-1, 4), b, ign)
            tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
        return tp / max(1, tp + fp), tp / max(1, tp + fn)

    (p0, r0), (p1, r1) = pr(seen), pr(filled)
    assert sm.filled > 0
    assert r0 > 0.5, r0  # tracking works at all
    print(f"{clip}: P {p0:.3f} -> {p1:.3f}, R {r0:.3f} -> {r1:.3f}, filled {sm.filled}")
    assert r1 >= r0 + 0.02, (r0, r1)
    assert p1 >= p0 - 0.06, (p0, p1)
