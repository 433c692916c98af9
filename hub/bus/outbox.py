"""The ``outbox`` table, its only writer: rows enqueued inside the caller's transaction, then
published in order and marked sent once the broker acknowledged them.

Rows are written in the same transaction as the state change they announce (``enqueue``); a
crash between commit and PUBACK leaves them unsent, and they go out again on the next start
(consumers drop repeats by ``msg_id`` and keep the highest ``seq``). No other module runs
``INSERT``/``UPDATE``/``DELETE`` on the table (tests/hub/store/test_table_owners.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Protocol

import paho.mqtt.client as mqtt

from hub.store import db

log = logging.getLogger(__name__)


class WireMessage(Protocol):
    def to_bytes(self) -> bytes: ...


def enqueue(
    conn: sqlite3.Connection,
    topic: str,
    message: WireMessage | bytes,
    retain: bool,
    *,
    now: float | None = None,
) -> None:
    """Inside the caller's write transaction: publish ``message`` once that transaction commits.

    ``b""`` with ``retain`` clears the topic's retained message on the broker.
    """
    if not conn.in_transaction:
        raise RuntimeError("outbox.enqueue must run inside the transaction it announces")
    payload = message if isinstance(message, bytes) else message.to_bytes()
    conn.execute(
        "INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?,?,?,?)",
        (topic, payload, int(retain), time.time() if now is None else now),
    )


def retract_retained(conn: sqlite3.Connection, patterns: Iterable[str], now: float) -> int:
    """Inside a write transaction: forget what was sent on topics matching any MQTT ``patterns``
    (the stored copies) and clear their retained message on the broker. Returns topics cleared.

    Matching is paho's ``topic_matches_sub``, so a pattern is built by ``storesense.topics``
    like any topic (erasure passes one per alert, for whichever store sent it).
    """
    subs = list(patterns)
    if not subs:
        return 0
    topics = [
        t
        for (t,) in conn.execute("SELECT DISTINCT topic FROM outbox")
        if any(mqtt.topic_matches_sub(s, t) for s in subs)
    ]
    conn.executemany("DELETE FROM outbox WHERE topic=?", [(t,) for t in topics])
    for t in topics:
        enqueue(conn, t, b"", True, now=now)
    return len(topics)


def resend(conn: sqlite3.Connection, topic_prefix: str, since: float) -> int:
    """Inside a write transaction: mark rows on topics under ``topic_prefix`` created at or
    after ``since`` unsent again, so the hub publishes them once more (same payloads, same
    message ids). Only for consumers that drop repeats by id (the chain's central office):
    a retained topic would go back to an older state. Returns the rows marked."""
    return conn.execute(
        "UPDATE outbox SET sent_at=NULL WHERE sent_at IS NOT NULL AND retain=0 "
        "AND substr(topic, 1, ?)=? AND created_at >= ?",
        (len(topic_prefix), topic_prefix, since),
    ).rowcount


def resend_retained_clears(conn: sqlite3.Connection, topic_prefix: str, since: float) -> int:
    """Inside a write transaction: mark the retained-message clears (empty retained payloads)
    on topics under ``topic_prefix`` created at or after ``since`` unsent again.

    A broker killed between two persistence saves restarts from the older file, which still
    holds every retained message cleared since, an erased customer's alert among them. A
    clear repeated is harmless (the topic is empty either way), so the hub repeats the recent
    ones on every connect. Returns the rows marked."""
    return conn.execute(
        "UPDATE outbox SET sent_at=NULL WHERE sent_at IS NOT NULL AND retain=1 "
        "AND length(payload)=0 AND substr(topic, 1, ?)=? AND created_at >= ?",
        (len(topic_prefix), topic_prefix, since),
    ).rowcount


def republish(conn: sqlite3.Connection, topic: str, message: WireMessage, now: float) -> None:
    """Inside a write transaction: publish ``message`` on a retained ``topic`` again, reusing
    the topic's newest row instead of adding one.

    A retained topic holds one message, so its newest row is the only one that still means
    anything. The hub re-announces every retained alert on each connect
    (``hub.alerts.claims.reannounce``); a new row each time grew the table by the whole
    retained set per reconnect, kept for ``keep_ids_s`` (the 10-minute soak: RSS +5.8 MB over
    its late window, +1.3 MB without re-announcement; docs/benchmarks.md). A newest row not
    yet sent is left alone: it goes out anyway. With no row (purged), one is enqueued."""
    if not conn.in_transaction:
        raise RuntimeError("outbox.republish must run inside the transaction it announces")
    row = conn.execute(
        "SELECT outbox_id, sent_at FROM outbox WHERE topic=? ORDER BY outbox_id DESC LIMIT 1",
        (topic,),
    ).fetchone()
    if row is None:
        enqueue(conn, topic, message, True, now=now)
    elif row[1] is not None:
        conn.execute(
            "UPDATE outbox SET payload=?, retain=1, sent_at=NULL WHERE outbox_id=?",
            (message.to_bytes(), row[0]),
        )


def purge_sent(conn: sqlite3.Connection, before: float) -> int:
    """Inside a write transaction: drop rows acknowledged before ``before``."""
    return conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?", (before,)
    ).rowcount


MAX_IN_FLIGHT = 256
"""Publishes handed to paho and not yet acknowledged, at most. paho keeps every publish in
memory until its PUBACK (and all of them while the broker is away), so a flush of thousands
of rows at once (a reconnect's re-announcement) raised the process's memory high-water mark
each time; the rest wait in the table, where they already are."""


class Outbox:
    """Owned by one thread (the hub worker); only ``on_publish`` runs on paho's thread."""

    def __init__(self, conn: sqlite3.Connection, client: mqtt.Client) -> None:
        self.conn = conn
        self.client = client
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox_id (owner thread only)
        self._acked_mids: set[int] = set()
        self._lock = threading.Lock()  # guards _acked_mids only: never held around paho calls
        self.backlog = False  # the last flush stopped at MAX_IN_FLIGHT with rows left

    def on_publish(self, mid: int) -> None:
        with self._lock:
            self._acked_mids.add(mid)

    def flush(self, *, everything: bool = False) -> int:
        """Publish unsent rows not already in flight, oldest first, up to ``MAX_IN_FLIGHT``
        unacknowledged (``everything``: all of them, for a reply that must follow the state
        changes it caused); record acknowledgements. Returns sent; ``backlog`` says whether
        rows were left for a later flush."""
        self._mark_acked()
        pending = set(self._in_flight.values())
        room = 1 << 40 if everything else MAX_IN_FLIGHT - len(pending)
        rows = (
            self.conn.execute(
                "SELECT outbox_id, topic, payload, retain FROM outbox WHERE sent_at IS NULL "
                "ORDER BY outbox_id LIMIT ?",  # -1: no limit
                (-1 if everything else len(pending) + room + 1,),
            ).fetchall()
            if room > 0
            else []
        )
        self.backlog = room <= 0
        sent = 0
        for row in rows:
            if row["outbox_id"] in pending:
                continue
            if sent == room:
                self.backlog = True
                break
            info = self.client.publish(
                row["topic"], bytes(row["payload"]), qos=1, retain=bool(row["retain"])
            )
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("outbox publish to %s failed: rc=%s", row["topic"], info.rc)
                continue
            # paho keeps QoS 1 messages queued while disconnected and sends them on reconnect.
            self._in_flight[info.mid] = row["outbox_id"]
            sent += 1
        self._mark_acked(discard_unknown=True)
        return sent

    def _mark_acked(self, *, discard_unknown: bool = False) -> None:
        """Record PUBACKs; ``discard_unknown`` once every publish is registered (mids wrap)."""
        with self._lock:
            mids = [m for m in self._acked_mids if m in self._in_flight]
            if discard_unknown:
                self._acked_mids.clear()
            else:
                self._acked_mids.difference_update(mids)
        if mids:
            now = time.time()
            done = sorted(self._in_flight.pop(m) for m in mids)
            # One transaction, not one autocommit per row: a kill between two marks could
            # leave an alert's older row unsent behind its newer one marked sent, and the
            # restart would re-publish the older retained state over the newer (a claimed
            # alert shown open). tests/hub/test_hub_kill_claim.py.
            with db.write(self.conn):
                self.conn.executemany(
                    "UPDATE outbox SET sent_at=? WHERE outbox_id=?", [(now, i) for i in done]
                )

    def unsent(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        return int(row[0])
