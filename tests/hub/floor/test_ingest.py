"""Floor messages into the hub: real broker (Mosquitto and embedded amqtt), real SQLite file.

Bad input is rejected with a counted reason, never a crash; repeats have no second effect;
lost messages and camera restarts are accounted for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hub.floor.ingest import FloorIngest
from hub.service import HubService
from hub.store import db
from storesense import messages as m
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from storesense.topics import Topics
from tests.hub.floor_synth import T0, floor_cfg, messages
from tests.waiting import wait_for as _wait

NOW = T0 + 86400


def test_hub_ingests_floor_positions_over_mqtt(broker_port: int, tmp_path: Path):
    cfg = floor_cfg(port=broker_port)
    topics = Topics(cfg.store_id)
    home = tmp_path / "home"
    home.mkdir()
    now = time.time()
    start = now - now % 5 - 60  # a minute ago, on a slot boundary
    msgs = messages("cam-a", start, 10, lambda t: [(1, 5.2, 4.7)])
    with HubService(cfg, home, client_id=f"hub-{cfg.store_id}") as hub:
        cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
        connect(cam, cfg.mqtt)
        try:
            assert _wait(lambda: hub.client.is_connected())
            time.sleep(0.3)  # the hub's SUBSCRIBE is in
            for msg in msgs:
                cam.publish(topics.floor("cam-a"), msg.to_bytes(), qos=1).wait_for_publish(5)
            cam.publish(topics.floor("cam-a"), msgs[0].to_bytes(), qos=1)  # a repeat
            cam.publish(topics.floor("cam-a"), b"{not json", qos=1)
            cam.publish(topics.floor("cam-b"), msgs[1].to_bytes(), qos=1)  # wrong camera
            assert _wait(
                lambda: (
                    hub.stats.received["floor_positions"] == len(msgs) + 1  # + the repeat
                    and hub.stats.duplicates == 1
                    and sum(hub.stats.rejected.values()) == 2
                )
            ), (hub.stats, hub.floor.stats)
        finally:
            cam.disconnect()
            cam.loop_stop()
    assert hub.stats.rejected == {"bad_json": 1, "topic_mismatch": 1}
    conn = db.connect(hub_db_path(home))
    rows = conn.execute("SELECT ix, iy, person_s FROM floor_grid").fetchall()
    assert [tuple(r) for r in rows] == [(10, 9, 10.0)]


@pytest.fixture
def ingest(tmp_path: Path) -> FloorIngest:
    return FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), floor_cfg())


def _payload(msg: m.FloorPositions, **change) -> bytes:
    data = json.loads(msg.to_bytes())
    data.update(change)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "bad_version"),
        ({"extra": 1}, "bad_schema"),
        ({"seq": -1}, "bad_schema"),
        ({"interval_s": 0}, "bad_schema"),
        ({"camera_id": "cam-b"}, "topic_mismatch"),
        ({"interval_start": NOW + 3600}, "clock_skew"),
        ({"interval_start": T0 - 30}, "bad_times"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(ingest, change, reason):
    msg = messages("cam-a", T0, 1, lambda t: [(1, 1.0, 1.0)])[0]
    with pytest.raises(m.PayloadError) as exc:
        ingest.handle(Topics(ingest.cfg.store_id).floor("cam-a"), _payload(msg, **change), NOW)
    assert exc.value.reason == reason
    assert ingest.conn.execute("SELECT count(*) FROM floor_grid").fetchone()[0] == 0


def test_nan_position_and_duplicate_track_are_rejected(ingest):
    msg = messages("cam-a", T0, 1, lambda t: [(1, 1.0, 1.0)])[0]
    raw = msg.to_bytes().replace(b'"x":1.0', b'"x":NaN')
    topic = Topics(ingest.cfg.store_id).floor("cam-a")
    with pytest.raises(m.PayloadError):
        ingest.handle(topic, raw, NOW)
    twice = messages("cam-a", T0, 1, lambda t: [(1, 1.0, 1.0), (1, 2.0, 2.0)])[0]
    with pytest.raises(m.PayloadError) as exc:
        ingest.handle(topic, twice.to_bytes(), NOW)
    assert exc.value.reason == "duplicate_track"


def test_seq_gaps_and_restarts_are_accounted(ingest):
    topic = Topics(ingest.cfg.store_id).floor("cam-a")
    run1 = messages("cam-a", T0, 10, lambda t: [(1, 2.0, 2.0)], run_id="a" * 32)
    for msg in run1[:3] + run1[6:]:  # seq 3, 4, 5 lost on the way
        ingest.handle(topic, msg.to_bytes(), NOW)
    assert len(ingest.journeys.tracks) == 1
    # the agent restarts: new run id, seq from 0, and its tracker reuses id 1 for someone else
    run2 = messages("cam-a", T0 + 10, 5, lambda t: [(1, 7.0, 6.0)], run_id="b" * 32)
    for msg in run2:
        ingest.handle(topic, msg.to_bytes(), NOW)
    assert ingest.stats.restarts == 1
    assert ingest.stats.journeys == 1  # the first run's person ended with the restart
    runs = {
        r["run_id"][0]: r["max_seq"] + 1 - r["received"]
        for r in ingest.conn.execute("SELECT * FROM floor_runs")
    }
    assert runs == {"a": 3, "b": 0}  # messages lost per run
    visit = ingest.conn.execute("SELECT zone, enter_t, exit_t FROM floor_visits").fetchone()
    assert (visit["zone"], visit["enter_t"] - T0) == ("denim", 0.0)


def test_silent_camera_ends_its_tracks_on_the_clock(ingest):
    topic = Topics(ingest.cfg.store_id).floor("cam-a")
    for msg in messages("cam-a", T0, 10, lambda t: [(1, 2.0, 2.0)]):
        ingest.handle(topic, msg.to_bytes(), NOW)
    ingest.tick(NOW + 5)
    assert ingest.journeys.tracks  # still within the silence allowance
    ingest.tick(NOW + 120)
    assert not ingest.journeys.tracks
    assert ingest.conn.execute("SELECT count(*) FROM floor_visits").fetchone()[0] == 1
