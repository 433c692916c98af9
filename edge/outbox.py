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
        # Messages held back until paho has a session, in order (see _ready). Disk-backed
        # entries whose row the bound has since deleted are skipped (``_dropped_through``);
        # memory-only ones (the disk failed) are bounded by ``max_rows`` on their own.
        self._deferred: deque[tuple[int | None, str, bytes, bool]] = deque()
        self._dropped_through = 0  # highest row_id the bound has deleted
        self._memory_only = 0
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
        if self._deferred or not self._ready():
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

    def _ready(self) -> bool:
        """paho has a session up (CONNACK received): only then is a PUBLISH handed over.

        paho writes a PUBLISH as soon as it has a socket, so one handed over between the socket
        opening and the CONNECT reaches the broker first and the broker drops the connection
        (amqtt under load: the demo's door camera then delivered nothing). Checking for "socket
        open but not connected" was not enough: the socket can appear between that check and
        the publish. Messages given to paho while connected and caught by a disconnect are
        paho's to resend after the next CONNACK, which is safe.
        """
        return self.client.is_connected()

    def _defer(self, row_id: int | None, topic: str, payload: bytes, retain: bool) -> None:
        self._deferred.append((row_id, topic, payload, retain))
        if row_id is None:
            self._memory_only += 1
            if self._memory_only > self.max_rows:  # disk broken and broker away: same bound
                oldest = next(i for i, e in enumerate(self._deferred) if e[0] is None)
                del self._deferred[oldest]
                self._memory_only -= 1
                self.counters["dropped_oldest"] += 1
        if len(self._deferred) > 2 * self.max_rows:  # forget entries the disk bound dropped
            self._deferred = deque(e for e in self._deferred if not self._dropped(e[0]))

    def _dropped(self, row_id: int | None) -> bool:
        return row_id is not None and row_id <= self._dropped_through

    def _flush_deferred(self) -> None:
        while self._deferred and self._ready():
            row_id, topic, payload, retain = self._deferred.popleft()
            if row_id is None:
                self._memory_only -= 1
            elif self._dropped(row_id):
                continue  # the bound dropped (and counted) it while it waited
            self._publish(row_id, topic, payload, retain)

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
            return cur.lastrowid  # an INSERT's rowid
        except sqlite3.Error as exc:
            self._disk_error("write", exc)
            return None

    def _enforce_bound(self) -> None:
        over = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] - self.max_rows
        if over > 0:
            last = self.conn.execute(
                "SELECT max(row_id) FROM (SELECT row_id FROM outbox ORDER BY row_id LIMIT ?)",
                (over,),
            ).fetchone()[0]
            self._dropped_through = max(self._dropped_through, int(last))
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
            self._defer(row_id, topic, bytes(payload), bool(retain))  # sent once connected

    def _disk_error(self, what: str, exc: Exception) -> None:
        self.counters[f"disk_{what}_errors"] += 1
        log.error("edge outbox %s failed (%s): message goes out from memory only", what, exc)
