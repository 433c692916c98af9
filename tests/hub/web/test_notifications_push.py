"""Web Push from the hub to a LOCAL push service that decrypts what it receives.

The hub may not reach the internet in tests, so a small HTTP server on loopback plays the
push service (RFC 8030): it checks the VAPID ``Authorization`` (RFC 8292) against the key in
it, decrypts the ``aes128gcm`` body (RFC 8291) with the phone's private key and auth secret
(``http_ece``, as a browser would) and records the payload; one endpoint answers 410 Gone, as
a push service does for a withdrawn subscription. The hub runs for real on Mosquitto and
gets the alert from a door camera's face track.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from py_vapid import Vapid02

from hub.alerts import claims as alerts
from hub.push import subscriptions
from hub.service import HubService
from hub.store import db
from storesense import messages as m
from storesense.config import ConfigError, StoreConfig, parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from tests.hub.conftest import unit
from tests.hub.web.conftest import (
    _clear_retained,
    camera_sends,
    face_track,
    login,
    mosquitto_up,
    open_client,
)
from tests.waiting import wait_for


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Phone:
    """The browser's half of a subscription: a P-256 key pair and a 16-byte auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = _b64(raw)


class PushService:
    """A local push service: ``/ok/<phone>`` decrypts and records, ``/gone/<phone>`` is 410."""

    def __init__(self) -> None:
        self.phones: dict[str, Phone] = {}
        self.received: list[dict] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                kind, name = self.path.strip("/").split("/")
                if kind == "gone":
                    self.send_response(410)
                    self.end_headers()
                    return
                phone = service.phones[name]
                assert Vapid02.verify(self.headers["Authorization"])  # signed by the key in it
                text = http_ece.decrypt(
                    body, private_key=phone.key, auth_secret=phone.auth, version="aes128gcm"
                )
                with service.lock:
                    service.received.append(
                        {
                            "phone": name,
                            "payload": json.loads(text),
                            "body_bytes": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def phone(self, name: str) -> Phone:
        self.phones[name] = Phone()
        return self.phones[name]

    def payloads(self, name: str) -> list[dict]:
        with self.lock:
            return [r["payload"] for r in self.received if r["phone"] == name]


CONTACT = "mailto:manager@shop.example"


@pytest.fixture
def cfg(cfg: StoreConfig) -> StoreConfig:
    """The web tests' store with Web Push on: its VAPID contact configured."""
    app = cfg.app.model_copy(update={"push_contact": CONTACT})
    return cfg.model_copy(update={"app": app})


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.server.shutdown()


@pytest.fixture
def hub(cfg: StoreConfig, home: Path) -> Iterator[HubService]:
    """The real hub, allowed to send to the local push service (and nowhere else new)."""
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    service = HubService(
        cfg, home, client_id=f"hub-{cfg.store_id}",
        push_hosts=(*subscriptions.KNOWN_PUSH_HOSTS, "127.0.0.1"),
    ).start()  # fmt: skip
    try:
        yield service
    finally:
        service.stop()
        _clear_retained(cfg, home)


def test_alert_pushed_encrypted_closed_on_claim_and_gone_subscription_deleted(
    cfg: StoreConfig, home: Path, hub: HubService, push_service: PushService
) -> None:
    conn = db.connect(hub_db_path(home))
    alice = push_service.phone("alice")
    now = time.time()
    subscriptions.subscribe(conn, "alice", f"{push_service.url}/ok/alice", alice.p256dh,
                            _b64(alice.auth), now, hosts=("127.0.0.1",))  # fmt: skip
    gone = push_service.phone("bob")
    subscriptions.subscribe(conn, "bob", f"{push_service.url}/gone/bob", gone.p256dh,
                            _b64(gone.auth), now, hosts=("127.0.0.1",))  # fmt: skip

    t0 = time.monotonic()
    camera_sends(cfg, face_track(unit(1)))
    assert wait_for(lambda: push_service.payloads("alice"), timeout_s=10)
    arrived_s = time.monotonic() - t0
    (first,) = push_service.payloads("alice")
    alert_id = first["alert_id"]
    assert first == {
        "type": "alert",
        "alert_id": alert_id,
        "title": "Ada Lovelace",
        "body": "Ada has just walked in · New customer · at door-1",
    }  # the notification's text and nothing else: no purchases, no card, no customer id
    (sent,) = [r for r in push_service.received if r["phone"] == "alice"]
    assert b"Ada" not in sent["body_bytes"]  # the push service sees ciphertext only
    h = sent["headers"]
    assert h["content-encoding"] == "aes128gcm"
    assert h["topic"] == alert_id and h["urgency"] == "high"
    assert 0 < int(h["ttl"]) <= 60  # the alert's remaining life (alert_ttl_s 60)
    # signed with the store's own contact (app.push_contact), not one the program made up
    jwt = h["authorization"].split("t=", 1)[1].split(",", 1)[0]
    claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    assert claims["sub"] == CONTACT and claims["aud"] == push_service.url
    # the push service's 410 deleted bob's subscription; alice's stays
    assert wait_for(lambda: [s.staff_id for s in subscriptions.active(conn)] == ["alice"])
    assert hub.push.dropped == 1

    # A colleague claims: every subscribed phone is told to close that notification.
    req = m.ClaimRequest(alert_id=alert_id, staff_id="carol")
    assert alerts.handle_claim(conn, Topics(cfg.store_id), req, time.time()).outcome == "won"
    assert wait_for(lambda: len(push_service.payloads("alice")) == 2, timeout_s=5)
    assert push_service.payloads("alice")[1] == {"type": "close", "alert_id": alert_id}
    conn.close()
    print(f"face track -> push decrypted at the local push service: {arrived_s * 1000:.0f} ms")


def test_phone_subscribes_through_the_web_app_only_to_known_push_services(
    cfg: StoreConfig, home: Path, hub: HubService, push_service: PushService
) -> None:
    from hub.web.app import create_app

    app = create_app(cfg)
    phone = push_service.phone("alice")
    with TestClient(app, base_url="http://testserver") as client:
        assert wait_for(lambda: app.state.gateway.connected)
        csrf = login(client, "alice")
        key = client.get("/api/push/key").json()["key"]
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point, as browsers want
        sub = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc123",
               "keys": {"p256dh": phone.p256dh, "auth": _b64(phone.auth)}}  # fmt: skip
        hdr = {"X-CSRF-Token": csrf}
        assert client.post("/api/push/subscribe", json=sub, headers=hdr).status_code == 204
        assert client.post("/api/push/subscribe", json=sub).status_code == 403  # no CSRF
        # an endpoint that is no push service: the hub would be a request forwarder
        for url in (
            "http://fcm.googleapis.com/x",
            "https://10.0.0.5/admin",
            "https://evil.example/",
        ):
            bad = {**sub, "endpoint": url}
            assert client.post("/api/push/subscribe", json=bad, headers=hdr).status_code == 422
        conn = db.connect(hub_db_path(home))
        assert [(s.staff_id, s.endpoint) for s in subscriptions.active(conn)] == [
            ("alice", sub["endpoint"])
        ]
        assert client.post("/api/push/unsubscribe", json=sub, headers=hdr).status_code == 204
        assert subscriptions.active(conn) == []
        conn.close()


def test_web_push_needs_the_stores_contact(home: Path) -> None:
    """Without app.push_contact Web Push is off (the phones' pages still get every alert);
    asked for explicitly without one, the config says what to set."""
    base = "store_id: s1\nmqtt: {port: 1883}\n"
    with pytest.raises(ConfigError, match=r"app\.push_contact is not set"):
        parse_config(base + "app: {web_push: true}\n")
    with pytest.raises(ConfigError, match="push_contact"):
        parse_config(base + "app: {push_contact: 'hub@shop.example'}\n")  # no mailto:
    assert parse_config(base + f"app: {{push_contact: '{CONTACT}'}}\n").app.web_push_on
    assert not parse_config(base).app.web_push_on


def test_without_a_contact_the_hub_offers_no_push(home: Path) -> None:
    from hub.web.app import create_app

    cfg = parse_config(f"store_id: np{os.getpid()}x{int(time.time())}\nmqtt: {{port: 1883}}\n")
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start()
    try:
        assert hub.push._thread is None  # no sender thread at all
        app = create_app(cfg)
        with open_client(app) as client:
            assert wait_for(lambda: app.state.gateway.connected)
            login(client, "alice")
            res = client.get("/api/push/key")
            assert res.status_code == 404 and "Web Push is off" in res.json()["detail"]
    finally:
        hub.stop()
        _clear_retained(cfg, home)


def _subscribe(conn: object, push_service: PushService, name: str) -> None:
    phone = push_service.phone(name)
    subscriptions.subscribe(conn, name, f"{push_service.url}/ok/{name}", phone.p256dh,  # type: ignore[arg-type]
                            _b64(phone.auth), time.time(), hosts=("127.0.0.1",))  # fmt: skip


def test_an_erasure_closes_the_notifications_that_show_the_customers_name(
    cfg: StoreConfig, home: Path, hub: HubService, push_service: PushService
) -> None:
    """Her alert was pushed (a notification showing her name); the erasure deletes the alert,
    so no state change would ever close it: the hub sends every phone a "close"."""
    from hub.privacy.erasure import erase_customer

    conn = db.connect(hub_db_path(home))
    _subscribe(conn, push_service, "alice")
    camera_sends(cfg, face_track(unit(1)))
    assert wait_for(lambda: push_service.payloads("alice"), timeout_s=10)
    (shown,) = push_service.payloads("alice")
    assert shown["type"] == "alert" and shown["title"] == "Ada Lovelace"
    erase_customer(conn, "c1", actor="dpo", reason="asked at the till")  # as the CLI does
    assert wait_for(lambda: len(push_service.payloads("alice")) == 2, timeout_s=15)
    assert push_service.payloads("alice")[1] == {"type": "close", "alert_id": shown["alert_id"]}
    (closed,) = [r for r in push_service.received if r["payload"]["type"] == "close"]
    assert closed["headers"]["topic"] == shown["alert_id"]  # replaces an undelivered one
    conn.close()


def test_a_push_queued_before_the_erasure_goes_out_as_a_close_never_with_the_name(
    home: Path, push_service: PushService
) -> None:
    from hub.push.sender import PushSender, load_or_create_vapid

    conn = db.connect(hub_db_path(home))
    _subscribe(conn, push_service, "alice")
    conn.close()
    sender = PushSender(hub_db_path(home), load_or_create_vapid(home), subject=CONTACT,
                        hosts=("127.0.0.1",))  # fmt: skip
    now = time.time()
    alert = m.Alert(alert_id="a1", seq=1, state="open", customer_id="c1",
                    customer_name="Ada Lovelace", greeting="Ada has just walked in",
                    camera_id="door-1", arrived_at=now, expires_at=now + 60)  # fmt: skip
    sender.offer([alert])  # queued, not sent yet: the thread starts after the erasure
    sender.forget(["a1"])
    sender.start()
    try:
        assert wait_for(lambda: len(push_service.payloads("alice")) == 2, timeout_s=15)
    finally:
        sender.stop()
    assert push_service.payloads("alice") == [{"type": "close", "alert_id": "a1"}] * 2
