"""Erasure proven everywhere, on a customer who has everything, through the running hub.

1. The schema is enumerated: every table of the migrated database must say in
   ``hub.store.tables.CUSTOMER_DATA`` whether and how it holds a customer; a table with a
   ``customer_id`` column cannot say "nobody". A new table that could hold a customer fails
   here until its erasure is decided.
2. A real hub on a private Mosquitto: Ann is enrolled (templates, an encrypted photo, consent
   records), walks in twice (visits, alerts, their matches, retained alert messages), a
   salesperson claims the first alert and opens her card, marks the second "not this person"
   (a false-match report for the threshold review), she has receipts, a birthday and
   suggestions, and she was exported. Before the erasure every table not marked "nobody" holds
   something of hers (so the scenario keeps up with the table list); the manager erases her
   over the rpc the manager page uses. After it: no table holds her id or name but the one
   tombstone row of the audit log, the chain verifies, the broker retains no alert of hers,
   the running hub's recogniser holds no trace (its gallery and its decided tracks) and a new
   track of her face is an unknown visitor, a backup taken afterwards and the database and
   WAL files after a checkpoint hold neither her id nor her name in their raw bytes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.bus.parked import parked_path
from hub.chain import seal
from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.service import HubService
from hub.shop.pos_store import set_birthday
from hub.staff.accounts import Staff, add_staff, create_session
from hub.store import db, tables
from storesense import chain_messages as cm
from storesense import rpc
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense_tools.cli import main
from tests.consent import consent
from tests.hub.conftest import hub_config, unit
from tests.hub.pos_fixtures import add_invoice
from tests.hub.web.conftest import face_track
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)

ANN, NAME = "ann-0017", "Ann Example"  # no hex digits: neither can turn up inside a MAC by chance
FACE = unit(7)
PHOTO = b"\xff\xd8\xff\xe0 a stand-in for Ann's enrolment photo"


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def test_every_table_says_whether_and_how_it_holds_a_customer() -> None:
    conn = db.migrate_db(":memory:")
    in_schema = set(_tables(conn))
    missing = sorted(in_schema - set(tables.CUSTOMER_DATA))
    assert not missing, f"say in hub/store/tables.py CUSTOMER_DATA how erasure treats {missing}"
    assert not set(tables.CUSTOMER_DATA) - in_schema, "CUSTOMER_DATA names a table that is gone"
    assert set(tables.CUSTOMER_DATA) == set(tables.OWNERS)
    kinds = {tables.ERASED, tables.UNLINKED, tables.REDACTED, tables.RETRACTED, tables.NOBODY}
    assert set(tables.CUSTOMER_DATA.values()) <= kinds
    for table in in_schema:
        if "customer_id" in _columns(conn, table):
            assert tables.CUSTOMER_DATA[table] != tables.NOBODY, f"{table} has a customer_id"


def _mentions(conn: sqlite3.Connection, table: str, text: str) -> int:
    cols = _columns(conn, table)
    cond = " OR ".join(f"instr(CAST({c} AS BLOB), CAST(? AS BLOB)) > 0" for c in cols)
    return int(
        conn.execute(f"SELECT count(*) FROM {table} WHERE {cond}", [text] * len(cols)).fetchone()[0]
    )


def _census(path: Path) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, rows naming Ann's id, rows naming her name)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return {
            t: (
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0],
                _mentions(conn, t, ANN),
                _mentions(conn, t, NAME),
            )
            for t in _tables(conn)
        }
    finally:
        conn.close()


class _Web:
    """What the web process does for a phone or the manager page: rpc requests over MQTT."""

    def __init__(self, cfg: StoreConfig, hub: HubService) -> None:
        self.topics = hub.topics
        self.web_id = f"web-{uuid.uuid4().hex[:10]}"
        self.replies: dict[str, rpc.Reply] = {}
        self.cond = threading.Condition()
        ready = threading.Event()
        self.client = make_client(self.web_id, cfg.mqtt, persistent=False)
        self.client.on_message = self._on_reply
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            self.topics.rpc_reply(self.web_id), 1
        )
        connect(self.client, cfg.mqtt)
        assert ready.wait(10)

    def _on_reply(self, c: object, u: object, msg: Any) -> None:
        reply = rpc.decode_reply(bytes(msg.payload))
        with self.cond:
            self.replies[reply.request_id] = reply
            self.cond.notify_all()

    def call(self, op: rpc.Op, **args: Any) -> Any:
        req = rpc.new_request(op, args, timeout_s=30)
        self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: req.request_id in self.replies, 40), op
            reply = self.replies[req.request_id]
        assert reply.ok, (op, reply.status, reply.detail)
        return reply.result

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _retained_alerts(cfg: StoreConfig, hub: HubService) -> list[bytes]:
    """Every retained alert message the broker holds for the store: subscribe to the alerts,
    then (same connection, so after them) to the hub's retained status, and wait for it."""
    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = make_client(f"phone-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    client.on_message = lambda c, u, msg: got.append((msg.topic, bytes(msg.payload)))
    client.on_subscribe = lambda *a: subscribed.set()
    connect(client, cfg.mqtt)
    try:
        client.subscribe(hub.topics.all_alerts, 1)
        assert subscribed.wait(10)
        client.subscribe(hub.topics.hub_status, 1)
        assert wait_for(lambda: any(t == hub.topics.hub_status for t, _ in got), 20)
        return [p for t, p in got if t != hub.topics.hub_status and p]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def cfg(tmp_path: Path) -> Iterator[StoreConfig]:
    require_mosquitto()
    with ExitStack() as stack:
        port = private_mosquitto(stack, tmp_path)
        yield hub_config(
            port,
            "recognition: {threshold: 0.45, margin: 0.05, min_votes: 2, min_vote_share: 0.6}\n"
            "visits: {cooldown_s: 0, alert_ttl_s: 600}\n"
            "chain: {send: [customers]}\n",  # Ann is a chain customer too (docs/chain.md)
        )


def _alert_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return [r[0] for r in conn.execute("SELECT alert_id FROM alerts ORDER BY created_at")]
    finally:
        conn.close()


def _unknown_visitors(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM unknown_visitors").fetchone()[0])
    finally:
        conn.close()


def test_a_customer_who_has_everything_is_erased_everywhere(
    cfg: StoreConfig, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    dbp = hub_db_path(home)
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    conn = db.connect(dbp)
    try:
        Gallery.open(conn, template_key_path(home)).enrol(
            ANN, NAME, replace(consent("consent-ann"), chain=True),
            [(FACE, 0.9, "t"), (FACE, 0.8, "t2")],
            photo=(PHOTO, "image/jpeg"),
        )  # fmt: skip
        add_staff(conn, "bob", "Bob Brown", "salesperson", "correct horse battery")
        add_staff(conn, "maria", "Maria Manager", "manager", "correct horse battery")
        bob, _ = create_session(conn, Staff("bob", "Bob Brown", "salesperson"))
        bob_csrf = conn.execute("SELECT csrf_token FROM web_sessions").fetchone()[0]
        maria, _ = create_session(conn, Staff("maria", "Maria Manager", "manager"))
        add_invoice(conn, "9001", ANN, datetime.now() - timedelta(days=2),
                    [("M1", "RED MUG", 2, 5.0)])  # fmt: skip
        with db.write(conn):
            set_birthday(conn, ANN, 5, 17)
            conn.execute(  # as `storesense suggest build` writes them
                "INSERT INTO suggestions VALUES (?, 'usual', 1, 'M1', 0.9, 'als')", (ANN,)
            )
    finally:
        conn.close()
    cam = make_client(f"cam-{uuid.uuid4().hex[:6]}", cfg.mqtt)
    connect(cam, cfg.mqtt)
    faces = hub.topics.faces("door-1")
    hub.start()
    web = _Web(cfg, hub)
    try:
        # she walks in: an alert; bob takes it and opens her card, then is done
        cam.publish(faces, face_track(FACE).to_bytes(), qos=1).wait_for_publish(10)
        assert wait_for(lambda: len(_alert_ids(dbp)) == 1, 30)
        first = _alert_ids(dbp)[0]
        claim = {"token": bob, "csrf": bob_csrf, "alert_id": first}
        assert web.call("claim", **claim, action="claim")["outcome"] == "won"
        card = web.call("customer_view", token=bob, customer_id=ANN, alert_id=first)
        assert card["card"]["name"] == NAME
        assert web.call("claim", **claim, action="done")["outcome"] == "done"
        # again: bob says "not this person" (a false-match report, the threshold's evidence)
        cam.publish(faces, face_track(FACE).to_bytes(), qos=1).wait_for_publish(10)
        assert wait_for(lambda: len(_alert_ids(dbp)) == 2, 30)
        second = _alert_ids(dbp)[1]
        claim = {"token": bob, "csrf": bob_csrf, "alert_id": second}
        assert web.call("claim", **claim, action="reject")["outcome"] == "rejected"
        assert main(["--home", str(home), "customer", "export", ANN,
                     "--out", str(tmp_path / "ann.json")]) == 0  # fmt: skip
        assert wait_for(lambda: len(_retained_alerts(cfg, hub)) == 2, 30)
        assert ANN in hub.recognizer.customer_ids and ANN in hub.recognizer._matched.values()
        # the chain: the office names another store's key; the hub seals her templates for it
        peer = seal.public_b64(seal.load_or_create(tmp_path / "peer.key"))
        directory = cm.KeyDirectory(store_id=cfg.store_id, keys={"s-peer": peer})
        cam.publish(hub.topics.chain_down("key_directory"), directory.to_bytes(), qos=1)
        assert wait_for(lambda: _census(dbp)["chain_sealed"][1] == 1, 30)
        # sent (acknowledged) before she is erased: the erasure removes sent chain rows
        assert wait_for(lambda: not hub.outbox.unsent(), 30)

        before = _census(dbp)
        for table, how in tables.CUSTOMER_DATA.items():
            rows, by_id, by_name = before[table]
            if how == tables.NOBODY:
                assert (by_id, by_name) == (0, 0), f"{table} is marked nobody but holds Ann"
            elif how in (tables.ERASED, tables.UNLINKED, tables.REDACTED):
                assert rows > 0, f"the scenario gives Ann no row in {table}: extend it"
            elif how == tables.RETRACTED:
                assert by_name > 0, f"the scenario sends no message naming Ann ({table})"

        answer = web.call(
            "erase_customer", token=maria, customer_id=ANN, reason="asked at the till"
        )
        assert answer["profile_deleted"] and answer["receipts_unlinked"] == 1

        # the running hub: her face no longer matches (gallery reloaded), no memory of her
        assert wait_for(lambda: ANN not in hub.recognizer.customer_ids, 30)
        strangers = _unknown_visitors(dbp)
        track = face_track(FACE).model_copy(update={"final": True})
        cam.publish(faces, track.to_bytes(), qos=1).wait_for_publish(10)
        assert wait_for(lambda: _unknown_visitors(dbp) == strangers + 1, 30)
        assert len(_alert_ids(dbp)) == 0
        assert ANN not in hub.recognizer._matched.values()
        assert all(w.customer_id != ANN for w in hub.recognizer._watched.values())
        # the broker: her retained alerts are cleared
        assert wait_for(lambda: not _retained_alerts(cfg, hub), 30)
        # a backup taken afterwards, while the hub runs
        backup = tmp_path / "after.backup"
        assert main(["--home", str(home), "backup", "--out", str(backup)]) == 0
    finally:
        web.close()
        cam.disconnect()
        cam.loop_stop()
        hub.stop()

    after = _census(dbp)
    for table, how in tables.CUSTOMER_DATA.items():
        rows, by_id, by_name = after[table]
        assert by_name == 0, f"{table} still names Ann"
        assert by_id == (1 if table == "audit" else 0), f"{table} still holds Ann's id"
        if how == tables.ERASED:
            assert rows == 0, f"{table} kept {rows} of Ann's rows"
        if how == tables.UNLINKED:
            assert rows == before[table][0], f"{table}: the store's figures changed"
    conn = db.connect(dbp)
    try:
        tomb = conn.execute("SELECT action FROM audit WHERE customer_id=?", (ANN,)).fetchall()
        assert [r[0] for r in tomb] == ["erase"]
        # the chain heard of it: the erasure request (her random chain reference, no id) is
        # in the outbox, or still queued if the hub stopped before its next chain tick
        kinds = [
            json.loads(r[0])["kind"]
            for r in conn.execute(
                "SELECT payload FROM outbox WHERE topic LIKE ?", (hub.topics.chain_prefix + "%",)
            )
        ]
        queued = conn.execute("SELECT count(*) FROM chain_erasures").fetchone()[0]
        assert kinds.count("chain_erasure") + queued == 1, kinds
        assert audit.verify(conn).ok
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    assert not parked_path(home).exists()
    # raw bytes: a copy with only the live rows (VACUUM INTO) holds her id in the tombstone
    # (the audit row and its index entry) and nowhere else; no file may hold it more often,
    # a deleted row's bytes left in a free page or an old WAL frame would
    live = tmp_path / "live.sqlite3"
    conn = sqlite3.connect(dbp)
    conn.execute("VACUUM INTO ?", (str(live),))
    conn.close()
    tomb_bytes = live.read_bytes().count(ANN.encode())
    assert 1 <= tomb_bytes <= 2, tomb_bytes
    for path in (dbp, dbp.with_name(dbp.name + "-wal"), backup):
        raw = path.read_bytes() if path.exists() else b""
        assert NAME.encode() not in raw, f"{path.name} holds her name in its bytes"
        assert raw.count(ANN.encode()) <= tomb_bytes, f"{path.name} holds stale copies of her id"
