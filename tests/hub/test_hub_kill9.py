"""kill -9 of a real `storesense hub run` process in the middle of a floor stream.

The hub runs as its own process on a private, persistent Mosquitto; a test client streams a
synthetic store day from two floor cameras. Mid-stream the hub gets SIGKILL (no goodbye, no
``close()``), more batches arrive while it is down (queued by the broker for its persistent
session), then it is started again and the rest follow. Pass rule: the person-seconds per
cell equal those of an uninterrupted in-process run exactly, and every zone visit is there,
with times within ``floor.snapshot_s`` (docs/floor-analytics.md, "Crash safety").
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from hub.floor.ingest import FloorIngest
from hub.store import db
from storesense import messages as m
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics
from tests.hub.floor_synth import floor_cfg, two_camera_day
from tests.hub.hub_process import HubRunner
from tests.hub.test_faults import _persistent_broker
from tests.mosquitto_proc import require_mosquitto
from tests.waiting import wait_for as _wait

SECONDS = 120


def _grid_and_visits(conn: sqlite3.Connection) -> tuple[list[tuple], dict[tuple, tuple]]:
    grid = [
        (r[0], r[1], r[2], r[3], round(r[4], 6))
        for r in conn.execute("SELECT * FROM floor_grid ORDER BY day, cell_mm, ix, iy")
    ]
    visits = {
        (r["person_key"], r["zone"]): (r["enter_t"], r["exit_t"])
        for r in conn.execute("SELECT * FROM floor_visits")
    }
    return grid, visits


def _applied(db_path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT coalesce(sum(received), 0) FROM floor_runs").fetchone()
            return int(row[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # not created yet


def test_hub_killed_mid_floor_stream_keeps_person_seconds_exact(tmp_path: Path) -> None:
    require_mosquitto()
    broker = _persistent_broker(tmp_path)
    broker.start()
    cfg = floor_cfg(port=broker.port)
    day = two_camera_day(cfg.store_id, 8, seed=11, seconds=SECONDS)
    ref = FloorIngest(db.migrate_db(tmp_path / "ref.sqlite3"), cfg)
    for topic, payload in day:
        ref.handle(topic, payload)
    ref.close()
    ref_grid, ref_visits = _grid_and_visits(ref.conn)
    assert ref_grid and len(ref_visits) >= 8

    home = tmp_path / "home"
    home.mkdir()

    status: list[m.HubStatus] = []
    watcher = make_client(f"watch-{cfg.store_id}", cfg.mqtt, persistent=False)
    watcher.on_message = lambda c, u, msg: status.append(m.decode(msg.payload, m.HubStatus))
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(Topics(cfg.store_id).hub_status, 1)
    connect(watcher, cfg.mqtt)
    cam = make_client(f"cams-{cfg.store_id}", cfg.mqtt)
    connect(cam, cfg.mqtt)

    runner = HubRunner(home, cfg, tmp_path, status)
    start_hub, logs = runner.start, runner.logs

    def send(part: list[tuple[str, bytes]]) -> None:
        for topic, payload in part:
            cam.publish(topic, payload, qos=1).wait_for_publish(5)

    db_path = home / "hub.sqlite3"
    first, second = len(day) // 2 + 3, len(day) // 2 + 13  # a kill in the middle of a slot
    hub = start_hub()
    try:
        send(day[:first])
        assert _wait(lambda: _applied(db_path) == first, 30), _applied(db_path)
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        send(day[first:second])  # queued at the broker for the dead hub's session
        hub = start_hub()
        send(day[second:])
        assert _wait(lambda: _applied(db_path) == len(day), 60), _applied(db_path)
        hub.send_signal(signal.SIGTERM)  # clean stop: open visits are closed and stored
        assert hub.wait(20) == 0
        assert "restored" in logs[1].read_text()  # the second hub picked up the open tracks
    finally:
        if hub.poll() is None:
            hub.kill()
        for c in (watcher, cam):
            c.disconnect()
            c.loop_stop()
        broker.stop()

    conn = db.migrate_db(db_path)
    grid, visits = _grid_and_visits(conn)
    assert grid == ref_grid  # person-seconds per cell: none lost, none counted twice
    assert visits.keys() == ref_visits.keys()  # every visit, no person split or invented
    slack = cfg.floor.snapshot_s
    for key, (enter, exit_) in visits.items():
        assert abs(enter - ref_visits[key][0]) <= slack, key
        assert abs(exit_ - ref_visits[key][1]) <= slack, key


pytestmark = pytest.mark.timeout(300)
