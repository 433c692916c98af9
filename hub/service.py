"""The hub daemon: MQTT in, one worker thread, SQLite, MQTT out.

paho callbacks only decode-free enqueue (and count); the single worker thread owns the database
connection and the matcher, so no lock guards them. Messages are acknowledged to the broker
(manual ack) only after their effect has committed: a hub crash re-delivers, never loses.
Topic dispatch is paho's own (``message_callback_add`` per subscription): the callback only
tags the message with the worker-side handler it is for. The daemon is the one process that
migrates the database (``hub.store.db.migrate_db``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from hub.alerts import claims as alerts
from hub.alerts import node_health
from hub.alerts import views as alert_views
from hub.api.dispatch import Api
from hub.bus import seen
from hub.bus.outbox import Outbox
from hub.faces import profiles, threshold
from hub.faces.gallery import Gallery
from hub.faces.recognizer import Recognizer, TrackOutcome
from hub.floor.ingest import FloorIngest
from hub.push.sender import PushSender, load_or_create_vapid
from hub.push.subscriptions import KNOWN_PUSH_HOSTS
from hub.shop.loyalty import tier_lookup
from hub.staff import verifier
from hub.store import db
from storesense import messages as m
from storesense import rpc, service_notify
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense.rpc import too_late
from storesense.topics import Topics

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

TICK_S = 0.25
HOUSEKEEPING_S = 300.0
SUBSCRIBE_WAIT_S = 10.0


@dataclass
class HubStats:
    received: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    alerts: int = 0
    unknown_visitors: int = 0


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    # the worker-side handler paho's topic match chose; None: not ours (acknowledged, dropped)
    handler: Callable[[_Inbound], None] | None = None


class HubService:
    def __init__(
        self,
        cfg: StoreConfig,
        home: Path,
        *,
        client_id: str = "storesense-hub",
        push_hosts: tuple[str, ...] = KNOWN_PUSH_HOSTS,
        login_threads: int | None = None,
    ) -> None:
        """``push_hosts``: the push services the hub may send to (tests add a local one);
        ``login_threads``: argon2 threads beside the worker (default ``app.login_verifiers``;
        0: check passwords on the worker itself, the old way, which
        ``bench/hub_login_burst.py`` compares against)."""
        self.cfg = cfg
        self.home = home
        self.topics = Topics(cfg.store_id)
        self.stats = HubStats()
        self.conn = db.migrate_db(hub_db_path(home))  # the hub owns the schema: it migrates
        self._tier = tier_lookup(cfg.loyalty)  # alerts ask the shop for a tier through this
        self.gallery = Gallery.open(self.conn, template_key_path(home))
        # the config's recognition settings with a manager-applied threshold (hub.faces.threshold)
        self._recognition = threshold.recognition_config(self.conn, cfg.recognition)
        self.recognizer = Recognizer(self._recognition)
        self.floor = FloorIngest(self.conn, cfg)  # floor cameras → occupancy grid, zone visits
        self._gallery_version = -1
        self._reload_gallery()
        offline = m.HubStatus(online=False).to_bytes()
        self.client = make_client(
            client_id, cfg.mqtt, manual_ack=True, will=(self.topics.hub_status, offline)
        )
        self.outbox = Outbox(self.conn, self.client)
        # the web process's one channel to the hub (storesense.rpc), served by this worker
        # password checks off the worker (hub.staff.verifier); answers come back through the inbox
        checks, threads = None, cfg.app.login_verifiers if login_threads is None else login_threads
        if threads:
            checks = verifier.PasswordVerifier(self._later, threads=threads)
        self.api = Api(self.conn, cfg, home, self.topics, push_hosts=push_hosts, verifier=checks)
        # Web Push: alert changes go to the phones' push services from a thread of its own
        self.push = PushSender(
            hub_db_path(home),
            load_or_create_vapid(home),
            subject=cfg.app.push_contact or "",  # app.push_contact (config checks it)
            enabled=cfg.app.web_push_on,
            entrance_name=cfg.entrance_name,
            hosts=push_hosts,
        )
        self._pushed_seq = db.counter(self.conn, "alert_seq")
        # subscription pattern -> worker-side handler; paho matches, the callback only enqueues
        self._routes: dict[str, Callable[[_Inbound], None]] = {
            self.topics.all_faces: self._on_face_track,
            self.topics.all_claims: self._on_claim,
            self.topics.all_edge_status: self._on_edge_status,
            self.topics.all_floor: self._on_floor,
            self.topics.all_rpc_requests: self._handle_rpc,
        }
        for pattern, handler in self._routes.items():
            self.client.message_callback_add(pattern, self._enqueuer(handler))
        self.client.on_message = self._enqueuer(None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self.client.on_publish = lambda c, u, mid, rc, p: self.outbox.on_publish(mid)
        self._inbox: queue.Queue[_Inbound | None] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_housekeeping = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HubService:
        connect(self.client, self.cfg.mqtt)
        # Ready means subscribed: a camera message published between CONNACK and SUBACK to a
        # new session would reach nobody (systemd's READY and the tests both wait on this).
        if not self.subscribed.wait(SUBSCRIBE_WAIT_S):
            log.warning("no SUBACK from the broker in %.0f s; going on", SUBSCRIBE_WAIT_S)
        self.push.start()
        self._worker = threading.Thread(target=self._run, name="hub-worker", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.push.stop()
        self.api.close()
        try:
            self.floor.close()  # the worker has stopped: close visits still in progress
        except Exception:
            log.exception("could not store the open floor visits at shutdown")
        bye = self.client.publish(
            self.topics.hub_status, m.HubStatus(online=False).to_bytes(), qos=1, retain=True
        )
        if self.client.is_connected():
            bye.wait_for_publish(timeout=2.0)  # a clean disconnect does not fire the last will
        self.client.disconnect()
        self.client.loop_stop()
        self.conn.close()

    def __enter__(self) -> HubService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- paho thread -----------------------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            return
        _, self._subscribe_mid = client.subscribe([(t, 1) for t in self._routes])
        log.info("hub connected to MQTT, subscribing under %s", self.topics.base)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid == self._subscribe_mid:
            failed = [str(rc) for rc in reason_codes if rc.is_failure]
            if failed:
                log.error("the broker refused hub subscriptions: %s", ", ".join(failed))
            self.subscribed.set()

    def _enqueuer(
        self, handler: Callable[[_Inbound], None] | None
    ) -> Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]:
        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            self._inbox.put(_Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, handler))

        return on_message

    # -- worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        self._publish_status(online=True)
        next_tick = 0.0
        # Pinged from this thread, not the main one: a hung worker must stop the pings.
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
                try:
                    self._handle(item)
                except Exception:
                    self.stats.rejected["internal_error"] += 1
                    log.exception("hub failed on a message from %s", item.topic)
                if item.qos > 0:
                    self.client.ack(item.mid, item.qos)
            now = time.time()
            if now >= next_tick:
                next_tick = now + TICK_S
                self._tick(now)
            self.outbox.flush()
            self._feed_push()

    def _tick(self, now: float) -> None:
        self._reload_gallery()
        self._sweep_tracks(now)
        if alerts.expire_due(self.conn, self.topics, now):
            log.info("expired unclaimed alerts")
        v = self.cfg.visits
        for alert_id in alerts.end_idle_claims(
            self.conn, self.topics, now, idle_s=v.claim_idle_s, confirm_s=v.claim_confirm_s
        ):
            log.info("claim on alert %s ended: idle and unanswered", alert_id)
        node_health.mark_silent(self.conn, self.topics, now)
        self.floor.tick(now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_S
            alerts.housekeeping(self.conn, self.topics, now)

    def _feed_push(self) -> None:
        """Alert changes since the last look (one SELECT of a counter when there are none) to
        the push sender, after the outbox published them to the live pages."""
        seq = db.counter(self.conn, "alert_seq")
        if seq > self._pushed_seq:
            self.push.offer(alert_views.alert_states_since(self.conn, self._pushed_seq))
            self._pushed_seq = seq

    def _reload_gallery(self) -> None:
        version = self.gallery.version()
        if version != self._gallery_version:
            rc = threshold.recognition_config(self.conn, self.cfg.recognition)
            if rc != self._recognition:  # a manager applied a threshold (storesense faces review)
                log.info("match threshold %.3f -> %.3f", self._recognition.threshold, rc.threshold)
                self._recognition, self.recognizer = rc, Recognizer(rc)  # tracks in flight restart
            gm = self.gallery.load_matrix()
            self.recognizer.load(gm)
            self._gallery_version = gm.version
            log.info(
                "gallery v%d: %d customers, %d templates",
                gm.version,
                len(gm.customer_ids),
                len(gm.labels),
            )

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        log.warning("rejected message on %s (%s): %s", topic, reason, detail)

    def _handle(self, item: _Inbound) -> None:
        if item.handler is None:
            return  # a topic under none of our subscriptions' callbacks: nothing to do
        try:
            item.handler(item)
        except m.PayloadError as exc:
            self._reject(exc.reason, item.topic, exc.detail)

    def _on_face_track(self, item: _Inbound) -> None:
        msg = m.decode(item.payload, m.FaceTrack)
        if msg.camera_id != self.topics.segment(item.topic, 1):
            raise m.PayloadError("topic_mismatch", "camera_id differs from the topic")
        self.stats.received["face_track"] += 1
        self._handle_face(msg)

    def _on_floor(self, item: _Inbound) -> None:
        applied = self.floor.handle(item.topic, item.payload)  # PayloadError if bad
        self.stats.received["floor_positions"] += 1
        self.stats.duplicates += not applied

    def _on_claim(self, item: _Inbound) -> None:
        msg = m.decode(item.payload, m.ClaimRequest)
        if msg.staff_id != self.topics.segment(item.topic, 1):
            raise m.PayloadError("topic_mismatch", "staff_id differs from the topic")
        if self.cfg.staff and msg.staff_id not in self.cfg.staff:
            raise m.PayloadError("unknown_staff", f"{msg.staff_id!r} is not on the staff list")
        self.stats.received["claim_request"] += 1
        now = time.time()
        if msg.deadline is not None and too_late(msg.deadline, now):
            raise m.PayloadError("past_deadline", "the claim came after its deadline")
        result = alerts.handle_claim(
            self.conn, self.topics, msg, now, reopen_ttl_s=self.cfg.visits.alert_ttl_s
        )
        if result is None:
            self.stats.duplicates += 1

    def _on_edge_status(self, item: _Inbound) -> None:
        msg = m.decode(item.payload, m.EdgeStatus)
        if msg.camera_id != self.topics.segment(item.topic, 1):
            raise m.PayloadError("topic_mismatch", "camera_id differs from the topic")
        self.stats.received["edge_status"] += 1
        node_health.record_heartbeat(self.conn, self.topics, msg, time.time())

    def _handle_rpc(self, item: _Inbound) -> None:
        """A web request: answered on the reply topic of the topic it came on (never one the
        payload names), after the outbox has sent the state changes it caused."""
        web_id = self.topics.segment(item.topic, 1) or ""

        def respond(reply: rpc.Reply) -> None:
            self.outbox.flush()
            self.client.publish(self.topics.rpc_reply(web_id), reply.to_bytes(), qos=1)

        reply = self.api.handle(item.payload, time.time(), respond)
        self.stats.received["rpc_request"] += 1
        if reply is None:
            self.stats.rejected["bad_rpc_request"] += 1
            return
        if isinstance(reply, rpc.Reply):  # else a login: ``respond`` answers it later
            respond(reply)

    def _later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the worker thread (from any thread), in turn with the messages."""
        self._inbox.put(_Inbound("", b"", 0, 0, lambda _item: fn()))

    def _handle_face(self, msg: m.FaceTrack) -> None:
        """Dedupe, vote, and commit the message id together with whatever it decided."""
        if seen.already_seen(self.conn, msg.msg_id):
            self.stats.duplicates += 1
            return
        self._reload_gallery()  # one SELECT: an enrolment counts from its next message on
        now = time.time()
        still_here = self.recognizer.still_present(msg.track_id)
        outcome = self.recognizer.observe(msg, now)
        with db.write(self.conn):
            seen.remember(self.conn, msg.msg_id, now)
            if outcome is not None:
                self._apply_outcome(outcome, now)
            elif still_here is not None:
                alerts.seen_again(self.conn, still_here, msg.camera_id, now,
                                  cooldown_s=self.cfg.visits.cooldown_s)  # fmt: skip

    def _sweep_tracks(self, now: float) -> None:
        outcomes = self.recognizer.sweep(now)
        if outcomes:
            with db.write(self.conn):
                for outcome in outcomes:
                    self._apply_outcome(outcome, now)

    def _apply_outcome(self, outcome: TrackOutcome, now: float) -> None:
        """Inside a write transaction: record an unknown visitor or a customer match."""
        if outcome.customer_id is None:
            profiles.record_unknown(
                self.conn, outcome.track_id, outcome.camera_id, now, outcome.best_distance
            )
            self.stats.unknown_visitors += 1
            return
        result = alerts.record_match(
            self.conn,
            self.topics,
            customer_id=outcome.customer_id,
            camera_id=outcome.camera_id,
            first_usable_at=outcome.first_usable_at,
            now=now,
            cooldown_s=self.cfg.visits.cooldown_s,
            alert_ttl_s=self.cfg.visits.alert_ttl_s,
            track_id=outcome.track_id,
            best_distance=outcome.best_distance,
            tier=self._tier,
        )
        if result.alert_id is not None:
            self.stats.alerts += 1
            log.info(
                "alert %s: customer %s at %s",
                result.alert_id,
                outcome.customer_id,
                outcome.camera_id,
            )

    def _publish_status(self, *, online: bool) -> None:
        customers, _ = self.gallery.counts()
        status = m.HubStatus(
            online=online, gallery_size=customers, rejected=dict(self.stats.rejected)
        )
        self.client.publish(self.topics.hub_status, status.to_bytes(), qos=1, retain=True)
