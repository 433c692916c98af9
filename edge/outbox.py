"""Store-and-forward for the edge: every message is on disk until the broker acknowledged it.

paho already queues QoS 1 messages in memory while the broker is away; that is lost when the
agent restarts (power cut, watchdog, upgrade). This outbox is a small SQLite file on the
device: a message is written before it is handed to paho and deleted on PUBACK, so after a
restart the rows still there are sent again, oldest first (the hub drops repeats by
``msg_id``). It is bounded: past ``max_rows`` the oldest rows are dropped and counted, so a
week-long outage cannot fill the SD card. A full or broken disk is counted and logged, and
the message still goes out through paho's memory queue: the outbox can only add safety.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from pathlib import Path

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    row_id  INTEGER PRIMARY KEY,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain  INTEGER NOT NULL,
    queued_at REAL NOT NULL
);
"""


class EdgeOutbox:
    """Owned by the agent's thread; only ``on_publish`` is called from paho's thread."""

    def __init__(self, path: Path, client: mqtt.Client, *, max_rows: int = 5000) -> None:
        self.client = client
        self.max_rows = max_rows
        self.counters: Counter[str] = Counter()
        self._in_flight: dict[int, int] = {}  # paho mid -> row_id (None-row messages omitted)
        self._acked: set[int] = set()
        self._lock = threading.Lock()
        # Messages held back while paho is mid-connect, in order (see _connecting).
        self._deferred: deque[tuple[int | None, str, bytes, bool]] = deque()
        try:
            self.conn = self._open(path)
        except (OSError, sqlite3.Error) as exc:
            # A full or read-only SD card must not stop the camera: keep the same bounded
            # queue in memory (lost on restart, like paho's own) and say so loudly.
            self._disk_error("open", exc)
            self.conn = self._open(None)
        self._resend_backlog()

    @staticmethod
    def _open(path: Path | None) -> sqlite3.Connection:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path) if path else ":memory:", isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def on_publish(self, mid: int) -> None:
        with self._lock:
            self._acked.add(mid)

    def send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        row_id = self._store(topic, payload, retain)
        self._flush_deferred()
        if self._deferred or self._connecting():
            self._defer(row_id, topic, payload, retain)
        else:
            self._publish(row_id, topic, payload, retain)

    def pump(self) -> None:
        """Hand held-back messages to paho and forget acknowledged rows. Call from the agent
        loop (cheap when nothing happened)."""
        self._flush_deferred()
        with self._lock:
            acked = [m for m in self._acked if m in self._in_flight]
            self._acked.difference_update(acked)
        rows = [self._in_flight.pop(m) for m in acked]
        if rows:
            try:
                self.conn.executemany("DELETE FROM outbox WHERE row_id=?", [(r,) for r in rows])
            except sqlite3.Error as exc:
                self._disk_error("delete", exc)

    def _connecting(self) -> bool:
        """paho's socket is open but the session is not up yet. paho only checks for a socket
        before writing a PUBLISH, so one handed over now can reach the broker ahead of the
        CONNECT, and the broker drops the connection (seen with amqtt under load). Before a
        socket exists paho just queues the message, which is safe."""
        return self.client.socket() is not None and not self.client.is_connected()

    def _defer(self, row_id: int | None, topic: str, payload: bytes, retain: bool) -> None:
        self._deferred.append((row_id, topic, payload, retain))
        if len(self._deferred) > self.max_rows:  # a broker that never answers: same bound
            self._deferred.popleft()
            self.counters["dropped_oldest"] += 1

    def _flush_deferred(self) -> None:
        while self._deferred and not self._connecting():
            self._publish(*self._deferred.popleft())

    def depth(self) -> int:
        """Messages written but not yet acknowledged by the broker."""
        try:
            return int(self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.Error:
            return len(self._in_flight)

    def close(self) -> None:
        self.pump()
        self.conn.close()

    # -- internals --------------------------------------------------------------------------
    def _store(self, topic: str, payload: bytes, retain: bool) -> int | None:
        try:
            cur = self.conn.execute(
                "INSERT INTO outbox(topic, payload, retain, queued_at) VALUES (?,?,?,?)",
                (topic, payload, int(retain), time.time()),
            )
            self._enforce_bound()
            return int(cur.lastrowid)
        except sqlite3.Error as exc:
            self._disk_error("write", exc)
            return None

    def _enforce_bound(self) -> None:
        over = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] - self.max_rows
        if over > 0:
            self.conn.execute(
                "DELETE FROM outbox WHERE row_id IN "
                "(SELECT row_id FROM outbox ORDER BY row_id LIMIT ?)",
                (over,),
            )
            self.counters["dropped_oldest"] += over
            log.warning("edge outbox full (%d rows): dropped the %d oldest", self.max_rows, over)

    def _publish(self, row_id: int | None, topic: str, payload: bytes, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.counters["publish_errors"] += 1
            log.warning("publish to %s failed (rc=%s); kept in the outbox", topic, info.rc)
            return
        if row_id is not None:
            self._in_flight[info.mid] = row_id

    def _resend_backlog(self) -> None:
        rows = self.conn.execute(
            "SELECT row_id, topic, payload, retain FROM outbox ORDER BY row_id"
        ).fetchall()
        if rows:
            log.info("edge outbox: re-sending %d messages left from the last run", len(rows))
            self.counters["resent_after_restart"] += len(rows)
        for row_id, topic, payload, retain in rows:
            self._publish(row_id, topic, bytes(payload), bool(retain))

    def _disk_error(self, what: str, exc: Exception) -> None:
        self.counters[f"disk_{what}_errors"] += 1
        log.error("edge outbox %s failed (%s): message goes out from memory only", what, exc)
