"""A door message that arrives while another writer holds the database is neither lost nor
applied twice: real `storesense hub run` processes, a persistent Mosquitto, the real SQLite file
locked by a `BEGIN IMMEDIATE` from another connection (what a long `pos import` does).

Before the parked writes (hub.bus.parked) the hub's write failed after the busy timeout, the
message was counted ``internal_error`` and acknowledged, and the customer's alert never came.
Now the decided effect is parked in ``<home>/parked-writes.jsonl`` before the acknowledgement
and replayed once the lock is free: in the running hub, or after a kill -9 in the next one
(the broker no longer has the message: the acknowledgement went out, so only the file can
bring it back).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.bus.parked import parked_path
from hub.faces.gallery import Gallery
from hub.store import db
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import hub_config, unit
from tests.hub.hub_process import HubRunner, Watched, watching
from tests.hub.test_faults import _event, _persistent_broker
from tests.mosquitto_proc import require_mosquitto
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(400)

ADA, BOB = ("c00", "Ada Lovelace"), ("c01", "Bob Babbage")  # _event(0) / _event(1) match them


@contextmanager
def _write_locked(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock until the block ends."""
    other = sqlite3.connect(str(path), isolation_level=None, timeout=60)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def _rows(path: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def _parked_ids(home: Path) -> list[str]:
    path = parked_path(home)
    if not path.is_file():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def _alerts_for(heard: Watched, customer_id: str) -> set[str]:
    return {a.alert_id for a in heard.alerts if a.customer_id == customer_id}


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_door_message_during_a_held_write_lock_arrives_once_also_across_a_kill9(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    broker = _persistent_broker(tmp_path).start()
    cfg: StoreConfig = hub_config(broker.port, "visits: {alert_ttl_s: 600}\n")
    home = tmp_path / "home"
    home.mkdir()
    dbp = hub_db_path(home)
    conn = db.migrate_db(dbp)
    gallery = Gallery.open(conn, template_key_path(home))
    for i, who in enumerate((ADA, BOB)):
        gallery.enrol(*who, consent(f"consent-{i}"), [(unit(100 + i), 0.9, "t")])
    conn.close()
    cam = make_client(f"cam-{uuid.uuid4().hex[:6]}", cfg.mqtt)
    connect(cam, cfg.mqtt)
    faces = Topics(cfg.store_id).faces("door-1")
    procs: list[subprocess.Popen] = []
    try:
        with watching(cfg) as heard:
            runner = HubRunner(home, cfg, tmp_path, heard.status)
            procs.append(runner.start())

            # 1. locked while Ada's track arrives: parked, then replayed by the same hub
            ada = _event(0)
            with _write_locked(dbp):
                cam.publish(faces, ada.to_bytes(), qos=1).wait_for_publish(10)
                assert wait_for(lambda: ada.msg_id in _parked_ids(home), 120), "never parked"
                assert not _rows(dbp, "SELECT 1 FROM alerts"), "written through a held lock?"
                text = parked_path(home).read_text()
                assert "vector" not in text and ADA[1] not in text  # ids and times only
            assert wait_for(lambda: _alerts_for(heard, ADA[0]), 60), "Ada's alert never came"
            assert wait_for(lambda: not parked_path(home).exists(), 30)
            # the camera sends it again (its outbox lost the PUBACK): still one alert
            cam.publish(faces, ada.to_bytes(), qos=1).wait_for_publish(10)
            assert wait_for(
                lambda: any(s.errors.get("face_parked", 0) >= 1 for s in heard.status), 30
            ), heard.status[-1:]

            # 2. locked while Bob's track arrives, the hub is killed with it parked (already
            # acknowledged to the broker), the lock goes; the next hub replays the file
            bob = _event(1)
            with _write_locked(dbp):
                cam.publish(faces, bob.to_bytes(), qos=1).wait_for_publish(10)
                assert wait_for(lambda: bob.msg_id in _parked_ids(home), 120), "never parked"
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait(10)
            assert not _rows(dbp, "SELECT 1 FROM alerts WHERE customer_id=?", BOB[0])
            procs.append(runner.start())
            assert wait_for(lambda: _alerts_for(heard, BOB[0]), 60), "Bob's alert was lost"
            assert wait_for(lambda: not parked_path(home).exists(), 30)
            _stop(procs[-1])

        # exactly once each: one alert, one visit, one seen id per message; nothing rejected
        for who, msg in ((ADA, ada), (BOB, bob)):
            assert len(_rows(dbp, "SELECT 1 FROM alerts WHERE customer_id=?", who[0])) == 1
            assert len(_rows(dbp, "SELECT 1 FROM visits WHERE customer_id=?", who[0])) == 1
            assert _rows(dbp, "SELECT count(*) FROM seen_messages WHERE msg_id=?", msg.msg_id) == [
                (1,)
            ]
        assert len(_alerts_for(heard, ADA[0]) | _alerts_for(heard, BOB[0])) == 2
        assert all(not s.rejected.get("internal_error") for s in heard.status)
        said = "".join(log.read_text() for log in runner.logs)
        # the sweeps and the outbox flush fail while locked (logged and counted by the loop
        # guard, with tracebacks); no message handler failed
        assert "hub failed on a message" not in said and "unreplayable" not in said
        assert "parked in" in said and "replayed 1 parked face write" in said, said[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        cam.disconnect()
        cam.loop_stop()
        broker.stop()


def test_a_parked_write_comes_back_from_its_file_as_it_was_decided() -> None:
    """What the replay applies is what the recogniser decided, even a distance JSON cannot
    carry (none to compare with: infinite), which parks as None instead of failing the park."""
    from hub.service import _Decided, _FaceWrite

    match = _Decided("door-1", "t1", "c00", 10.0, 0.31)
    stranger = _Decided("door-1", "t2", None, 11.0, float("inf"))
    write = _FaceWrite("m1", 12.0, True, ("c00", "door-1"), (match, stranger))
    back = _FaceWrite.from_json(json.loads(json.dumps(write.to_json(), allow_nan=False)))
    assert back == _FaceWrite("m1", 12.0, True, ("c00", "door-1"),
                              (match, _Decided("door-1", "t2", None, 11.0, None)))  # fmt: skip
