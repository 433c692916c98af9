"""Synthetic floor-camera messages for the floor-analytics tests (people as (track, x, y))."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from storesense import messages as m
from storesense.config import StoreConfig, parse_config

T0 = 1_700_000_000.0  # a multiple of 5 s: slot boundaries fall on whole seconds

Person = tuple[int, float, float]


def floor_cfg(extra: str = "", store: str | None = None, port: int = 1883) -> StoreConfig:
    """A 10 x 8 m floor, 0.5 m cells, 5 s slots, with the test zones."""
    store = store or f"t{uuid.uuid4().hex[:10]}"
    return parse_config(
        f"store_id: {store}\nmqtt: {{port: {port}}}\n"
        "floor: {width_m: 10, height_m: 8, cell_m: 0.5, sample_s: 5, track_gap_s: 5,\n"
        "        dwell_enter_s: 2, dwell_exit_s: 3, zone_margin_m: 0.3, staff_mark_s: 10}\n"
        "zones:\n"
        "  - {name: denim, polygon: [[0, 0], [4, 0], [4, 4], [0, 4]], categories: [bags]}\n"
        "  - {name: till, kind: till, polygon: [[6, 0], [10, 0], [10, 3], [6, 3]],"
        " categories: [toys]}\n"
        "  - {name: office, kind: staff, polygon: [[8, 6], [10, 6], [10, 8], [8, 8]]}\n" + extra
    )


def messages(
    camera: str,
    start: float,
    seconds: float,
    people_at: Callable[[float], Sequence[Person]],
    *,
    fps: float = 2.0,
    interval_s: float = 1.0,
    run_id: str | None = None,
    seq0: int = 0,
) -> list[m.FloorPositions]:
    """One message per ``interval_s`` with frames at ``fps`` over [start, start+seconds)."""
    run_id = run_id or uuid.uuid4().hex
    out = []
    n_int = round(seconds / interval_s)
    per = round(interval_s * fps)
    for k in range(n_int):
        t_int = start + k * interval_s
        samples = [
            m.FloorSample(
                t=t_int + i / fps,
                people=[
                    m.FloorPosition(track_id=tid, x=x, y=y, conf=0.9)
                    for tid, x, y in people_at(t_int + i / fps)
                ],
            )
            for i in range(per)
        ]
        out.append(
            m.FloorPositions(
                camera_id=camera,
                run_id=run_id,
                seq=seq0 + k,
                interval_start=t_int,
                interval_s=interval_s,
                samples=samples,
            )
        )
    return out


def shoppers(n: int, seed: int, seconds: float) -> Callable[[float], list[Person]]:
    """``n`` shoppers, each: enter at the door (x≈5, y≈7.5), browse denim, pay at the till."""
    import numpy as np

    from storesense_tools.store_sim import position_on_route

    rng = np.random.default_rng(seed)
    plans = []
    for i in range(n):
        start = T0 + rng.uniform(0, seconds * 0.6)
        stops = [
            (rng.uniform(0.5, 3.5), rng.uniform(0.5, 3.5), rng.uniform(15, 60)),  # denim
            (rng.uniform(6.5, 9.5), rng.uniform(0.5, 2.5), rng.uniform(5, 25)),  # till
        ]
        plans.append((i + 1, start, stops))

    def at(t: float) -> list[Person]:
        out = []
        for tid, start, stops in plans:
            # in at the door, 1 m/s between stops
            at_t = position_on_route([(5.0, 7.5, 0.0), *stops], start, t)
            if at_t is not None:
                out.append((tid, *at_t))
        return out

    return at


def two_camera_day(
    store: str, shoppers_n: int, seed: int, seconds: float
) -> list[tuple[str, bytes]]:
    """(topic, payload) in arrival order: two cameras watch the same shoppers, cam-b 0.2 m off
    (so the hub must fuse them into one person each)."""
    from storesense.topics import Topics

    at = shoppers(shoppers_n, seed=seed, seconds=seconds)
    a = messages("cam-a", T0, seconds, at, run_id="a" * 32)
    b = messages(
        "cam-b",
        T0,
        seconds,
        lambda t: [(tid + 100, min(x + 0.2, 9.9), y) for tid, x, y in at(t)],
        run_id="b" * 32,
    )
    msgs = sorted(a + b, key=lambda x: (x.interval_start, x.camera_id))
    topics = Topics(store)
    return [(topics.floor(x.camera_id), x.to_bytes()) for x in msgs]
