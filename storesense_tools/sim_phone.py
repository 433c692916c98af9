"""A salesperson's phone as a plain MQTT client: used by the demo and the end-to-end tests.

It behaves as the phone app does: shows every open alert (retained per alert topic, so a phone
that connects late still sees it), hides an alert as soon as a higher ``seq`` says it is no
longer open (the seq rule of ``storesense.alert_state``, the same code the web gateway
uses), and optionally races to claim each open alert. A claim may carry a deadline, which the
hub enforces (refused, never applied, once past it).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from storesense import messages as m
from storesense.alert_state import supersedes
from storesense.config import MqttConfig
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode


@dataclass
class PhoneAlert:
    alert: m.Alert
    received_at: float
    closed_seen_at: float | None = None


@dataclass
class Phone:
    staff_id: str
    topics: Topics
    mqtt_cfg: MqttConfig
    auto_claim: bool = False
    claim_delay_s: tuple[float, float] = (0.0, 0.03)
    on_event: Callable[[str, str], None] | None = None
    alerts: dict[str, PhoneAlert] = field(default_factory=dict)
    results: list[m.ClaimResult] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()  # predicates passed to wait_for may read state
        self._changed = threading.Condition(self._lock)
        self._seen_ids: set[str] = set()
        self.client = make_client(f"phone-{self.staff_id}", self.mqtt_cfg, persistent=False)
        self.client.on_message = self._on_message

    def start(self) -> Phone:
        self.client.on_connect = self._on_connect
        connect(self.client, self.mqtt_cfg)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe(self.topics.all_alerts, qos=1)
        client.subscribe(self.topics.claim_result(self.staff_id), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            decoded = m.decode(bytes(msg.payload))
        except m.PayloadError:
            self.rejected += 1
            return
        now = time.time()
        with self._changed:
            if decoded.msg_id in self._seen_ids:
                return
            self._seen_ids.add(decoded.msg_id)
            claim: str | None = None  # the alert to claim, once the lock is released
            if isinstance(decoded, m.Alert):
                if self._apply_alert(decoded, now):
                    claim = decoded.alert_id
            elif isinstance(decoded, m.ClaimResult):
                self.results.append(decoded)
                self._emit("result", f"{decoded.outcome}: {decoded.message}")
            self._changed.notify_all()
        if claim is not None:
            delay = random.uniform(*self.claim_delay_s)
            threading.Timer(delay, self.claim, args=(claim,)).start()

    def _apply_alert(self, alert: m.Alert, now: float) -> bool:
        known = self.alerts.get(alert.alert_id)
        if not supersedes(alert, known.alert if known is not None else None):
            return False  # an older state arriving late never reopens an alert
        if known is None:
            self.alerts[alert.alert_id] = PhoneAlert(alert, now)
        else:
            known.alert = alert
        entry = self.alerts[alert.alert_id]
        if alert.state != "open" and entry.closed_seen_at is None:
            entry.closed_seen_at = now
            self._emit("closed", f"{alert.alert_id[:8]} {alert.state} by {alert.claimed_by}")
        if alert.state == "open" and known is None:
            self._emit("alert", f"{alert.greeting} ({alert.alert_id[:8]})")
            return self.auto_claim
        return False

    def _emit(self, kind: str, text: str) -> None:
        if self.on_event is not None:
            self.on_event(self.staff_id, f"{kind}: {text}")

    def claim(
        self, alert_id: str, action: m.ClaimAction = "claim", *, timeout_s: float | None = None
    ) -> m.ClaimRequest:
        """Publish a press; with ``timeout_s`` it carries a deadline the hub enforces."""
        deadline = None if timeout_s is None else time.time() + timeout_s
        req = m.ClaimRequest(
            alert_id=alert_id, staff_id=self.staff_id, action=action, deadline=deadline
        )
        self.client.publish(self.topics.claims(self.staff_id), req.to_bytes(), qos=1)
        return req

    def open_alerts(self) -> list[m.Alert]:
        with self._lock:
            return [a.alert for a in self.alerts.values() if a.alert.state == "open"]

    def wait_for(self, predicate: Callable[[Phone], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True
