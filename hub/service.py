"""The hub daemon: MQTT in, one worker thread, SQLite, MQTT out.

paho callbacks only decode-free enqueue (and count); the single worker thread owns the database
connection and the matcher, so no lock guards them. Messages are acknowledged to the broker
(manual ack) only after their effect has committed, or, for a door message whose write met a
database locked by another writer, after its decided effect is parked on disk for replay
(``hub.bus.parked``): a hub crash re-delivers or replays, never loses.
Topic dispatch is paho's own (``message_callback_add`` per subscription): the callback only
tags the message with the worker-side handler it is for. The daemon is the one process that
migrates the database (``hub.store.db.migrate_db``).
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
import uuid
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
from hub.bus.parked import ParkedWrites, parked_path
from hub.chain.customers import ChainCustomers
from hub.chain.feed import ChainFeed, HealthFacts
from hub.faces import profiles, threshold
from hub.faces.camera_keys import CameraKeys
from hub.faces.gallery import Gallery
from hub.faces.recognizer import Recognizer, TrackOutcome
from hub.floor.ingest import FloorIngest
from hub.push.sender import PushSender, load_or_create_vapid
from hub.push.subscriptions import KNOWN_PUSH_HOSTS
from hub.shop.loyalty import tier_lookup
from hub.staff import verifier
from hub.store import db
from storesense import face_seal, rpc, service_notify
from storesense import messages as m
from storesense.config import StoreConfig
from storesense.loop_guard import LoopGuard, guard_mqtt_callbacks
from storesense.mqtt_client import connect, make_client
from storesense.paths import camera_keys_path, hub_db_path, template_key_path
from storesense.rpc import too_late
from storesense.topics import Topics

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

TICK_S = 0.25
BACKLOG_POLL_S = 0.01  # the worker's wait, connected, while rows wait past outbox.MAX_IN_FLIGHT
HOUSEKEEPING_S = 300.0
SUBSCRIBE_WAIT_S = 10.0
STATUS_MIN_S = 5.0  # a changed rejection or error count goes out in the status this often at most
# A face write waits this long for a lock another writer holds, then parks (hub.bus.parked)
# instead of blocking the worker (and the watchdog pings) for the connection's 30 s.
FACE_WRITE_WAIT_S = 5.0
TICK_WRITE_WAIT_S = 5.0  # the same for the tick's sweeps: idempotent, retried at the next tick
PUSHED_OWNERS_KEPT = 5000  # alerts whose notification an erasure can still close
# A broker's persistence file is at most its autosave interval old (60 s in the config
# storesense broker-config writes): clears younger than this are repeated on every connect.
CLEARS_REPEAT_S = 600.0
REPLAY_WAIT_S = 0.2  # one attempt to replay the parked writes waits this long for the lock
REPLAY_FIRST_S, REPLAY_MAX_S = 0.25, 5.0  # between attempts: doubling, bounded


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


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class _Decided:
    """What the recogniser decided about one track: all a write needs of a ``TrackOutcome``,
    plain enough to be parked in a file and replayed after a restart."""

    camera_id: str
    track_id: str
    customer_id: str | None  # None: an unknown visitor
    first_usable_at: float
    best_distance: float | None

    @classmethod
    def of(cls, o: TrackOutcome) -> _Decided:
        return cls(o.camera_id, o.track_id, o.customer_id, o.first_usable_at, o.best_distance)


@dataclass(frozen=True)
class _FaceWrite:
    """One face transaction: the message's id (or a swept batch's), its time, and its effects.
    The recogniser has already voted on it, so it must be committed as decided, never
    re-observed: a replay applies exactly this."""

    id: str
    at: float
    remember: bool  # record ``id`` in seen_messages (a message's id; a replayed batch's)
    still_here: tuple[str, str] | None = None  # (customer, camera) of a matched track in view
    decided: tuple[_Decided, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "still_here": list(self.still_here) if self.still_here else None,
            # a non-finite distance (no template to compare with) is kept as None: JSON has none
            "decided": [
                {**d.__dict__, "best_distance": _finite(d.best_distance)} for d in self.decided
            ],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _FaceWrite:
        here = d.get("still_here")
        return cls(
            id=str(d["id"]),
            at=float(d["at"]),
            remember=True,
            still_here=(str(here[0]), str(here[1])) if here else None,
            decided=tuple(_Decided(**x) for x in d.get("decided") or ()),
        )


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
        # the worker's, the push sender's and paho's failures (HubStatus.errors), by step
        self.guard = LoopGuard(log)
        self.conn = db.migrate_db(hub_db_path(home))  # the hub owns the schema: it migrates
        self._tier = tier_lookup(cfg.loyalty)  # alerts ask the shop for a tier through this
        self.gallery = Gallery.open(self.conn, template_key_path(home))
        # the config's recognition settings with a manager-applied threshold (hub.faces.threshold)
        self._recognition = threshold.recognition_config(self.conn, cfg.recognition)
        self.recognizer = Recognizer(self._recognition)
        # the cameras' face seal keys (storesense.face_seal): sealed tracks open here only
        self.camera_keys = CameraKeys(camera_keys_path(home))
        self.floor = FloorIngest(self.conn, cfg)  # floor cameras → occupancy grid, zone visits
        # face writes the database refused (locked past FACE_WRITE_WAIT_S), replayed in order
        self.parked = ParkedWrites(parked_path(home))
        if self.parked:
            log.warning("%d face write(s) parked before a stop: replayed now", len(self.parked))
        self._replay_at, self._replay_every = 0.0, REPLAY_FIRST_S
        self._gallery_version = -1
        self._reload_gallery()
        offline = m.HubStatus(online=False).to_bytes()
        self.client = make_client(
            client_id, cfg.mqtt, manual_ack=True, will=(self.topics.hub_status, offline)
        )
        guard_mqtt_callbacks(self.client, self.guard, log)
        self.outbox = Outbox(self.conn, self.client)
        # what crosses to the chain's central office (cfg.chain.send; nothing by default)
        customers = (
            ChainCustomers(self.conn, cfg, self.topics, home)
            if cfg.chain.sends("customers") else None
        )  # fmt: skip
        self.chain = ChainFeed(
            self.conn, cfg, self.topics, health=self._health_facts, customers=customers
        )
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
            guard=self.guard,
        )
        self._pushed_seq = db.counter(self.conn, "alert_seq")
        # alert id -> customer id of the alerts pushed lately: on an erasure their phones'
        # notifications (which show the name) are closed (PushSender.forget)
        self._pushed_owner: dict[str, str] = {}
        # subscription pattern -> worker-side handler; paho matches, the callback only enqueues
        self._routes: dict[str, Callable[[_Inbound], None]] = {
            self.topics.all_faces: self._on_face_track,
            self.topics.all_claims: self._on_claim,
            self.topics.all_edge_status: self._on_edge_status,
            self.topics.all_floor: self._on_floor,
            self.topics.all_rpc_requests: self._handle_rpc,
        }
        if customers is not None:  # the central office's messages for this store
            self._routes[self.topics.all_chain_down] = self._on_chain_down
        for pattern, handler in self._routes.items():
            self.client.message_callback_add(pattern, self._enqueuer(handler))
        self.client.on_message = self._enqueuer(None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self.client.on_publish = lambda c, u, mid, rc, p: self.outbox.on_publish(mid)
        self._inbox: queue.Queue[_Inbound | None] = queue.Queue()
        self._reannounce_due = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self._status_sent: tuple[dict[str, int], dict[str, int]] | None = None
        self._status_at = 0.0

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
        self._reannounce_due.set()  # the worker makes the broker's retained alerts true again
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
        """The worker loop. Every step runs under ``self.guard``: an exception is logged and
        counted (``HubStatus.errors``) and the loop goes on, pausing with back-off while a step
        keeps failing (a database locked past its 30 s busy timeout by a long import); a
        message whose handler raised is counted ``internal_error`` and acknowledged."""
        step = self.guard.step
        next_tick = 0.0
        # Pinged from this thread, not the main one: a hung worker must stop the pings.
        wd_interval = service_notify.watchdog_interval_s()
        next_wd = 0.0
        while not self._stop.is_set():
            if wd_interval is not None and time.monotonic() >= next_wd:
                service_notify.watchdog()
                next_wd = time.monotonic() + wd_interval
            try:
                # rows left by a flush capped at MAX_IN_FLIGHT go out as PUBACKs come back
                backlog = self.outbox.backlog and self.client.is_connected()
                item = self._inbox.get(timeout=BACKLOG_POLL_S if backlog else TICK_S)
            except queue.Empty:
                item = None
            if self.parked and time.monotonic() >= self._replay_at:
                step("replay_parked", self._replay_parked)
            if item is not None:
                try:
                    self._handle(item)
                except Exception:
                    self.stats.rejected["internal_error"] += 1
                    self.guard.failed("message")
                    log.error("hub failed on a message from %s (acknowledged)", item.topic)
                if item.qos > 0:
                    step("ack", self.client.ack, item.mid, item.qos)
            now = time.time()
            if now >= next_tick:
                next_tick = now + TICK_S
                step("tick", self._tick, now)
            if self._reannounce_due.is_set():
                step("reannounce", self._reannounce)
            step("outbox_flush", self._flush_outbox)
            step("push_feed", self._feed_push)
            step("status", self._status_if_changed, now)
            pause = self.guard.backoff_s()
            if pause:
                # bounded by the watchdog interval: backing off is not hanging
                self._stop.wait(min(pause, wd_interval or pause))

    def _reannounce(self) -> None:
        """After a connect: every retained alert's current state, after the recent clears
        (hub.alerts.claims.reannounce). Retried by the loop until it commits."""
        self._reannounce_due.clear()  # before: a connect during the write asks again
        try:
            with db.write(self.conn):
                n = alerts.reannounce(
                    self.conn, self.topics, time.time(), clears_since=time.time() - CLEARS_REPEAT_S
                )
        except BaseException:
            self._reannounce_due.set()
            raise
        if n:
            log.info("re-announced %d retained alert states after connecting", n)

    def _flush_outbox(self) -> None:
        """The loop's flush waits for a held lock no longer than a tick's sweeps do; what it
        could not mark sent goes out again at the next round (the alert sequence rule makes
        a repeat harmless)."""
        with db.busy_wait(self.conn, TICK_WRITE_WAIT_S):
            self.outbox.flush()

    def _status_if_changed(self, now: float) -> None:
        """Publish the status (online) at start and whenever its counts changed, at most
        every ``STATUS_MIN_S``: rejections and worker errors show without a restart."""
        counts = (dict(self.stats.rejected), self.guard.snapshot())
        if counts == self._status_sent or (
            self._status_sent is not None and now - self._status_at < STATUS_MIN_S
        ):
            return
        self._publish_status(online=True)
        self._status_sent, self._status_at = counts, now

    def _tick(self, now: float) -> None:
        """The periodic sweeps; a lock held past ``TICK_WRITE_WAIT_S`` fails this round (counted
        under ``tick``) and the next round tries again: no sweep holds the worker for 30 s."""
        with db.busy_wait(self.conn, TICK_WRITE_WAIT_S):
            self._sweeps(now)

    def _sweeps(self, now: float) -> None:
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
        self.chain.tick(now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_S
            alerts.housekeeping(self.conn, self.topics, now)

    def _health_facts(self) -> HealthFacts:
        return HealthFacts(
            outbox_unsent=self.outbox.unsent(),
            rejected=dict(self.stats.rejected),
            errors=self.guard.snapshot(),
        )

    def _feed_push(self) -> None:
        """Alert changes since the last look (one SELECT of a counter when there are none) to
        the push sender, after the outbox published them to the live pages."""
        seq = db.counter(self.conn, "alert_seq")
        if seq > self._pushed_seq:
            changed = alert_views.alert_states_since(self.conn, self._pushed_seq)
            self.push.offer(changed)
            self._pushed_seq = seq
            for a in changed:  # whose alert went to the phones' push services (ids only)
                self._pushed_owner.pop(a.alert_id, None)
                self._pushed_owner[a.alert_id] = a.customer_id
            while len(self._pushed_owner) > PUSHED_OWNERS_KEPT:
                self._pushed_owner.pop(next(iter(self._pushed_owner)))

    def _reload_gallery(self) -> None:
        version = self.gallery.version()
        if version != self._gallery_version:
            rc = threshold.recognition_config(self.conn, self.cfg.recognition)
            if rc != self._recognition:  # a manager applied a threshold (storesense faces review)
                log.info("match threshold %.3f -> %.3f", self._recognition.threshold, rc.threshold)
                self._recognition, self.recognizer = rc, Recognizer(rc)  # tracks in flight restart
            gm = self.gallery.load_matrix(self._recognition.model)
            gone = set(self.recognizer.customer_ids) - set(gm.customer_ids)
            if gone:
                # someone was erased (or retired): a fresh recogniser, so no track it decided
                # or watches still names them (for up to an hour otherwise); tracks in flight
                # restart, as on a threshold change. Their pushed notifications close.
                self.recognizer = Recognizer(self._recognition)
                closing = [a for a, c in self._pushed_owner.items() if c in gone]
                for alert_id in closing:
                    del self._pushed_owner[alert_id]
                self.push.forget(closing)
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
        msg = m.decode(item.payload)
        if not isinstance(msg, m.FaceTrack | m.SealedFaceTrack):
            raise m.PayloadError("bad_schema", f"kind {msg.kind!r} not allowed on this topic")
        if msg.camera_id != self.topics.segment(item.topic, 1):
            raise m.PayloadError("topic_mismatch", "camera_id differs from the topic")
        if isinstance(msg, m.SealedFaceTrack):
            msg = self._open_sealed(msg)
        elif self.cfg.face_seal.required or self.camera_keys.keyed(msg.camera_id):
            # A camera with a key never sends plain tracks: one that does is not that camera
            # (or runs without its key file); either way its vectors are not taken.
            raise m.PayloadError("unsealed", f"{msg.camera_id} sent a plain face track")
        else:
            self.stats.received["face_track_plain"] += 1  # migration: a camera with no key yet
        if msg.model != self._recognition.model:
            # A vector of another model is not comparable with this gallery (a camera flashed
            # with another config, or mid-switch): refused, counted, never matched.
            raise m.PayloadError(
                "face_model_mismatch",
                f"{msg.camera_id} sends {msg.model} vectors; this hub matches "
                f"{self._recognition.model} (recognition.model in the store config)",
            )
        self.stats.received["face_track"] += 1
        self._handle_face(msg)

    def _open_sealed(self, sealed: m.SealedFaceTrack) -> m.FaceTrack:
        """The track inside, or ``PayloadError``: a time outside the window (``stale``,
        ``from_future``; the time is authenticated, so a replay cannot refresh it), a key that
        is unknown, another camera's, retired or revoked, or a seal that does not open."""
        now = time.time()
        bound = self.cfg.face_seal
        if sealed.sent_at < now - bound.max_age_s:
            raise m.PayloadError("stale", f"sealed {now - sealed.sent_at:.0f} s ago")
        if sealed.sent_at > now + bound.max_future_s:
            raise m.PayloadError("from_future", f"{sealed.sent_at - now:.0f} s ahead of the hub")
        key = self.camera_keys.lookup(sealed.camera_id, sealed.key_id)
        self.stats.received["sealed_face_track"] += 1
        return face_seal.open_sealed(sealed, key)

    def _on_floor(self, item: _Inbound) -> None:
        applied = self.floor.handle(item.topic, item.payload)  # PayloadError if bad
        self.stats.received["floor_positions"] += 1
        self.stats.duplicates += not applied

    def _on_chain_down(self, item: _Inbound) -> None:
        """Chain-wide customers from the central office (``hub.chain.customers``): it counts
        and logs its own rejections; each also counts as ``chain_downlink`` in the hub's status."""
        assert self.chain.customers is not None
        if self.chain.customers.apply(item.topic, item.payload, time.time()) == "rejected":
            self.stats.rejected["chain_downlink"] += 1

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
            self.outbox.flush(everything=True)
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
        if seen.already_seen(self.conn, msg.msg_id) or msg.msg_id in self.parked:
            self.stats.duplicates += 1
            return
        self._reload_gallery()  # one SELECT: an enrolment counts from its next message on
        now = time.time()
        still_here = self.recognizer.still_present(msg.track_id)
        outcome = self.recognizer.observe(msg, now)
        self._commit_face(
            _FaceWrite(
                msg.msg_id,
                now,
                remember=True,
                still_here=(still_here, msg.camera_id) if still_here and not outcome else None,
                decided=(_Decided.of(outcome),) if outcome is not None else (),
            )
        )

    def _sweep_tracks(self, now: float) -> None:
        outcomes = self.recognizer.sweep(now)
        if outcomes:
            decided = tuple(_Decided.of(o) for o in outcomes)
            self._commit_face(_FaceWrite(f"sweep:{uuid.uuid4().hex}", now, False, None, decided))

    def _commit_face(self, write: _FaceWrite) -> None:
        """Commit ``write``, or park it when the database stays locked past
        ``FACE_WRITE_WAIT_S``: the message is acknowledged either way, and a parked write is
        on disk first (``hub.bus.parked``). While writes are parked a new one goes behind
        them, never ahead: a visit's "seen again" must not precede its match."""
        if not self.parked:
            try:
                with db.busy_wait(self.conn, FACE_WRITE_WAIT_S):
                    self._write_face(write)
                return
            except sqlite3.OperationalError as exc:
                if not db.is_locked(exc):
                    raise
                log.warning(
                    "database locked for over %.0f s: face write %s parked in %s, replayed "
                    "once the lock is free (%s)", FACE_WRITE_WAIT_S, write.id,
                    self.parked.path, exc,
                )  # fmt: skip
                self._replay_at = time.monotonic() + REPLAY_FIRST_S
                self._replay_every = REPLAY_FIRST_S
        self.parked.park(write.to_json())
        self.guard.count("face_parked")

    def _write_face(self, write: _FaceWrite, *, replay: bool = False) -> bool:
        """The face transaction; False if its id was committed already (a replay after a crash
        between the commit and the parked file's removal)."""
        with db.write(self.conn):
            if write.remember and not seen.remember(self.conn, write.id, write.at):
                return False
            self._apply_face(write, replay=replay)
        return True

    def _apply_face(self, write: _FaceWrite, *, replay: bool) -> None:
        for decided in write.decided:
            if replay and decided.customer_id and not self._still_enrolled(decided.customer_id):
                continue  # erased while the write was parked: no visit, no alert for them
            self._apply_outcome(decided, write.at)
        if write.still_here is not None:
            customer, camera = write.still_here
            if replay and not self._still_enrolled(customer):
                return
            alerts.seen_again(self.conn, customer, camera, write.at,
                              cooldown_s=self.cfg.visits.cooldown_s)  # fmt: skip

    def _still_enrolled(self, customer_id: str) -> bool:
        return profiles.customer_name(self.conn, customer_id) is not None

    def _replay_parked(self) -> None:
        """Commit every parked write, in order, in one transaction (the lock permitting: a short
        wait, then the next attempt after a doubling pause), then drop the file."""
        pending = [_FaceWrite.from_json(e) for e in self.parked.pending()]
        try:
            with db.busy_wait(self.conn, REPLAY_WAIT_S), db.write(self.conn):
                for write in pending:
                    if not seen.remember(self.conn, write.id, write.at):
                        continue  # committed before a crash: no second effect
                    self._replay_one(write)
        except sqlite3.OperationalError as exc:
            if not db.is_locked(exc):
                raise
            self._replay_at = time.monotonic() + self._replay_every
            self._replay_every = min(self._replay_every * 2, REPLAY_MAX_S)
            return
        self.parked.clear()
        self._replay_every = REPLAY_FIRST_S
        log.info("replayed %d parked face write(s): the database is free again", len(pending))

    def _replay_one(self, write: _FaceWrite) -> None:
        """One parked write inside the replay's transaction, under a savepoint: one that fails
        for another reason than the lock (a bug, a constraint) is logged and counted
        (``parked_unreplayable``) rather than holding every later write in the file for ever."""
        self.conn.execute("SAVEPOINT parked_write")
        try:
            self._apply_face(write, replay=True)
        except sqlite3.OperationalError as exc:
            if db.is_locked(exc):
                raise
            self._unreplayable(write)
        except Exception:
            self._unreplayable(write)
        self.conn.execute("RELEASE parked_write")

    def _unreplayable(self, write: _FaceWrite) -> None:
        self.conn.execute("ROLLBACK TO parked_write")
        self.guard.count("parked_unreplayable")  # counted, not a failing step: no back-off
        log.exception("parked face write %s could not be replayed: %s", write.id, write.to_json())

    def _apply_outcome(self, outcome: _Decided, now: float) -> None:
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
            online=online,
            gallery_size=customers,
            rejected=dict(self.stats.rejected),
            errors=self.guard.snapshot(),
        )
        self.client.publish(self.topics.hub_status, status.to_bytes(), qos=1, retain=True)
