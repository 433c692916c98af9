"""Exactly-once apply into PostgreSQL by message id, and counted rejections (real server)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from central import db
from central.ingest import Ingest
from storesense import chain_messages as cm
from storesense.topics import ChainTopics


@pytest.fixture
def ingest(pg_dsn: str) -> Iterator[Ingest]:
    conn = db.connect(pg_dsn)
    db.migrate(conn)
    yield Ingest(conn)
    conn.close()


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _summary(seq: int, state: str = "open", **kw: object) -> cm.AlertSummary:
    now = time.time()
    return cm.AlertSummary(
        msg_id=cm.chain_msg_id("s1", "alert_summary", "a1", seq), store_id="s1",
        alert_id="a1", seq=seq, state=state, camera_id="door-1", arrived_at=now - 5,
        expires_at=now + 115, **kw,
    )  # fmt: skip


def _send(ingest: Ingest, msg: cm.ChainMessage, store: str = "s1") -> str:
    return ingest.handle(ChainTopics.of(store, msg.kind), msg.to_bytes(), time.time())


def test_each_kind_is_applied_once_and_a_redelivery_changes_nothing(ingest: Ingest) -> None:
    now = time.time()
    msgs: list[cm.ChainMessage] = [
        _summary(1),
        cm.Claim(
            store_id="s1",
            alert_id="a1",
            staff_id="bob",
            camera_id="door-1",
            arrived_at=now - 5,
            claimed_at=now,
        ),
        cm.ZoneInterval(
            store_id="s1",
            zone="Shoes",
            interval_start=now - now % 900,
            interval_s=900,
            visits=7,
            dwell_s=321.5,
        ),
        cm.StoreHealth(store_id="s1", cameras={"door-1": "up"}, outbox_unsent=2),
    ]
    assert [_send(ingest, m) for m in msgs] == ["applied"] * 4
    assert [_send(ingest, m) for m in msgs] == ["duplicate"] * 4
    c = ingest.conn
    counts = {t: _count(c, t) for t in ("ingested", "alert_summaries", "claims", "zone_intervals",
                                        "store_health")}  # fmt: skip
    assert counts == dict.fromkeys(counts, 1) | {"ingested": 4}
    assert ingest.duplicates == 4 and sum(ingest.applied.values()) == 4
    assert c.execute("SELECT visits, dwell_s FROM zone_intervals").fetchone() == (7, 321.5)
    assert c.execute("SELECT last_health_at IS NOT NULL FROM stores").fetchone() == (True,)


def test_the_highest_alert_seq_wins_whatever_the_arrival_order(ingest: Ingest) -> None:
    now = time.time()
    claimed = _summary(2, "claimed", claimed_by="bob", claimed_at=now)
    assert _send(ingest, claimed) == "applied"
    assert _send(ingest, _summary(1)) == "applied"  # a late older state: a new id, ignored
    row = ingest.conn.execute("SELECT seq, state, claimed_by FROM alert_summaries").fetchone()
    assert row == (2, "claimed", "bob")
    assert _send(ingest, _summary(3, "done", claimed_by="bob", claimed_at=now)) == "applied"
    row = ingest.conn.execute("SELECT seq, state FROM alert_summaries").fetchone()
    assert row == (3, "done")


def _rejections(ingest: Ingest) -> dict[tuple[str, str], int]:
    rows = ingest.conn.execute("SELECT store_id, reason, count FROM rejections").fetchall()
    return {(s, r): n for s, r, n in rows}


def test_malformed_messages_are_counted_logged_and_stored_never_applied(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.loads(_summary(1).to_bytes())
    cases = {
        "bad_json": (ChainTopics.of("s1", "alert_summary"), b"{not json"),
        "bad_version": (ChainTopics.of("s1", "alert_summary"), json.dumps(good | {"v": 2})),
        # an embedding riding along is an unknown field: refused, not stored
        "bad_schema": (ChainTopics.of("s1", "alert_summary"),
                       json.dumps(good | {"embedding": "AAAA"})),
        "too_large": (ChainTopics.of("s1", "alert_summary"), b"{" + b" " * 70_000 + b"}"),
        "bad_topic": ("chain/v1/s1/alert_summary/extra", _summary(1).to_bytes()),
        "bad_time": (ChainTopics.of("s1", "alert_summary"),
                     json.dumps(good | {"arrived_at": 86400.0})),  # 1970
    }  # fmt: skip
    for topic, payload in cases.values():
        raw = payload.encode() if isinstance(payload, str) else payload
        assert ingest.handle(topic, raw, time.time()) == "rejected"
    # another store's message on s1's tree (the topic's store is the one the ACL vouches for)
    assert _send(ingest, _summary(1), store="s2") == "rejected"
    assert ingest.handle(ChainTopics.of("s1", "claim"), _summary(1).to_bytes(), time.time()) == (
        "rejected"
    )  # a summary on the claim topic
    expected = dict.fromkeys(cases, 1) | {"topic_mismatch": 2}
    assert dict(ingest.rejected) == expected
    stored = _rejections(ingest)
    assert sum(stored.values()) == sum(expected.values())
    assert stored[("s2", "topic_mismatch")] == 1
    assert _count(ingest.conn, "ingested") == 0
    assert _count(ingest.conn, "alert_summaries") == 0
    assert sum("rejected chain message" in r.message for r in caplog.records) == 8
    assert _send(ingest, _summary(1)) == "applied"  # and the feed goes on


def test_message_ids_are_the_facts_so_a_remade_message_is_the_same(ingest: Ingest) -> None:
    first, again = _summary(1), _summary(1)  # made twice (a restored hub), sent_at differs
    assert first.msg_id == again.msg_id and first.to_bytes() != again.to_bytes()
    assert _send(ingest, first) == "applied"
    assert _send(ingest, again) == "duplicate"
    assert cm.chain_msg_id("s1", "claim", "a b", "c") != cm.chain_msg_id("s1", "claim", "a", "b c")


def test_a_value_the_schema_refuses_is_a_rejection_and_the_feed_goes_on(ingest: Ingest) -> None:
    now = time.time()
    huge = cm.ZoneInterval(store_id="s1", zone="Shoes", interval_start=now - now % 900,
                           interval_s=900, visits=3_000_000_000, dwell_s=1.0)  # fmt: skip
    assert _send(ingest, huge) == "rejected"  # past PostgreSQL's integer: refused, not retried
    assert dict(ingest.rejected) == {"db_refused": 1}
    assert _rejections(ingest) == {("s1", "db_refused"): 1}
    assert _count(ingest.conn, "ingested") == 0  # the whole transaction rolled back
    assert _send(ingest, _summary(1)) == "applied"
