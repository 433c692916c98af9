"""Send alert changes to the phones' push services: VAPID-signed, RFC 8291-encrypted.

The hub's worker hands every alert state change (``offer``) to this sender's own thread, so a
slow or unreachable push service never delays face matching or a claim. Per change, every
subscribed phone gets one message: a new or re-opened alert (title = the customer's display
name; body = greeting, tier, entrance; no purchase data), or "close" for an alert that was
taken, ended or expired, which the service worker (``hub/web/static/sw.js``) turns into
closing that alert's notification. The ``Topic`` header (RFC 8030 §5.4) is the alert id, so a
"close" replaces an "alert" the push service has not delivered yet, and ``TTL`` is the time
the alert has left: a phone that comes back an hour later is not told of a customer long gone.

Only endpoints of known push services are used (``subscriptions.allowed``); a 404 or 410
answer deletes the subscription. The store needs internet for any of this: an offline store
reaches only phones whose page is open (the WebSocket), see docs/phone-app.md.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02, b64urlencode
from pywebpush import WebPushException, webpush

from hub.push import subscriptions
from hub.store import db
from storesense.loop_guard import LoopGuard
from storesense.messages import Alert

log = logging.getLogger(__name__)


def vapid_key_path(home: Path) -> Path:
    return home / "secrets" / "vapid_private.pem"


def load_or_create_vapid(home: Path) -> Vapid02:
    """The hub's VAPID key pair (one per store, made on first start, 0600 like the others)."""
    path = vapid_key_path(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Vapid02()
        key.generate_keys()
        pem = key.private_pem()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    return Vapid02.from_file(str(path))


def application_server_key(key: Vapid02) -> str:
    """The public key as the browser's ``pushManager.subscribe`` wants it (base64url, raw)."""
    raw = key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(b64urlencode(raw))


def payload_of(alert: Alert, entrance: str) -> dict[str, Any]:
    """What a phone's service worker gets: enough for the notification, nothing more."""
    if alert.state == "open":
        standing = "New customer" if alert.new_customer else alert.tier  # as app.js says
        body = " · ".join(x for x in (alert.greeting, standing, f"at {entrance}") if x)
        return {"type": "alert", "alert_id": alert.alert_id, "title": alert.customer_name,
                "body": body}  # fmt: skip
    return {"type": "close", "alert_id": alert.alert_id}


class PushSender:
    """One thread, one connection of its own; ``offer`` is safe from the hub's worker."""

    def __init__(
        self,
        db_path: Path,
        vapid: Vapid02,
        *,
        subject: str,
        entrance_name: Callable[[str], str] = str,
        hosts: tuple[str, ...] = subscriptions.KNOWN_PUSH_HOSTS,
        timeout_s: float = 5.0,
        enabled: bool = True,
        guard: LoopGuard | None = None,
    ) -> None:
        """``subject``: the VAPID contact (``app.push_contact``); ``enabled`` False (Web Push
        off in the store's config): no thread, and offered alerts are dropped silently. ``guard``:
        where a failed send is counted (the hub passes its own: ``HubStatus.errors``)."""
        if enabled and not subject.startswith(("mailto:", "https://")):
            raise ValueError("Web Push needs a mailto: or https:// contact (app.push_contact)")
        self.enabled = enabled
        self.db_path = db_path
        self.vapid = vapid
        self.subject = subject
        self.entrance_name = entrance_name
        self.hosts = hosts
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # subscriptions deleted on 404/410
        self.guard = guard or LoopGuard(log)
        # an Alert to push, or the id of an alert whose notification must close (erasure)
        self._queue: queue.Queue[Alert | str | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._forgotten: set[str] = set()  # alerts of erased customers: never push their name
        self._lock = threading.Lock()

    def start(self) -> PushSender:
        if not self.enabled:
            return self
        self._thread = threading.Thread(target=self._run, name="hub-push", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def offer(self, alerts: list[Alert]) -> None:
        if not self.enabled:
            return
        for alert in alerts:
            try:
                self._queue.put_nowait(alert)
            except queue.Full:  # push services unreachable for long: live pages still work
                log.warning("push queue full: alert %s not pushed", alert.alert_id)

    def forget(self, alert_ids: list[str]) -> None:
        """The customer of these alerts was erased: a push still queued for one goes out as
        "close" instead (its name never leaves the hub again), and every phone is told to
        close the notification it may show (the ``Topic`` header also replaces one the push
        service has not delivered yet)."""
        if not self.enabled or not alert_ids:
            return
        with self._lock:
            self._forgotten.update(alert_ids)
        for alert_id in alert_ids:
            try:
                self._queue.put_nowait(alert_id)
            except queue.Full:
                log.warning("push queue full: notification of erased alert %s not closed", alert_id)

    def _run(self) -> None:
        """Never ends on an error: a failed send (or a database that would not open) is
        logged and counted (``push_send``, ``push_db``) and the next alert is tried."""
        conn = None
        try:
            while (alert := self._queue.get()) is not None:
                if conn is None:
                    conn = self.guard.step("push_db", db.connect, self.db_path)
                if conn is not None:
                    self.guard.step("push_send", self._send, conn, alert)
        finally:
            if conn is not None:
                conn.close()

    def _send(self, conn: Any, alert: Alert | str) -> None:
        subs = [
            s for s in subscriptions.active(conn) if subscriptions.allowed(s.endpoint, self.hosts)
        ]
        if not subs:
            return
        if isinstance(alert, Alert):
            with self._lock:
                erased = alert.alert_id in self._forgotten
            if erased:
                alert = alert.alert_id  # queued before the erasure: a close, never the name
        if isinstance(alert, str):
            data, ttl, alert_id = json.dumps({"type": "close", "alert_id": alert}), 3600, alert
        else:
            data = json.dumps(payload_of(alert, self.entrance_name(alert.camera_id)))
            ttl = max(0, int(alert.expires_at - time.time())) if alert.state == "open" else 3600
            alert_id = alert.alert_id
        headers = {"Urgency": "high", "Topic": alert_id[:32]}
        for sub in subs:
            now = time.time()
            try:
                webpush(
                    sub.info(),
                    data,
                    vapid_private_key=self.vapid,
                    vapid_claims={"sub": self.subject},
                    ttl=ttl,
                    headers=dict(headers),
                    timeout=self.timeout_s,
                )
            except WebPushException as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status in (404, 410):  # the subscription expired or was withdrawn
                    subscriptions.unsubscribe(conn, sub.endpoint)
                    self.dropped += 1
                    log.info("push subscription of %s gone (%s): deleted", sub.staff_id, status)
                else:
                    subscriptions.sent(conn, sub.endpoint, now, ok=False)
                    self.failed += 1
                    log.warning("push to %s failed: %s", sub.staff_id, status or exc)
                continue
            except OSError as exc:  # connection refused, DNS, timeout (requests wraps these)
                subscriptions.sent(conn, sub.endpoint, now, ok=False)
                self.failed += 1
                log.warning("push to %s failed: %s", sub.staff_id, exc)
                continue
            subscriptions.sent(conn, sub.endpoint, now, ok=True)
            self.sent += 1
