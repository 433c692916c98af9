"""``storesense central run``: the central broker in, PostgreSQL out, one worker thread.

As in the hub: paho's callback only enqueues; the worker owns the database connection,
applies each message (``central.ingest``) and acknowledges it to the broker (manual ack) only
after its transaction committed. A crash re-delivers, the ``ingested`` table drops the copy:
nothing lost, nothing doubled. A persistent session (fixed client id, clean session off)
keeps what arrives while the service is away queued on the central broker. If PostgreSQL
goes away the worker keeps the message unacknowledged and retries it with back-off, in order.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import psycopg

from central import db
from central.config import CentralConfig
from central.ingest import Ingest
from storesense import service_notify
from storesense.mqtt_client import connect, make_client
from storesense.topics import ChainTopics

log = logging.getLogger(__name__)

TICK_S = 0.5
RETRY_MAX_S = 30.0
DOWN_EVERY_S = 0.25


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int


class CentralService:
    def __init__(self, cfg: CentralConfig) -> None:
        self.cfg = cfg
        self.conn = db.connect(cfg.database)
        db.require_current(self.conn)  # `storesense central migrate` sets the schema up
        self.ingest = Ingest(self.conn, max_age_days=cfg.max_age_days)
        self.client = make_client(cfg.client_id, cfg.mqtt, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self._inbox: queue.Queue[_Inbound | None] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._partition_day: dt.date | None = None
        # the downlink (chain/v1/<store>/down/<kind>): rows of ``downlink`` in flight by mid
        self._inflight: dict[int, int] = {}
        self._acked: queue.Queue[int] = queue.Queue()
        self._down_at = 0.0
        self.client.on_publish = self._on_publish
        self.down_sent = 0

    def start(self) -> CentralService:
        self._make_partitions()
        connect(self.client, self.cfg.mqtt)
        if not self.subscribed.wait(10):
            log.warning("no SUBACK from the central broker in 10 s; going on")
        self._worker = threading.Thread(target=self._run, name="central-worker", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()
        self.conn.close()

    def __enter__(self) -> CentralService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- paho thread -----------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object,
                    props: object) -> None:  # fmt: skip
        if getattr(rc, "is_failure", False):
            return
        client.subscribe(ChainTopics.all_stores, qos=1)
        log.info("central connected, subscribed to %s", ChainTopics.all_stores)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, codes: object,
                      props: object) -> None:  # fmt: skip
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object,
                       props: object) -> None:  # fmt: skip
        """Not subscribed until the next SUBACK (a restarted broker may have lost the session)."""
        self.subscribed.clear()
        log.warning("central lost the broker (%s); paho reconnects", rc)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: object,
                    props: object) -> None:  # fmt: skip
        self._acked.put(mid)

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        # Pinged from this thread (storesense-central.service, WatchdogSec): a worker hung on
        # the database stops the pings and systemd restarts the service; a slow database is
        # not hung (the retry wait below is bounded by the interval).
        wd_interval = service_notify.watchdog_interval_s()
        next_wd = 0.0
        while not self._stop.is_set():
            if wd_interval is not None and time.monotonic() >= next_wd:
                service_notify.watchdog()
                next_wd = time.monotonic() + wd_interval
            try:
                item = self._inbox.get(timeout=TICK_S)
            except queue.Empty:
                item = None
            if item is not None:
                self._apply_until_done(item)
            try:
                self._make_partitions()
                self._send_down()
            except psycopg.Error:
                log.exception("central database error on the partitions or the downlink; "
                              "trying again")  # fmt: skip
                self._reconnect()

    def _apply_until_done(self, item: _Inbound) -> None:
        """Apply, then acknowledge; on a database error reconnect and try again (unacked)."""
        pause = 0.5
        while not self._stop.is_set():
            try:
                self.ingest.handle(item.topic, item.payload, time.time())
            except psycopg.Error as exc:
                log.warning("central database error on %s (%s); retrying in %.1f s",
                            item.topic, exc, pause)  # fmt: skip
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                service_notify.watchdog()  # retrying a lost database is not hanging
                self._reconnect()
                continue
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)
            return

    def _send_down(self) -> None:
        """The downlink outbox: mark what the broker acknowledged, publish what is unsent.

        QoS 1 to the central broker, which queues for each store's bridge (persistent
        session) while its link is down. A row is marked sent on the broker's PUBACK; after
        a lost connection the rows in flight are published again (the hub drops repeats by
        ``msg_id``)."""
        now = time.monotonic()
        if now < self._down_at and self._acked.empty():
            return  # at most every DOWN_EVERY_S while the inbox is busy
        self._down_at = now + DOWN_EVERY_S
        done = []
        while True:
            try:
                mid = self._acked.get_nowait()
            except queue.Empty:
                break
            down_id = self._inflight.pop(mid, None)
            if down_id is not None:
                done.append(down_id)
        if done:
            self.conn.execute("UPDATE downlink SET sent_at=now() WHERE down_id = ANY(%s)", (done,))
            self.down_sent += len(done)
        if not self.client.is_connected():
            self._inflight.clear()  # republished after the reconnect
            return
        busy = list(self._inflight.values())
        rows = self.conn.execute(
            "SELECT down_id, store_id, kind, payload FROM downlink WHERE sent_at IS NULL "
            "AND NOT (down_id = ANY(%s)) ORDER BY down_id LIMIT 200",
            (busy,),
        ).fetchall()
        for down_id, store_id, kind, payload in rows:
            info = self.client.publish(ChainTopics.down(store_id, kind), bytes(payload), qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._inflight[info.mid] = int(down_id)

    def _reconnect(self) -> None:
        if not self.conn.closed and not self.conn.broken:
            return
        try:
            self.conn = db.connect(self.cfg.database)
            self.ingest.conn = self.conn
        except db.CentralDbError as exc:
            log.warning("%s", exc)

    def _make_partitions(self) -> None:
        """Today's and tomorrow's partitions, once a day (messages make others as needed)."""
        today = dt.datetime.now(dt.UTC).date()
        if self._partition_day == today:
            return
        for day in (today, today + dt.timedelta(days=1)):
            db.ensure_partitions(self.conn, day)
        self._partition_day = today
