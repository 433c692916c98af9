"""The generated Mosquitto set-up, proven on a real Mosquitto: TLS only, accounts, ACLs."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from storesense.broker_config import (
    GATEWAY,
    HUB,
    BrokerConfigError,
    camera_account,
    write_broker_config,
)
from storesense.config import MqttConfig, StoreConfig, parse_config
from storesense.embedded_broker import free_port
from storesense.mqtt_client import MqttConnectError, connect, make_client
from storesense.topics import Topics
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto

CFG: StoreConfig = parse_config(
    "store_id: s1\ncameras:\n  - {id: door-1, role: entrance, source: 0}\n"
    "  - {id: door-2, role: entrance, source: 1}\n"
)
T = Topics("s1")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict, Path]]:
    require_mosquitto()
    port = free_port()
    out = tmp_path_factory.mktemp("broker")
    bundle = write_broker_config(CFG, out, listen_host="127.0.0.1", tls_port=port)
    proc = MosquittoProcess(bundle.conf, port).start()
    yield port, bundle.accounts, bundle.ca_cert
    proc.stop()


def _cfg(port: int, user: str | None, password: str | None, ca: Path | None) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, username=user, password=password, tls_ca=ca)


class Client:
    def __init__(self, name: str, cfg: MqttConfig) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self._lock = threading.Lock()
        self.c = make_client(f"{name}-{time.monotonic_ns()}", cfg, persistent=False)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.granted.extend(r.value for r in rcs)
        connect(self.c, cfg)

    def _on_message(self, c, u, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def sub(self, topic: str) -> None:
        self.c.subscribe(topic, qos=1)
        time.sleep(0.3)

    def pub(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _as(secured: tuple[int, dict, Path], user: str) -> Client:
    port, accounts, ca = secured
    return Client(user, _cfg(port, user, accounts[user], ca))


def test_anonymous_and_wrong_password_are_refused(secured) -> None:
    port, _, ca = secured
    with pytest.raises(MqttConnectError, match="refused"):
        connect(make_client("anon", _cfg(port, None, None, ca)), _cfg(port, None, None, ca))
    bad = _cfg(port, HUB, "not-the-password", ca)
    with pytest.raises(MqttConnectError, match="refused"):
        connect(make_client("bad", bad), bad)


def test_plain_tcp_cannot_talk_to_the_tls_listener(secured) -> None:
    port, accounts, _ = secured
    plain = _cfg(port, HUB, accounts[HUB], None)
    with pytest.raises(MqttConnectError):
        connect(make_client("plain", plain), plain, timeout_s=3)


def test_server_certificate_is_checked_against_the_store_ca(secured, tmp_path: Path) -> None:
    port, accounts, _ = secured
    other = write_broker_config(CFG, tmp_path / "other", tls_port=port).ca_cert  # a stranger CA
    cfg = _cfg(port, HUB, accounts[HUB], other)
    with pytest.raises((MqttConnectError, ssl.SSLError, OSError)):
        connect(make_client("wrong-ca", cfg), cfg, timeout_s=3)


def test_camera_to_hub_and_hub_to_gateway_work(secured) -> None:
    hub, gw, cam = _as(secured, HUB), _as(secured, GATEWAY), _as(secured, camera_account("door-1"))
    try:
        hub.sub(T.all_faces)
        gw.sub(T.all_alerts)
        cam.pub(T.faces("door-1"), b"embedding")
        hub.pub(T.alert("a1"), b"alert")
        time.sleep(0.5)
        assert (T.faces("door-1"), b"embedding") in hub.got
        assert (T.alert("a1"), b"alert") in gw.got
    finally:
        for c in (hub, gw, cam):
            c.close()


def test_a_camera_cannot_pose_as_another_or_read_anything(secured) -> None:
    hub, cam = _as(secured, HUB), _as(secured, camera_account("door-1"))
    try:
        hub.sub(T.all_faces)
        cam.pub(T.faces("door-2"), b"spoofed")  # Mosquitto drops it silently
        cam.pub(T.alert("a1"), b"fake alert")
        cam.sub(T.all_faces)
        cam.sub(T.all_alerts)
        other = _as(secured, camera_account("door-2"))
        other.pub(T.faces("door-2"), b"real")
        time.sleep(0.5)
        assert hub.got == [(T.faces("door-2"), b"real")]
        assert cam.got == []  # neither embeddings nor alerts reach a camera
        other.close()
    finally:
        hub.close()
        cam.close()


def test_only_the_hub_reads_embeddings(secured) -> None:
    gw, cam = _as(secured, GATEWAY), _as(secured, camera_account("door-1"))
    try:
        gw.sub(T.all_faces)
        cam.pub(T.faces("door-1"), b"embedding")
        gw.pub(T.alert("a2"), b"fake alert from the gateway")
        time.sleep(0.5)
        assert gw.got == []
    finally:
        gw.close()
        cam.close()


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    write_broker_config(CFG, tmp_path / "b")
    with pytest.raises(BrokerConfigError, match="--force"):
        write_broker_config(CFG, tmp_path / "b")
    bundle = write_broker_config(CFG, tmp_path / "b", force=True)
    for name in ("ca.key", "broker.key", "passwd"):
        assert (bundle.out_dir / name).stat().st_mode & 0o777 == 0o600
    assert bundle.credentials(camera_account("door-2")).stat().st_mode & 0o777 == 0o600
    assert set(bundle.accounts) == {HUB, GATEWAY, "cam-door-1", "cam-door-2"}


def test_cli_writes_the_bundle_and_refuses_a_second_time(tmp_path: Path, capsys) -> None:
    from storesense.cli import main

    cfg = Path(__file__).resolve().parents[2] / "config" / "store.example.yaml"
    args = [
        "--home",
        str(tmp_path),
        "--config",
        str(cfg),
        "broker-config",
        "--out",
        str(tmp_path / "mq"),
        "--host",
        "hub.store.lan",
    ]
    assert main(args) == 0
    assert "accounts" in capsys.readouterr().out
    assert "cam-door-1" in (tmp_path / "mq" / "acl").read_text()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
