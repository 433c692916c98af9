"""The entrance agent end to end on the bundled clip, publishing to the real Mosquitto."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.camera_agent import CameraAgent
from storesense import messages as m
from storesense.config import parse_config
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics

CLIP = (
    Path(__file__).resolve().parents[2]
    / "storesense_tools"
    / "demo_assets"
    / "face-demographics-walking-and-pause.gif"
)


def test_agent_publishes_few_embedding_messages_per_track_and_no_images(tmp_path: Path) -> None:
    store = f"t{uuid.uuid4().hex[:10]}"
    cfg = parse_config(
        f"store_id: {store}\nmqtt: {{port: 1883}}\n"
        f"cameras:\n  - {{id: door-1, role: entrance, source: '{CLIP}', fps: 12}}\n"
    )
    topics = Topics(store)
    got: list[tuple[str, bytes, bool]] = []
    lock = threading.Lock()

    def on_message(c, u, msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.append((msg.topic, bytes(msg.payload), msg.retain))

    listener = make_client(f"listen-{store}", cfg.mqtt, persistent=False)
    listener.on_message = on_message
    connect(listener, cfg.mqtt)
    listener.subscribe(f"{topics.base}/#", qos=1)
    time.sleep(0.2)
    agent = CameraAgent(cfg, cfg.camera("door-1"), home=tmp_path, realtime=False)
    agent.run()
    time.sleep(0.5)
    listener.disconnect()
    listener.loop_stop()

    faces = [m.decode(p, m.FaceTrack) for t, p, _ in got if t == topics.faces("door-1")]
    per_track: dict[str, list[m.FaceTrack]] = defaultdict(list)
    for msg in faces:
        per_track[msg.track_id].append(msg)
    assert len(per_track) >= 3, "three walkers should give at least three tracks"
    for msgs in per_track.values():
        # first, agreement, at most one improvement, final (edge.entrance.face_tracker's
        # policy) — never one per frame
        assert len(msgs) <= 4
        assert [x.update for x in msgs] == list(range(len(msgs)))
        assert msgs[-1].final
        assert all(1 <= len(x.samples) <= 3 for x in msgs)
    assert max(len(p) for t, p, _ in got if t == topics.faces("door-1")) < 4096  # no images
    statuses = [m.decode(p, m.EdgeStatus) for t, p, _ in got if t == topics.edge_status("door-1")]
    assert statuses[0].online and not statuses[-1].online
    assert statuses[-1].frames == 41


def test_a_floor_camera_without_calibration_is_refused_clearly() -> None:
    # the floor role itself is tested in tests/edge/floor/test_pipeline.py
    from storesense.config import ConfigError

    cfg = parse_config("store_id: s1\ncameras:\n  - {id: f1, role: floor, source: 0}\n")
    with pytest.raises(ConfigError, match="needs `calibration:`"):
        CameraAgent(cfg, cfg.camera("f1"), home=Path("/nonexistent"))


def test_agent_tells_systemd_it_is_ready_and_alive(tmp_path: Path, monkeypatch) -> None:
    import os
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    cfg = parse_config(
        f"store_id: t{uuid.uuid4().hex[:10]}\nmqtt: {{port: 1883}}\n"
        f"cameras:\n  - {{id: door-1, role: entrance, source: '{CLIP}', fps: 12}}\n"
    )
    agent = CameraAgent(cfg, cfg.camera("door-1"), home=tmp_path, realtime=True)
    agent.run()  # plays the 3.4 s clip in real time
    got = []
    while True:
        try:
            got.append(sock.recv(256).decode())
        except TimeoutError:
            break
    assert got[0] == "READY=1"
    assert got.count("WATCHDOG=1") >= 5
