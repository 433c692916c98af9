"""Hub floor ingest rate: FloorPositions messages → grid + zones → SQLite, positions per second.

Measures ``FloorIngest.handle`` (decode, validate, dedupe, fuse, zone state machines, one
SQLite transaction per message: what the hub's worker does per message), on a real SQLite file,
with 3 cameras each publishing 1 s batches of 8 frames with PEOPLE people (target ≥ 20k
positions/s). Usage: python bench/hub_floor_ingest.py [--people 25] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from hub.floor.ingest import FloorIngest
from hub.store import db
from storesense import messages as m
from storesense.config import parse_config
from storesense.topics import Topics

CFG = parse_config(
    "store_id: bench\nfloor: {width_m: 20, height_m: 15}\nzones:\n"
    "  - {name: denim, polygon: [[0, 0], [6, 0], [6, 5], [0, 5]], categories: [bags]}\n"
    "  - {name: shoes, polygon: [[7, 0], [13, 0], [13, 5], [7, 5]]}\n"
    "  - {name: fitting, kind: fitting, polygon: [[14, 0], [20, 0], [20, 4], [14, 4]]}\n"
    "  - {name: till, kind: till, polygon: [[0, 10], [5, 10], [5, 15], [0, 15]]}\n"
    "  - {name: entrance, kind: entrance, polygon: [[8, 12], [12, 12], [12, 15], [8, 15]]}\n"
    "  - {name: office, kind: staff, polygon: [[16, 12], [20, 12], [20, 15], [16, 15]]}\n"
)


def payloads(people: int, seconds: int, cameras: int = 3, fps: int = 8) -> list[tuple]:
    rng = np.random.default_rng(1)
    t0 = time.time() - seconds - 10
    pos = rng.uniform((0, 0), (20, 15), size=(people, 2))
    vel = rng.normal(0, 0.5, size=(people, 2))
    topics = Topics("bench")
    runs = [uuid.uuid4().hex for _ in range(cameras)]
    out = []
    for s in range(seconds):
        frames = []
        for i in range(fps):
            pos = np.clip(pos + vel / fps, 0, [19.99, 14.99])
            frames.append((t0 + s + i / fps, pos.copy()))
        for c in range(cameras):
            # every camera sees everyone, 0.2 m of calibration noise: fusion has real work
            samples = [
                m.FloorSample(
                    t=t,
                    people=[
                        m.FloorPosition(track_id=k, x=float(x), y=float(y), conf=0.8)
                        for k, (x, y) in enumerate(
                            np.clip(p + rng.normal(0, 0.1, p.shape), 0, [19.99, 14.99])
                        )
                    ],
                )
                for t, p in frames
            ]
            msg = m.FloorPositions(
                camera_id=f"floor-{c}",
                run_id=runs[c],
                seq=s,
                interval_start=t0 + s,
                interval_s=1.0,
                samples=samples,
            )
            out.append((topics.floor(f"floor-{c}"), msg.to_bytes()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=25)
    ap.add_argument("--seconds", type=int, default=120)
    args = ap.parse_args()
    msgs = payloads(args.people, args.seconds)
    n_pos = sum(p.count(b'"track_id"') for _, p in msgs)
    with tempfile.TemporaryDirectory() as tmp:
        conn = db.migrate_db(Path(tmp) / "hub.sqlite3")
        ing = FloorIngest(conn, CFG)
        now = time.time()
        start = time.perf_counter()
        for topic, payload in msgs:
            ing.handle(topic, payload, now)
        elapsed = time.perf_counter() - start
        ing.close()
        cells = conn.execute("SELECT count(*) FROM floor_grid").fetchone()[0]
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(
        f"{len(msgs)} messages, {n_pos} positions ({args.people} people x 8 fps x 3 cameras, "
        f"{args.seconds} s) in {elapsed:.2f} s: {n_pos / elapsed:,.0f} positions/s, "
        f"{len(msgs) / elapsed:,.0f} messages/s; {cells} grid cells, "
        f"{ing.stats.journeys} journeys, {ing.stats.visits} visits"
    )


if __name__ == "__main__":
    main()
