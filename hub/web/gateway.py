"""The phone gateway: an MQTT client (account ``phone-gateway``) bridged to phone WebSockets.

MQTT → phones: the retained ``alerts/+`` topics give the whole current state of every alert
on (re)connect and each change after; the gateway keeps the highest ``seq`` per alert (an older
state arriving late is ignored, exactly as ``storesense_tools.sim_phone`` does) and pushes each
change, serialised once, to every connected phone's bounded queue.

Phones → MQTT: a button press becomes a ``claim_request`` on ``claims/<staff_id>``; the
gateway waits for the hub's ``claim_result`` (matched by request id) and hands it back to
the HTTP request. The claim arbitration itself stays in the hub (``hub.alerts.claims``).

Threads: paho callbacks run on paho's network thread and only decode, then hand the message
to the asyncio loop with ``call_soon_threadsafe``; all state lives on the loop's thread, so no
lock guards it and a phone's snapshot and its subsequent updates can never interleave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from storesense import messages as m
from storesense.config import MqttConfig
from storesense.mqtt_client import make_client
from storesense.topics import Topics

log = logging.getLogger(__name__)

PHONE_QUEUE = 256  # a phone this far behind is dropped; it resyncs by seq when it reconnects


class GatewayUnavailable(RuntimeError):
    """The broker (or the hub behind it) cannot take a request now."""


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
    stale: int = 0  # alert states older than one already known (dropped by the seq rule)
    slow_phones_dropped: int = 0


class Gateway:
    """MQTT ⇄ WebSocket bridge; ``start``/``stop`` from the web app's lifespan."""

    def __init__(
        self,
        topics: Topics,
        mqtt_cfg: MqttConfig,
        *,
        names: Callable[[], dict[str, str]] = dict,
        client_id: str | None = None,
        answer_timeout_s: float = 5.0,
    ) -> None:
        self.topics = topics
        self.mqtt_cfg = mqtt_cfg
        self.names = names
        self.answer_timeout_s = answer_timeout_s
        self.stats = GatewayStats()
        self.alerts: dict[str, m.Alert] = {}
        self.hub_online: bool | None = None
        self.links: set[PhoneLink] = set()
        self._names: dict[str, str] = {}
        self._pending: dict[str, asyncio.Future[m.ClaimResult]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # A unique id per process: two gateways (a restart racing its predecessor, or tests)
        # must not kick each other off the broker.
        cid = client_id or f"phone-gateway-{uuid.uuid4().hex[:8]}"
        self.client = make_client(cid, mqtt_cfg, persistent=False)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background: the app serves (and says 'hub offline') meanwhile."""
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.mqtt_cfg.host, self.mqtt_cfg.port, self.mqtt_cfg.keepalive_s)
        self.client.loop_start()

    async def stop(self) -> None:
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
        return self.client.is_connected()

    # -- paho thread: decode and hand over ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("phone gateway refused by the broker: %s", reason_code)
            return
        t = self.topics
        client.subscribe([(t.all_alerts, 1), (t.hub_status, 1), (t.claim_result("+"), 1)])
        log.info("phone gateway connected to MQTT under %s", self.topics.base)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        section = self.topics.segment(msg.topic, 0)
        payload = bytes(msg.payload)
        if section == "alerts" and not payload:
            # the hub cleared a long-closed alert's retained message
            # (hub.alerts.claims.housekeeping)
            alert_id = self.topics.segment(msg.topic, 1) or ""
            loop.call_soon_threadsafe(self._forget, alert_id)
            return
        expected = {"alerts": m.Alert, "staff": m.ClaimResult, "hub": m.HubStatus}.get(
            section or ""
        )
        try:
            decoded = m.decode(payload, expected)
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
        elif isinstance(decoded, m.ClaimResult):
            loop.call_soon_threadsafe(self._apply_result, decoded)
        elif isinstance(decoded, m.HubStatus):
            loop.call_soon_threadsafe(setattr, self, "hub_online", decoded.online)

    # -- loop thread: state and fan-out ------------------------------------------------------
    def _name(self, staff_id: str | None) -> str | None:
        if staff_id is None:
            return None
        if staff_id not in self._names:
            self._names = self.names()  # a new colleague: one SELECT, then cached
        return self._names.get(staff_id, staff_id)

    def alert_view(self, alert: m.Alert) -> dict[str, Any]:
        """What a phone gets: the alert as on MQTT plus the display names of the staff."""
        data = alert.model_dump(mode="json")
        data["claimed_by_name"] = self._name(alert.claimed_by)
        data["closed_by_name"] = self._name(alert.closed_by)
        return data

    def _apply_alert(self, alert: m.Alert) -> None:
        known = self.alerts.get(alert.alert_id)
        if known is not None and known.seq >= alert.seq:
            self.stats.stale += 1
            return
        self.alerts[alert.alert_id] = alert
        self._broadcast(json.dumps({"type": "alert", "alert": self.alert_view(alert)}))

    def _forget(self, alert_id: str) -> None:
        if self.alerts.pop(alert_id, None) is not None:
            self._broadcast(json.dumps({"type": "gone", "alert_id": alert_id}))

    def _apply_result(self, result: m.ClaimResult) -> None:
        fut = self._pending.get(result.request_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

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
        states = sorted((a for a in self.alerts.values() if a.seq > since_seq), key=lambda a: a.seq)
        open_ids = [a.alert_id for a in self.alerts.values() if _is_open(a, now)]
        return {
            "type": "snapshot",
            "seq": max((a.seq for a in self.alerts.values()), default=0),
            "alerts": [self.alert_view(a) for a in states],
            "open_ids": open_ids,
            "hub_online": self.hub_online,
            "gateway_online": self.connected,
            "server_time": now,
        }

    async def request(self, staff_id: str, alert_id: str, action: m.ClaimAction) -> m.ClaimResult:
        """Publish a claim/done/reject for ``staff_id`` and wait for the hub's answer."""
        if not self.connected:
            raise GatewayUnavailable("the store's message broker is not reachable")
        req = m.ClaimRequest(alert_id=alert_id, staff_id=staff_id, action=action)
        fut: asyncio.Future[m.ClaimResult] = asyncio.get_running_loop().create_future()
        self._pending[req.msg_id] = fut
        try:
            self.client.publish(self.topics.claims(staff_id), req.to_bytes(), qos=1)
            return await asyncio.wait_for(fut, self.answer_timeout_s)
        except TimeoutError:
            raise GatewayUnavailable(
                f"the hub did not answer within {self.answer_timeout_s:g} s"
            ) from None
        finally:
            self._pending.pop(req.msg_id, None)


def _is_open(alert: m.Alert, now: float) -> bool:
    return alert.state == "open" and alert.expires_at > now
