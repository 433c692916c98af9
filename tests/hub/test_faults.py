"""Fault tests against a private Mosquitto process: the broker dies mid-stream, the hub dies.

Pass rules: every entrance event becomes exactly one alert (none lost, none duplicated), and a
hub restarted after a crash serves a consistent claim state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.outbox import EdgeOutbox
from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.service import HubService
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.face_models import DEFAULT_MODEL
from storesense.mqtt_client import connect_in_background, make_client
from storesense.paths import template_key_path
from storesense_tools.embedded_broker import free_port
from storesense_tools.sim_phone import Phone
from tests.consent import consent
from tests.hub.conftest import unit
from tests.mosquitto_proc import MosquittoProcess, persistent_mosquitto, require_mosquitto
from tests.waiting import wait_for as _wait

N_CUSTOMERS = 12


def _persistent_broker(tmp: Path) -> MosquittoProcess:
    """Persistence on, so queued QoS 1 messages survive a restart (several test files use it)."""
    return persistent_mosquitto(tmp, free_port())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    require_mosquitto()
    b = _persistent_broker(tmp_path)
    b.start()
    yield b
    b.stop()


def _config(port: int) -> StoreConfig:
    return parse_config(
        f"store_id: f{uuid.uuid4().hex[:8]}\nmqtt: {{port: {port}, keepalive_s: 5}}\n"
        "visits: {cooldown_s: 600, alert_ttl_s: 120}\n"
    )


def _enrol_all(service: HubService, home: Path) -> None:
    gallery = Gallery(service.conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    for i in range(N_CUSTOMERS):
        gallery.enrol(
            f"c{i:02d}", f"Customer {i}", consent(f"consent-{i}"), [(unit(100 + i), 0.9, "t")]
        )


def _event(i: int) -> m.FaceTrack:
    now = time.time()
    samples = [
        m.EmbeddingSample(
            vector=unit(100 + i) + np.float32(0.001) * k,
            quality=0.9,
            face_px=40,
            sharpness=100,
            frontalness=0.9,
            t=now + k * 0.1,
        )
        for k in range(2)
    ]
    return m.FaceTrack(
        model=DEFAULT_MODEL,
        camera_id="door-1",
        track_id=uuid.uuid4().hex,
        update=0,
        final=True,
        first_usable_at=now,
        samples=samples,
    )


def _alerts(service: HubService) -> list[str]:
    return [r[0] for r in service.conn.execute("SELECT customer_id FROM alerts")]


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    cfg = _config(broker.port)
    home = tmp_path / "hub"
    home.mkdir()
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    _enrol_all(hub, home)
    hub.start()
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    outbox = EdgeOutbox(tmp_path / "edge.sqlite3", cam)
    cam.on_publish = lambda c, u, mid, rc, p: outbox.on_publish(mid)
    connect_in_background(cam, cfg.mqtt)
    try:
        for i in range(N_CUSTOMERS):
            if i == N_CUSTOMERS // 3:
                broker.stop()  # the broker dies with the stream in full flow…
            if i == 2 * N_CUSTOMERS // 3:
                outbox.pump()
                assert outbox.depth() >= 4  # the events of the outage wait on the camera's disk
                broker.start()  # …and comes back a few events later
            payload = _event(i).to_bytes()
            outbox.send(hub.topics.faces("door-1"), payload)
            if i % 3 == 0:
                outbox.send(hub.topics.faces("door-1"), payload)  # QoS 1 repeats happen
            outbox.pump()
            time.sleep(0.15)
        assert _wait(lambda: len(_alerts(hub)) >= N_CUSTOMERS, 30), _alerts(hub)
        time.sleep(0.5)
        got = _alerts(hub)
        assert sorted(got) == [f"c{i:02d}" for i in range(N_CUSTOMERS)]  # none lost, no dupes
        assert _wait(lambda: (outbox.pump(), outbox.depth())[1] == 0, 10)
    finally:
        cam.disconnect()
        cam.loop_stop()
        outbox.close()
        hub.stop()


def test_hub_killed_mid_claim_restarts_consistent(broker: MosquittoProcess, tmp_path: Path) -> None:
    cfg = _config(broker.port)
    home = tmp_path / "hub"
    home.mkdir()
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    _enrol_all(hub, home)
    hub.start()
    phones = [Phone(s, hub.topics, cfg.mqtt).start() for s in ("alice", "bob")]
    cam = make_client(f"cam2-{cfg.store_id}", cfg.mqtt)
    connect_in_background(cam, cfg.mqtt)
    try:
        assert _wait(lambda: cam.is_connected(), 5)
        cam.publish(hub.topics.faces("door-1"), _event(0).to_bytes(), qos=1).wait_for_publish(5)
        assert phones[0].wait_for(lambda p: len(p.open_alerts()) == 1)
        alert_id = phones[0].open_alerts()[0].alert_id
        # the hub dies abruptly (no goodbye) while both phones press Accept
        hub._stop.set()
        hub.client.loop_stop()
        hub.client._sock_close()
        for p in phones:
            p.claim(alert_id)
        time.sleep(0.5)
        hub.conn.close()
        # restart with the same persistent session: the claims queued at the broker arrive
        hub2 = HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start()
        try:
            for p in phones:
                assert p.wait_for(lambda ph: len(ph.results) == 1, 15), p.staff_id
            outcomes = sorted(p.results[0].outcome for p in phones)
            assert outcomes == ["taken", "won"]
            state = hub2.conn.execute("SELECT state, claimed_by FROM alerts").fetchone()
            assert state["state"] == "claimed"
            assert all(p.alerts[alert_id].alert.claimed_by == state["claimed_by"] for p in phones)
            assert all(not p.open_alerts() for p in phones)
        finally:
            hub2.stop()
    finally:
        for p in phones:
            p.stop()
        cam.disconnect()
        cam.loop_stop()
