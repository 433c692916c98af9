"""Face tracks sealed camera → hub (storesense.face_seal), through a real Mosquitto outage.

The issue's test: the hub is down, a door camera streams face tracks, the broker autosaves its
queue for the hub's persistent session; neither ``mosquitto.db`` nor the camera's outbox holds
any 32-byte window of any embedding (float32, float64, base64); the hub starts and processes
every track once. Then the hub's refusals, each counted by its reason: tampered, wrong key,
unknown key, revoked key, plain track from a keyed camera, stale, and the replay of a processed
message (a repeat, no second effect).
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.camera_agent import CameraAgent
from hub.bus import seen
from hub.faces import camera_keys
from hub.service import HubService
from storesense import face_seal
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.mqtt_client import connect_in_background, make_client
from storesense.paths import camera_keys_path
from storesense_tools.embedded_broker import free_port
from tests.hub.conftest import unit
from tests.hub.web.conftest import face_track
from tests.mosquitto_proc import MosquittoProcess, persistent_mosquitto, require_mosquitto
from tests.waiting import wait_for

N_TRACKS = 12
WINDOW = 32


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A private Mosquitto with persistence and a 1 s autosave, as deployed (60 s there)."""
    require_mosquitto()
    b = persistent_mosquitto(tmp_path, free_port()).start()
    yield b
    b.stop()


def _config(port: int) -> StoreConfig:
    """A fresh store with one door camera on the private broker."""
    store = f"s{uuid.uuid4().hex[:8]}"
    cams = "cameras: [{id: door-1, role: entrance, source: 0}]"
    return parse_config(f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 5}}\n{cams}\n")


def _track(seed: int, *, sent_at: float | None = None) -> m.FaceTrack:
    """A door camera's track of the face ``unit(seed)``, sent now or at ``sent_at``."""
    track = face_track(unit(seed))
    return track if sent_at is None else track.model_copy(update={"sent_at": sent_at})


def _windows(tracks: list[m.FaceTrack]) -> set[bytes]:
    """Every 32-byte window of every embedding as float32 and float64 bytes, and every
    32-character window of its base64 (the form the plain message carried)."""
    out: set[bytes] = set()
    for t in tracks:
        for s in t.samples:
            for raw in (s.vector.astype("<f4").tobytes(), s.vector.astype("<f8").tobytes()):
                out.update(raw[i : i + WINDOW] for i in range(len(raw) - WINDOW + 1))
            b64 = base64.b64encode(s.vector.astype("<f4").tobytes())
            out.update(b64[i : i + WINDOW] for i in range(len(b64) - WINDOW + 1))
    return out


def _leaks(blob: bytes, windows: set[bytes]) -> int:
    """How many of ``windows`` occur in ``blob`` (a hash set of every 32-byte slice)."""
    slices = {blob[i : i + WINDOW] for i in range(len(blob) - WINDOW + 1)}
    return len(slices & windows)


def _files(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


def test_outage_queue_is_ciphertext_only_and_every_track_is_processed_once(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    cfg = _config(broker.port)
    hub_home, cam_home = tmp_path / "hub", tmp_path / "cam"
    hub_home.mkdir()
    key = camera_keys.issue(camera_keys_path(hub_home), "door-1")
    face_seal.write_key_file(cam_home / "secrets" / "face-seal.key", key)

    # The hub's persistent session exists (it ran once), then the hub is down.
    HubService(cfg, hub_home, client_id=f"hub-{cfg.store_id}").start().stop()

    agent = CameraAgent(cfg, cfg.camera("door-1"), home=cam_home)
    assert agent.sealer is not None and agent.sealer.key_id == key.key_id
    tracks = [_track(i) for i in range(N_TRACKS)]
    windows = _windows(tracks)
    # the scan can fail: the plain form of one track is full of its windows
    assert _leaks(tracks[0].to_bytes(), windows) > 100
    try:
        agent._publish_all(list(tracks))  # broker not yet connected: all wait on the disk
        outbox_file = cam_home / "edge-door-1-outbox.sqlite3"
        assert agent.outbox.depth() == N_TRACKS
        wal = outbox_file.with_name(outbox_file.name + "-wal")
        on_disk = _files(outbox_file, wal)
        assert on_disk.count(b'"kind":"sealed_face_track"') >= N_TRACKS  # the rows are there
        assert _leaks(on_disk, windows) == 0
        connect_in_background(agent.client, cfg.mqtt)

        def drained() -> bool:
            agent.outbox.pump()
            return agent.outbox.depth() == 0

        assert wait_for(drained, 15)
        time.sleep(2.5)  # two autosaves of the queue held for the stopped hub
        db_file = tmp_path / "persist" / "mosquitto.db"
        persisted = db_file.read_bytes()
        # the queue really is in the file (the scan looked at the messages) ...
        assert agent.outbox.counters["publish_errors"] == 0
        assert persisted.count(b'"kind":"sealed_face_track"') == N_TRACKS
        # ... as ciphertext only; and the outbox's file (rows deleted, pages kept) neither
        assert _leaks(persisted, windows) == 0
        assert _leaks(_files(outbox_file, wal), windows) == 0
    finally:
        agent.client.disconnect()
        agent.client.loop_stop()
        agent.outbox.close()

    hub = HubService(cfg, hub_home, client_id=f"hub-{cfg.store_id}").start()
    try:
        assert wait_for(lambda: hub.stats.received["face_track"] >= N_TRACKS, 20)
        time.sleep(0.5)
        assert hub.stats.received["sealed_face_track"] == N_TRACKS
        assert hub.stats.received["face_track"] == N_TRACKS  # once each, none lost
        assert hub.stats.duplicates == 0
        assert not hub.stats.rejected
        assert all(seen.already_seen(hub.conn, t.msg_id) for t in tracks)
    finally:
        hub.stop()


def test_hub_refuses_tampered_foreign_revoked_plain_stale_and_replayed(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    cfg = _config(broker.port)
    hub_home = tmp_path / "hub"
    hub_home.mkdir()
    keys_file = camera_keys_path(hub_home)
    key = camera_keys.issue(keys_file, "door-1")
    hub = HubService(cfg, hub_home, client_id=f"hub-{cfg.store_id}").start()
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt, persistent=False)
    connect_in_background(cam, cfg.mqtt)
    topic = hub.topics.faces("door-1")

    def send(payload: bytes) -> None:
        cam.publish(topic, payload, qos=1).wait_for_publish(5)

    def rejected(reason: str, n: int = 1) -> bool:
        return wait_for(lambda: hub.stats.rejected[reason] >= n, 10)

    try:
        assert wait_for(cam.is_connected, 10)
        good = face_seal.seal(_track(1), key)
        send(good.to_bytes())
        assert wait_for(lambda: hub.stats.received["face_track"] == 1, 10)

        send(good.to_bytes())  # a replay of a processed message: no second effect
        assert wait_for(lambda: hub.stats.duplicates == 1, 10)

        ct = bytearray(base64.b64decode(good.ciphertext))
        ct[40] ^= 1
        tampered = good.model_copy(
            update={"msg_id": m.new_msg_id(), "ciphertext": base64.b64encode(ct).decode()}
        )
        send(tampered.to_bytes())
        assert rejected("bad_seal")
        # the outer, authenticated fields moved: a fresh message id on an old ciphertext
        moved = face_seal.seal(_track(2), key).model_copy(update={"msg_id": m.new_msg_id()})
        send(moved.to_bytes())
        assert rejected("bad_seal", 2)
        wrong = dataclasses.replace(key, key=bytes(32))  # the right id, another key's bytes
        send(face_seal.seal(_track(3), wrong).to_bytes())
        assert rejected("bad_seal", 3)
        send(face_seal.seal(_track(4), face_seal.new_key("door-1")).to_bytes())
        assert rejected("unknown_key")
        send(_track(5).to_bytes())  # plain, from a camera that has a key
        assert rejected("unsealed")
        old = time.time() - cfg.face_seal.max_age_s - 60
        send(face_seal.seal(_track(6, sent_at=old), key).to_bytes())
        assert rejected("stale")
        ahead = time.time() + cfg.face_seal.max_future_s + 60
        send(face_seal.seal(_track(7, sent_at=ahead), key).to_bytes())
        assert rejected("from_future")

        # rotation: the new key is accepted at once, the old one until it is retired
        new = camera_keys.issue(keys_file, "door-1")
        rotated = [face_seal.seal(_track(8), new), face_seal.seal(_track(9), key)]
        for sealed in rotated:
            send(sealed.to_bytes())
        # received counts the replay too (the repeat is dropped after it): 1 + 1 + 2
        assert wait_for(lambda: hub.stats.received["face_track"] == 4, 10)
        assert camera_keys.retire(keys_file, key.key_id) == [key.key_id]
        send(face_seal.seal(_track(10), key).to_bytes())
        assert rejected("key_retired")
        # a stolen camera: all its keys, the retired one's state too
        revoked = camera_keys.revoke(keys_file, camera_id="door-1")
        assert sorted(revoked) == sorted([key.key_id, new.key_id])
        send(face_seal.seal(_track(11), new).to_bytes())
        assert rejected("key_revoked")
        time.sleep(0.3)
        assert hub.stats.received["face_track"] == 4  # nothing refused was processed
        assert hub.stats.duplicates == 1
        processed = [good.msg_id] + [r.msg_id for r in rotated]
        assert all(seen.already_seen(hub.conn, i) for i in processed)
        assert hub.conn.execute("SELECT count(*) FROM seen_messages").fetchone()[0] == 3
        assert hub.guard.snapshot() == {}  # every refusal was a counted rejection, no crash
        # the revoked and retired keys' bytes are gone from the hub's file
        text = keys_file.read_text()
        assert base64.b64encode(key.key).decode() not in text
        assert base64.b64encode(new.key).decode() not in text
    finally:
        cam.disconnect()
        cam.loop_stop()
        hub.stop()


def test_seal_binds_the_outer_fields() -> None:
    key = face_seal.new_key("door-1")
    sealed = face_seal.seal(_track(1), key)
    assert face_seal.open_sealed(sealed, key).samples[0].vector.shape == (128,)
    for change in ({"sent_at": sealed.sent_at + 1}, {"camera_id": "door-2"}):
        with pytest.raises(m.PayloadError, match="bad_seal"):
            face_seal.open_sealed(sealed.model_copy(update=change), key)
    assert np.isfinite(sealed.sent_at)
