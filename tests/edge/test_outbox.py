"""Store-and-forward: messages survive a broker outage and an agent restart, in order."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.outbox import EdgeOutbox
from storesense.config import MqttConfig
from storesense.mqtt_client import connect, connect_in_background, make_client
from storesense_tools.embedded_broker import EmbeddedBroker, free_port
from tests.waiting import wait_for as _wait


def _edge_client(cfg: MqttConfig, box_path: Path) -> tuple[mqtt.Client, EdgeOutbox]:
    client = make_client("edge-test-cam", cfg)
    outbox = EdgeOutbox(box_path, client, max_rows=50)
    client.on_publish = lambda c, u, mid, rc, p: outbox.on_publish(mid)
    return client, outbox


def _collector(cfg: MqttConfig) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    lock = threading.Lock()
    sub = make_client("collector", cfg, persistent=False)

    def on_message(c, u, msg) -> None:
        with lock:
            got.append(bytes(msg.payload))

    sub.on_message = on_message
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("t/#", qos=1)
    connect(sub, cfg)
    return sub, got


def test_messages_wait_on_disk_for_a_late_broker_and_go_out_in_order(tmp_path: Path) -> None:
    cfg = MqttConfig(port=free_port())
    client, outbox = _edge_client(cfg, tmp_path / "box.sqlite3")
    connect_in_background(client, cfg)  # nothing listens yet
    for i in range(20):
        outbox.send("t/faces", f"m{i:02d}".encode())
    assert outbox.depth() == 20
    client.loop_stop()  # no reconnect (and flush) before the collector has subscribed
    with EmbeddedBroker(port=cfg.port):
        sub, got = _collector(cfg)
        client.loop_start()  # paho reconnects on its own (1 s back-off); pump hands the rest over
        assert _wait(lambda: (outbox.pump(), outbox.depth())[1] == 0, 15)
        assert _wait(lambda: len(got) >= 20)
        assert got[:20] == [f"m{i:02d}".encode() for i in range(20)]
        sub.disconnect()
        sub.loop_stop()
    client.loop_stop()
    outbox.close()


def test_unsent_messages_survive_an_agent_restart(tmp_path: Path) -> None:
    cfg = MqttConfig(port=free_port())
    path = tmp_path / "box.sqlite3"
    client, outbox = _edge_client(cfg, path)
    connect_in_background(client, cfg)
    for i in range(5):
        outbox.send("t/faces", f"r{i}".encode())
    client.loop_stop()
    outbox.close()  # the agent dies with 5 messages unsent
    with EmbeddedBroker(port=cfg.port):
        sub, got = _collector(cfg)
        client2, outbox2 = _edge_client(cfg, path)  # restart: backlog is re-sent first
        assert outbox2.counters["resent_after_restart"] == 5
        connect_in_background(client2, cfg)
        assert _wait(lambda: (outbox2.pump(), len(got))[1] >= 5)  # the agent loop pumps
        assert got[:5] == [f"r{i}".encode() for i in range(5)]
        assert _wait(lambda: (outbox2.pump(), outbox2.depth())[1] == 0)
        for c in (sub, client2):
            c.disconnect()
            c.loop_stop()
        outbox2.close()


def test_outbox_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    cfg = MqttConfig(port=free_port())
    _client, outbox = _edge_client(cfg, tmp_path / "box.sqlite3")
    for i in range(80):
        outbox.send("t/faces", f"b{i}".encode())
    assert outbox.depth() == 50
    assert outbox.counters["dropped_oldest"] == 30
    first = outbox.conn.execute("SELECT payload FROM outbox ORDER BY row_id LIMIT 1").fetchone()
    assert bytes(first[0]) == b"b30"  # the newest 50 are kept
    outbox.close()


def test_a_broken_disk_is_counted_and_the_message_still_goes_out(tmp_path: Path) -> None:
    cfg = MqttConfig(port=free_port())
    path = tmp_path / "box.sqlite3"
    client, outbox = _edge_client(cfg, path)
    outbox.conn.close()
    outbox.conn = sqlite3.connect(":memory:")  # no outbox table: every write fails
    outbox.send("t/faces", b"x")
    assert outbox.counters["disk_write_errors"] == 1
    # still queued in memory, handed to paho once a session is up
    assert len(outbox._deferred) == 1 and not client._out_messages


def test_nothing_reaches_paho_while_it_is_mid_connect(tmp_path: Path) -> None:
    """A broker that accepted TCP but has not answered CONNECT yet: the outbox holds messages
    back (paho would write a PUBLISH as soon as it has a socket, which can beat the CONNECT)
    and keeps them on disk; the late-broker test above covers their delivery afterwards."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    cfg = MqttConfig(port=server.getsockname()[1])
    client, outbox = _edge_client(cfg, tmp_path / "box.sqlite3")
    connect_in_background(client, cfg)
    peer, _ = server.accept()  # never sends CONNACK
    assert _wait(lambda: client.socket() is not None, 5)
    for i in range(3):
        outbox.send("t/faces", f"h{i}".encode())
    assert outbox.depth() == 3 and len(outbox._deferred) == 3
    assert len(client._out_messages) == 0  # paho was given nothing to write
    peer.settimeout(1.0)
    first = peer.recv(1)
    assert first == b"\x10"  # the CONNECT, and nothing after it
    peer.settimeout(0.3)
    rest = peer.recv(4096)
    assert b"h0" not in rest and b"t/faces" not in rest
    client.loop_stop()
    peer.close()
    server.close()
    outbox.close()
