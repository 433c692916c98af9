"""The ``push_subscriptions`` table: one row per phone that allowed notifications.

A phone's browser subscribes with its push service (FCM, Mozilla, Apple) and hands the hub
the endpoint URL and its keys (RFC 8291); the hub encrypts every payload to those keys, so the
push service carries only ciphertext. A 404 or 410 from the push service means the
subscription is gone (app uninstalled, permission withdrawn): the row is deleted.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.store import db

# Push services the hub may POST to: the endpoint comes from a phone, and a hub that POSTs to
# any URL a logged-in phone names would be a request forwarder into the store network.
KNOWN_PUSH_HOSTS = (
    "fcm.googleapis.com",  # Chrome / Android
    "updates.push.services.mozilla.com",  # Firefox
    "web.push.apple.com",  # Safari / iOS (installed web app only)
    ".notify.windows.com",  # Edge on Windows
)


class BadSubscription(ValueError):
    """An endpoint the hub will not send to, or keys of the wrong shape."""


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    staff_id: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, object]:
        """As pywebpush and the browser's ``PushSubscription.toJSON()`` spell it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def allowed(endpoint: str, hosts: tuple[str, ...] = KNOWN_PUSH_HOSTS) -> bool:
    """HTTPS to a known push service (a leading dot: any subdomain); ``hosts`` may add more
    (a test's local endpoint, a store's own push relay), which may then be plain HTTP."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    for allowed_host in hosts:
        if host == allowed_host or (allowed_host.startswith(".") and host.endswith(allowed_host)):
            return parts.scheme == "https" or allowed_host not in KNOWN_PUSH_HOSTS
    return False


def subscribe(
    conn: sqlite3.Connection,
    staff_id: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    now: float,
    hosts: tuple[str, ...] = KNOWN_PUSH_HOSTS,
) -> None:
    """Store (or move to this staff member) a phone's subscription."""
    if len(endpoint) > 1024 or not allowed(endpoint, hosts):
        raise BadSubscription("not a known push service endpoint")
    if not (20 <= len(p256dh) <= 128 and 8 <= len(auth) <= 64):
        raise BadSubscription("push keys of the wrong size")
    with db.write(conn):
        conn.execute(
            "INSERT INTO push_subscriptions(endpoint, staff_id, p256dh, auth, created_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT(endpoint) DO UPDATE SET staff_id=excluded.staff_id, "
            "p256dh=excluded.p256dh, auth=excluded.auth, failures=0",
            (endpoint, staff_id, p256dh, auth, now),
        )


def unsubscribe(conn: sqlite3.Connection, endpoint: str, staff_id: str | None = None) -> bool:
    """Delete a subscription (the phone's own unsubscribe, or the push service's 404/410)."""
    with db.write(conn):
        if staff_id is None:
            cur = conn.execute("DELETE FROM push_subscriptions WHERE endpoint=?", (endpoint,))
        else:
            cur = conn.execute(
                "DELETE FROM push_subscriptions WHERE endpoint=? AND staff_id=?",
                (endpoint, staff_id),
            )
        return cur.rowcount > 0


def forget_staff(conn: sqlite3.Connection, staff_id: str) -> int:
    """A disabled account's phones get nothing more: inside the caller's transaction."""
    return conn.execute("DELETE FROM push_subscriptions WHERE staff_id=?", (staff_id,)).rowcount


def active(conn: sqlite3.Connection) -> list[Subscription]:
    rows = conn.execute(
        "SELECT endpoint, staff_id, p256dh, auth FROM push_subscriptions ORDER BY endpoint"
    ).fetchall()
    return [Subscription(*tuple(r)) for r in rows]


def sent(conn: sqlite3.Connection, endpoint: str, now: float, ok: bool) -> None:
    with db.write(conn):
        if ok:
            conn.execute(
                "UPDATE push_subscriptions SET last_sent_at=?, failures=0 WHERE endpoint=?",
                (now, endpoint),
            )
        else:
            conn.execute(
                "UPDATE push_subscriptions SET failures=failures+1 WHERE endpoint=?", (endpoint,)
            )
