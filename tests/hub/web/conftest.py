"""Fixtures for the web app: a store config, a hub home with staff accounts, the live stack.

The web app is a stateless gateway that asks the hub for everything over MQTT, so every test
of it runs a real ``HubService`` on the real Mosquitto (a unique store id per test) next to
it. The web app itself gets no home at all: the hub's folder is the hub's.
"""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.alerts import claims as alerts
from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.service import HubService
from hub.staff.accounts import add_staff
from hub.store import db
from hub.web.app import create_app
from hub.web.server import ServerThread
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.face_models import DEFAULT_MODEL
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit
from tests.waiting import wait_for

PASSWORD = "correct horse battery"
STAFF = {"alice": "Alice Adams", "bob": "Bob Brown", "carol": "Carol Chen"}
MANAGER = ("maria", "Maria Manager")
# Browser screenshots for people to look at after a run (gitignored; CI keeps the workspace).
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


def mosquitto_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def cfg() -> StoreConfig:
    store = f"w{uuid.uuid4().hex[:10]}"  # isolates tests sharing one Mosquitto
    return parse_config(
        f"store_id: {store}\nmqtt: {{port: 1883, keepalive_s: 5}}\n"
        "recognition: {threshold: 0.45, margin: 0.05, min_votes: 2, min_vote_share: 0.6}\n"
        "visits: {cooldown_s: 600, alert_ttl_s: 60}\n"
    )


@pytest.fixture(scope="session")
def home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Staff accounts and one enrolled customer, made once: argon2 hashing is deliberately
    slow (~0.1 s a password), so each test copies this folder instead of re-hashing."""
    home = tmp_path_factory.mktemp("web-home")
    conn = db.migrate_db(hub_db_path(home))
    for staff_id, name in STAFF.items():
        add_staff(conn, staff_id, name, "salesperson", PASSWORD)
    add_staff(conn, MANAGER[0], MANAGER[1], "manager", PASSWORD)
    gallery = Gallery(conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    gallery.enrol("c1", "Ada Lovelace", consent("consent-ref-1"), [(unit(1), 0.9, "t")])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home


@pytest.fixture
def home(home_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(home_template, tmp_path / "home"))


@pytest.fixture
def hub(cfg: StoreConfig, home: Path) -> Iterator[HubService]:
    """The real hub daemon on the real broker: the web app's only source of anything."""
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    service = HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start()
    try:
        yield service
    finally:
        service.stop()
        _clear_retained(cfg, home)


@pytest.fixture
def app(cfg: StoreConfig, hub: HubService) -> FastAPI:
    return create_app(cfg)


def open_client(app: FastAPI) -> TestClient:
    """A TestClient (enter it) whose gateway is subscribed before the first request."""
    return TestClient(app, base_url="http://testserver")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with open_client(app) as c:
        assert wait_for(lambda: app.state.gateway.connected), "gateway did not reach the broker"
        yield c


def login(client: TestClient, staff_id: str, password: str = PASSWORD) -> str:
    """Log in; returns the CSRF token (the session cookie stays in the client)."""
    res = client.post("/api/login", json={"staff_id": staff_id, "password": password})
    assert res.status_code == 200, res.text
    return res.json()["csrf_token"]


@dataclass
class Stack:
    """The real thing on loopback: Mosquitto, the hub daemon, the web app under uvicorn."""

    cfg: StoreConfig
    home: Path
    hub: HubService
    web: ServerThread
    app: FastAPI


@pytest.fixture
def stack(cfg: StoreConfig, home: Path, hub: HubService) -> Iterator[Stack]:
    app = create_app(cfg)
    web = ServerThread(app).start()
    assert wait_for(lambda: app.state.gateway.connected), "gateway did not reach the broker"
    try:
        yield Stack(cfg, home, hub, web, app)
    finally:
        web.stop()


def _clear_retained(cfg: StoreConfig, home: Path) -> None:
    """Leave the shared Mosquitto as we found it: no retained alerts of this test store."""
    conn = db.connect(hub_db_path(home))
    topics = Topics(cfg.store_id)
    names = [topics.alert(r[0]) for r in conn.execute("SELECT alert_id FROM alerts")]
    conn.close()
    client = make_client(f"cleanup-{cfg.store_id}", cfg.mqtt, persistent=False)
    connect(client, cfg.mqtt)
    for topic in [*names, topics.hub_status]:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def face_track(vec: np.ndarray, camera_id: str = "door-1") -> m.FaceTrack:
    """Three good embeddings of one face, as an entrance camera sends them."""
    now = time.time()
    samples = [
        m.EmbeddingSample(
            vector=vec, quality=0.9, face_px=40, sharpness=100, frontalness=0.95, t=now + i * 0.1
        )
        for i in range(3)
    ]
    return m.FaceTrack(
        model=DEFAULT_MODEL,
        camera_id=camera_id,
        track_id=uuid.uuid4().hex,
        update=0,
        final=False,
        first_usable_at=now,
        samples=samples,
    )


def camera_sends(cfg: StoreConfig, track: m.FaceTrack) -> None:
    """Publish a face track as the door camera would: the real hub pipeline takes it from here."""
    client = make_client(f"cam-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    connect(client, cfg.mqtt)
    topic = Topics(cfg.store_id).faces(track.camera_id)
    client.publish(topic, track.to_bytes(), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def claimed_alert(home: Path, store_id: str, staff_id: str | None) -> str:
    """An alert for customer c1 in the hub DB, claimed by ``staff_id`` (None: left open)."""
    conn = db.connect(hub_db_path(home))
    topics = Topics(store_id)
    now = time.time()
    with db.write(conn):
        out = alerts.record_match(
            conn,
            topics,
            customer_id="c1",
            camera_id="door-1",
            first_usable_at=now,
            now=now,
            cooldown_s=0,
            alert_ttl_s=60,
        )
    if staff_id is not None:
        req = m.ClaimRequest(alert_id=out.alert_id, staff_id=staff_id)
        assert alerts.handle_claim(conn, topics, req, now).outcome == "won"
    conn.close()
    return out.alert_id
