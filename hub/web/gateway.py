"""The web process's one channel to the hub: an MQTT client bridged to phone WebSockets.

The web process is a stateless gateway: no database, no template key, no hub credentials. It
has exactly two things to do with MQTT (its own ``phone-gateway`` account):

- **Ask the hub** (``call``): every login, session check, button press, customer card, manager
  view, erasure, POS receipt and report file is a ``storesense.rpc.Request`` on this
  instance's request topic, answered by the hub (``hub.api``) on its reply topic. Each request
  carries an absolute deadline that the hub enforces (past it, refused and never applied);
  the gateway gives up only once ``deadline + REPLY_GRACE_S`` has passed, so "timed out" on a
  phone always means "not applied".
- **Relay alert states** to phones: the retained ``alerts/+`` topics (the projection of the hub
  database, which owns alert state) are kept in a ``storesense.alert_state.AlertBook`` (the
  seq rule, coded once) and each change is pushed, serialised once, to every connected
  phone's bounded queue. The gateway never decides an alert's state.
- **Relay the store's health** to phones: the hub's retained ``hub/status`` (its last will
  says ``online=false``) and ``hub/nodes`` (the cameras' health as the hub sees it) go to every
  phone as a ``status`` message, so a phone's banners say "hub unreachable" or "door camera
  down" from what the hub published, not from a guess.
- **Heartbeat with the hub** (``_heartbeat``): a ``ping`` request every ``HEARTBEAT_S``; no
  answer for ``HUB_SILENCE_S`` and the phones are told the hub is unreachable. The last will
  alone is not enough: a hub that is frozen (SIGSTOP, a wedged worker, a swapping machine)
  keeps its MQTT connection, or loses it only after 1.5 × its keepalive (45 s by default),
  and its worker, which answers every request and raises every alert, is what phones need.

Threads: paho callbacks run on paho's network thread and only decode, then hand the message
to the asyncio loop with ``call_soon_threadsafe``; all state lives on the loop's thread, so no
lock guards it and a phone's snapshot and its subsequent updates can never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from storesense import messages as m
from storesense import rpc
from storesense.alert_state import AlertBook
from storesense.config import MqttConfig
from storesense.loop_guard import LoopGuard, guard_mqtt_callbacks
from storesense.mqtt_client import make_client
from storesense.topics import Topics

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)
# topic section → the one message kind it may carry (others are refused)
_KIND_ON: dict[str, type[m.Alert] | type[m.HubStatus]] = {"alerts": m.Alert, "hub": m.HubStatus}

PHONE_QUEUE = 256  # a phone this far behind is dropped; it resyncs by seq when it reconnects
HEARTBEAT_S = 2.0  # the gateway asks the hub's worker this often ("ping")
# No answer for this long: "hub unreachable" on every phone. Well inside the phones' 10 s
# promise, and three missed pings: one slow answer (a busy worker) is not an outage.
HUB_SILENCE_S = 6.0


class GatewayUnavailable(RuntimeError):
    """The broker (or the hub behind it) did not take or answer a request: nothing changed."""


class HubRefused(Exception):
    """The hub answered with a refusal: an HTTP status and the detail for the phone."""

    def __init__(self, status: int, detail: str | dict[str, Any]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(eq=False)
class PhoneLink:
    """One open WebSocket: who it is and the queue of JSON texts waiting to be sent."""

    staff_id: str
    session_key: str
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=PHONE_QUEUE)
    )

    def close(self) -> None:
        """Ask the sender to stop; drops queued updates if the queue is full."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


@dataclass
class GatewayStats:
    received: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    slow_phones_dropped: int = 0
    timed_out: int = 0  # requests the hub did not answer by deadline + grace
    late_replies: int = 0  # replies to requests already given up (the hub refused them: 504)


class Gateway:
    """MQTT ⇄ WebSocket bridge and hub client; ``start``/``stop`` from the app's lifespan."""

    def __init__(
        self,
        topics: Topics,
        mqtt_cfg: MqttConfig,
        *,
        client_id: str | None = None,
        timeout_s: float = rpc.DEFAULT_TIMEOUT_S,
        entrances: dict[str, str] | None = None,
    ) -> None:
        """``entrances``: door camera id → display name (the store YAML's ``display_name``);
        cards and notifications show the name, and only these cameras raise "door camera
        down" (with none configured, every camera the hub reports counts)."""
        self.topics = topics
        self.mqtt_cfg = mqtt_cfg
        self.timeout_s = timeout_s
        self.stats = GatewayStats()
        # exceptions the heartbeat loop and paho's callbacks survived (/healthz "errors")
        self.guard = LoopGuard(log)
        self.hub_errors: dict[str, int] = {}  # the hub's own (its status), for /healthz
        self.book = AlertBook()
        self.hub_online: bool | None = None
        self.entrances = dict(entrances or {})
        self.nodes: dict[str, str] = {}  # camera id -> up/offline/down, as the hub published
        self.links: set[PhoneLink] = set()
        self.names: dict[str, str] = {}  # staff id -> display name, as the hub reported them
        self._pending: dict[str, asyncio.Future[rpc.Reply]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._names_task: asyncio.Future[None] | None = None
        # the heartbeat: None until the first answer or the first silence
        self.hub_answering: bool | None = None
        self._hub_heard = -float("inf")  # monotonic time of the hub's last answer to a ping
        self._heartbeat_task: asyncio.Task[None] | None = None
        # A unique id per process, so two gateways (a restart racing its predecessor, or tests)
        # never read each other's replies. With the generated broker config the broker uses the
        # account name as client id, so there two gateways of one store still displace each
        # other (docs/broker-security.md).
        self.web_id = client_id or f"web-{uuid.uuid4().hex[:12]}"
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self.client = make_client(self.web_id, mqtt_cfg, persistent=False)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        guard_mqtt_callbacks(self.client, self.guard, log)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background: the app serves (and says 'hub offline') meanwhile."""
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.mqtt_cfg.host, self.mqtt_cfg.port, self.mqtt_cfg.keepalive_s)
        self.client.loop_start()
        self._hub_heard = time.monotonic()  # the silence counts from the start
        self._heartbeat_task = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """Ping the hub every ``HEARTBEAT_S`` (each ping a task of its own, so one the hub
        never answers does not delay the next check) and tell the phones when the answers
        stop or come back."""
        pings: set[asyncio.Task[None]] = set()
        while True:
            try:
                if self.connected and len(pings) < 4:  # a silent hub: at most a few in flight
                    task = asyncio.create_task(self._ping())
                    pings.add(task)
                    task.add_done_callback(pings.discard)
                if time.monotonic() - self._hub_heard > HUB_SILENCE_S:
                    self._set_answering(False)  # only an answer says True (``_ping``)
            except Exception:  # logged and counted; the next round runs as usual
                self.guard.failed("heartbeat")
            await asyncio.sleep(HEARTBEAT_S)

    async def _ping(self) -> None:
        try:
            await self.call("ping", {}, timeout_s=HUB_SILENCE_S - rpc.REPLY_GRACE_S)
        except (GatewayUnavailable, HubRefused):
            return
        self._hub_heard = time.monotonic()
        self._set_answering(True)

    def _set_answering(self, answering: bool) -> None:
        if answering != self.hub_answering:
            if answering is False:
                log.warning("the hub has not answered for %.0f s", HUB_SILENCE_S)
            self.hub_answering = answering
            self._broadcast(json.dumps(self.status()))

    @property
    def hub_reachable(self) -> bool | None:
        """What phones are told: False when the hub said goodbye (its status, its last will)
        or stopped answering pings; None while neither is known yet."""
        if self.hub_online is False or self.hub_answering is False:
            return False
        return True if self.hub_answering else self.hub_online

    async def stop(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        for link in list(self.links):
            link.close()
        self.client.disconnect()
        self.client.loop_stop()

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn`` on the gateway's loop from any thread (its state lives there)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    @property
    def connected(self) -> bool:
        """Connected and subscribed: a request sent before SUBACK could lose its reply."""
        return self.client.is_connected() and self._subscribed.is_set()

    @property
    def alerts(self) -> dict[str, m.Alert]:
        return self.book.alerts

    # -- paho thread: decode and hand over ---------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("phone gateway refused by the broker: %s", reason_code)
            return
        t = self.topics
        _, self._sub_mid = client.subscribe(
            [
                (t.all_alerts, 1),
                (t.hub_status, 1),
                (t.node_health, 1),
                (t.rpc_reply(self.web_id), 1),
            ]
        )
        log.info("phone gateway connected to MQTT under %s as %s", t.base, self.web_id)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid == self._sub_mid:
            if any(rc.is_failure for rc in reason_codes):
                log.error("the broker refused the gateway's subscriptions (ACL?)")
            self._subscribed.set()
            self._status_soon()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        self._status_soon()  # the phones say "hub unreachable" rather than show stale cards

    def _status_soon(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between (shutdown)
                loop.call_soon_threadsafe(lambda: self._broadcast(json.dumps(self.status())))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        section = self.topics.segment(msg.topic, 0)
        payload = bytes(msg.payload)
        if section == "rpc":
            try:
                reply = rpc.decode_reply(payload)
            except m.PayloadError as exc:
                self.stats.rejected[exc.reason] += 1
                return
            self.stats.received["rpc_reply"] += 1
            loop.call_soon_threadsafe(self._apply_reply, reply)
            return
        if section == "alerts" and not payload:
            # the hub cleared a long-closed alert's retained message
            alert_id = self.topics.segment(msg.topic, 1) or ""
            loop.call_soon_threadsafe(self._forget, alert_id)
            return
        if msg.topic == self.topics.node_health:
            try:
                nodes = m.decode(payload, m.NodeHealth) if payload else m.NodeHealth(nodes={})
            except m.PayloadError as exc:
                self.stats.rejected[exc.reason] += 1
                return
            self.stats.received[nodes.kind] += 1
            loop.call_soon_threadsafe(
                self._node_health, {k: str(v) for k, v in nodes.nodes.items()}
            )
            return
        expected = _KIND_ON.get(section or "")
        try:
            decoded = m.decode(payload) if expected is None else m.decode(payload, expected)
        except m.PayloadError as exc:
            self.stats.rejected[exc.reason] += 1
            log.warning("phone gateway rejected a message on %s: %s", msg.topic, exc)
            return
        self.stats.received[decoded.kind] += 1
        if isinstance(decoded, m.Alert):
            if decoded.alert_id != self.topics.segment(msg.topic, 1):
                self.stats.rejected["topic_mismatch"] += 1
                return
            loop.call_soon_threadsafe(self._apply_alert, decoded)
        elif isinstance(decoded, m.HubStatus):
            self.hub_errors = dict(decoded.errors)
            loop.call_soon_threadsafe(self._hub_status, decoded.online)

    # -- loop thread: state and fan-out ------------------------------------------------------
    def _hub_status(self, online: bool) -> None:
        came_back = online and not self.hub_online
        changed = online != self.hub_online
        self.hub_online = online
        if came_back:  # colleagues' names for "taken by …" (sessions add their own later)
            self._names_task = asyncio.ensure_future(self._refresh_names())
        if changed:
            self._broadcast(json.dumps(self.status()))

    def _node_health(self, nodes: dict[str, str]) -> None:
        if nodes != self.nodes:
            self.nodes = nodes
            self._broadcast(json.dumps(self.status()))

    def doors_down(self) -> list[str]:
        """Display names of the door cameras the hub reports not up (sorted, for a banner)."""
        doors = self.entrances or dict.fromkeys(self.nodes)
        return sorted(self.entrance_name(cam) for cam in doors if self.nodes.get(cam, "up") != "up")

    def status(self) -> dict[str, Any]:
        """The store's health as a phone shows it: the hub's liveness, doors that are down."""
        return {
            "type": "status",
            "hub_online": self.hub_reachable,
            "gateway_online": self.connected,
            "doors_down": self.doors_down(),
        }

    def entrance_name(self, camera_id: str) -> str:
        return self.entrances.get(camera_id) or camera_id

    async def _refresh_names(self) -> None:
        try:
            self.names.update(await self.call("staff_names", {}))
        except (GatewayUnavailable, HubRefused):
            log.info("no staff names from the hub yet; showing ids")

    def learn_name(self, staff_id: str, name: str) -> None:
        self.names[staff_id] = name

    def _name(self, staff_id: str | None) -> str | None:
        return None if staff_id is None else self.names.get(staff_id, staff_id)

    def alert_view(self, alert: m.Alert) -> dict[str, Any]:
        """What a phone gets: the alert as on MQTT plus the display names of the staff."""
        data = alert.model_dump(mode="json")
        data["claimed_by_name"] = self._name(alert.claimed_by)
        data["closed_by_name"] = self._name(alert.closed_by)
        data["entrance_name"] = self.entrance_name(alert.camera_id)
        return data

    def _apply_alert(self, alert: m.Alert) -> None:
        if self.book.apply(alert):
            self._broadcast(json.dumps({"type": "alert", "alert": self.alert_view(alert)}))

    def _forget(self, alert_id: str) -> None:
        if self.book.forget(alert_id):
            self._broadcast(json.dumps({"type": "gone", "alert_id": alert_id}))

    def _apply_reply(self, reply: rpc.Reply) -> None:
        fut = self._pending.get(reply.request_id)
        if fut is None or fut.done():
            self.stats.late_replies += 1
            return
        fut.set_result(reply)

    def _broadcast(self, text: str) -> None:
        for link in list(self.links):
            try:
                link.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.stats.slow_phones_dropped += 1
                self.unregister(link)
                link.close()

    # -- phones ------------------------------------------------------------------------------
    def register(self, staff_id: str, session_key: str) -> PhoneLink:
        link = PhoneLink(staff_id, session_key)
        self.links.add(link)
        return link

    def unregister(self, link: PhoneLink) -> None:
        self.links.discard(link)

    def drop_session(self, session_key: str) -> None:
        """Logout: close that session's sockets now rather than at their next message."""
        for link in [lk for lk in self.links if lk.session_key == session_key]:
            self.unregister(link)
            link.close()

    def snapshot(self, since_seq: int, now: float | None = None) -> dict[str, Any]:
        """Resync by sequence number: every alert state newer than ``since_seq``, plus the ids
        open right now. A phone applies the states by the seq rule and closes every alert it
        shows that is not in ``open_ids`` — so it never shows a claimed or expired alert as
        open, even one whose retained message has since been cleared.

        An alert past ``expires_at`` is not listed as open even if the hub has not swept it
        yet (the hub refuses claims on it anyway)."""
        now = time.time() if now is None else now
        return {
            "type": "snapshot",
            "seq": self.book.max_seq,
            "alerts": [self.alert_view(a) for a in self.book.newer_than(since_seq)],
            "open_ids": self.book.open_ids(now),
            "hub_online": self.hub_reachable,
            "gateway_online": self.connected,
            "doors_down": self.doors_down(),
            "server_time": now,
        }

    # -- the hub -----------------------------------------------------------------------------
    async def call(self, op: rpc.Op, args: dict[str, Any], timeout_s: float | None = None) -> Any:
        """Ask the hub; the result, or ``HubRefused`` (its answer) / ``GatewayUnavailable``.

        ``GatewayUnavailable`` is raised only when the request can no longer take effect:
        never published, or its deadline (which the hub enforces) plus the grace is over.
        """
        if not self.connected:
            raise GatewayUnavailable("the store's message broker is not reachable")
        req = rpc.new_request(op, args, self.timeout_s if timeout_s is None else timeout_s)
        fut: asyncio.Future[rpc.Reply] = asyncio.get_running_loop().create_future()
        self._pending[req.request_id] = fut
        try:
            self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)
            wait_s = req.deadline + rpc.REPLY_GRACE_S - time.time()
            reply = await asyncio.wait_for(fut, max(wait_s, 0.0))
        except TimeoutError:
            self.stats.timed_out += 1
            raise GatewayUnavailable(
                "the hub did not answer in time, so nothing was changed"
            ) from None
        finally:
            self._pending.pop(req.request_id, None)
        if reply.status == 504:  # the hub took it off its queue after the deadline
            raise GatewayUnavailable("the hub was too slow, so nothing was changed")
        if not reply.ok:
            raise HubRefused(reply.status, reply.detail or "refused by the hub")
        return reply.result
