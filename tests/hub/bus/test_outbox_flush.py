"""The hub outbox through a real Mosquitto: a flush hands paho at most ``MAX_IN_FLIGHT``
unacknowledged publishes, and repeated flushes deliver the rest in order (a reconnect's
re-announcement of thousands of retained alerts must not sit in paho's memory at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub.bus import outbox
from hub.store import db
from storesense.config import parse_config
from storesense.mqtt_client import connect, make_client
from storesense_tools.embedded_broker import free_port
from tests.mosquitto_proc import MosquittoProcess, persistent_mosquitto, require_mosquitto

N_ROWS = 1_000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    require_mosquitto()
    b = persistent_mosquitto(tmp_path, free_port()).start()
    yield b
    b.stop()


def test_flush_caps_publishes_in_flight_and_delivers_every_row_in_order(
    tmp_path: Path, broker: MosquittoProcess
) -> None:
    cfg = parse_config(f"store_id: s1\nmqtt: {{port: {broker.port}}}\n").mqtt
    got: list[bytes] = []
    done = threading.Event()
    sub = make_client("flush-sub", cfg, persistent=False)

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        if len(got) == N_ROWS:
            done.set()

    sub.on_message = on_message
    connect(sub, cfg)
    sub.subscribe("flush/#", qos=1)
    time.sleep(0.3)  # SUBACK before the first publish

    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    with db.write(conn):
        for i in range(N_ROWS):
            outbox.enqueue(conn, "flush/t", f"{i:04d}".encode(), False)
    pub = make_client("flush-pub", cfg)
    box = outbox.Outbox(conn, pub)
    pub.on_publish = lambda c, u, mid, rc, p: box.on_publish(mid)
    connect(pub, cfg)

    first = box.flush()
    assert first == outbox.MAX_IN_FLIGHT and box.backlog
    deadline = time.monotonic() + 30
    peak = len(box._in_flight)
    while box.unsent() and time.monotonic() < deadline:
        box.flush()
        peak = max(peak, len(box._in_flight))
        time.sleep(0.005)
    assert box.unsent() == 0, f"{box.unsent()} rows still unsent after 30 s"
    assert peak <= outbox.MAX_IN_FLIGHT
    assert not box.backlog
    assert done.wait(10), f"the subscriber got {len(got)} of {N_ROWS}"
    assert got == [f"{i:04d}".encode() for i in range(N_ROWS)]  # in order, each once
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
