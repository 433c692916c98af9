"""The generated Mosquitto set-up, proven on a real Mosquitto: TLS only, accounts, ACLs.

Mosquitto drops an unauthorised publish silently and (2.0 with an ``acl_file``) grants every
subscription in its SUBACK, filtering per message at delivery instead. So a denial is shown by
absence: where possible the denied action is followed by an allowed one from the same client
(a *sentinel*); MQTT keeps one publisher's order towards a subscriber, so once the sentinel
has arrived anything denied before it would have arrived too. Where no sentinel can exist
(a client that may read nothing) the wait is bounded.
"""

from __future__ import annotations

import queue
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from storesense.config import MqttConfig, StoreConfig, parse_config
from storesense.mqtt_client import MqttConnectError, connect, make_client
from storesense.topics import Topics
from storesense_tools.broker_config import (
    GATEWAY,
    HUB,
    BrokerBundle,
    BrokerConfigError,
    camera_account,
    mosquitto_hash,
    verify_mosquitto_hash,
    write_broker_config,
)
from storesense_tools.embedded_broker import free_port
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto

CFG: StoreConfig = parse_config(
    "store_id: s1\ncameras:\n  - {id: door-1, role: entrance, source: 0}\n"
    "  - {id: door-2, role: entrance, source: 1}\n"
    "  - {id: floor-1, role: floor, source: 2}\n"
)
T = Topics("s1")
CAM1, CAM2 = camera_account("door-1"), camera_account("door-2")
FLOOR1 = camera_account("floor-1")
GRACE_S = 0.4  # bounded wait for "nothing arrives" where no sentinel is possible


@dataclass
class Broker:
    port: int
    bundle: BrokerBundle

    def mqtt_cfg(self, user: str | None, password: str | None = None, **kw) -> MqttConfig:
        if user is not None and password is None:
            password = self.bundle.accounts[user]
        kw.setdefault("tls_ca", self.bundle.ca_cert)
        return MqttConfig(host="127.0.0.1", port=self.port, username=user, password=password, **kw)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    require_mosquitto()
    port = free_port()
    bundle = write_broker_config(
        CFG, tmp_path_factory.mktemp("broker") / "mq", listen_host="127.0.0.1", tls_port=port
    )
    proc = MosquittoProcess(bundle.conf, port).start()
    try:
        yield Broker(port, bundle)
    finally:
        proc.stop()


class Client:
    """A paho 2.x client (CallbackAPIVersion.VERSION2 via make_client) that records traffic."""

    def __init__(
        self, broker: Broker, user: str, *, client_id: str | None = None, will=None
    ) -> None:
        cfg = broker.mqtt_cfg(user)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.granted: list[int] = []
        self.c = make_client(client_id or f"t-{user}", cfg, persistent=False, will=will)
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.granted.extend(r.value for r in rcs)
        connect(self.c, cfg)

    def sub(self, *topics: str) -> None:
        for topic in topics:
            self.c.subscribe(topic, qos=1)
        deadline = time.monotonic() + 5
        while len(self.granted) < len(topics) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.granted) == len(topics), "no SUBACK"

    def pub(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def until(self, sentinel: tuple[str, bytes], timeout: float = 5.0) -> list[tuple[str, bytes]]:
        """Everything received before ``sentinel`` (which must arrive)."""
        seen: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if msg == sentinel:
                return seen
            seen.append(msg)
        raise AssertionError(f"{sentinel} never arrived; got {seen}")

    def drain(self, wait_s: float = GRACE_S) -> list[tuple[str, bytes]]:
        time.sleep(wait_s)
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a crashed device does: the will fires."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator:
    opened: list[Client] = []

    def open_(user: str, **kw) -> Client:
        opened.append(Client(broker, user, **kw))
        return opened[-1]

    yield open_
    for c in opened:
        c.close()


# -- authentication and TLS -----------------------------------------------------------------


def test_anonymous_client_is_refused(broker: Broker) -> None:
    cfg = broker.mqtt_cfg(None)
    with pytest.raises(MqttConnectError, match="refused"):
        connect(make_client("anon", cfg), cfg)


def test_wrong_password_and_another_devices_password_are_refused(broker: Broker) -> None:
    for cfg in (
        broker.mqtt_cfg(HUB, "not-the-password"),
        broker.mqtt_cfg(HUB, broker.bundle.accounts[CAM1]),  # a camera's password for the hub
    ):
        with pytest.raises(MqttConnectError, match="refused"):
            connect(make_client("bad", cfg), cfg)


def _connect_packet(user: str, password: str) -> bytes:
    def s(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    body = s("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big") + s("plain") + s(user)
    body += s(password)
    return bytes([0x10, len(body)]) + body


def test_plain_tcp_client_cannot_talk_to_the_tls_listener(broker: Broker) -> None:
    # A valid MQTT 3.1.1 CONNECT with the hub's real password, sent in clear: no CONNACK (0x20)
    # comes back, only the connection closing (or a TLS alert record, 0x15).
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        sock.sendall(_connect_packet(HUB, broker.bundle.accounts[HUB]))
        try:
            reply = sock.recv(4)
        except ConnectionResetError:
            reply = b""
    assert reply[:1] != b"\x20", f"broker answered a plain CONNECT: {reply!r}"
    # and paho without tls_set gets no session either
    cfg = broker.mqtt_cfg(HUB, tls_ca=None)
    with pytest.raises(MqttConnectError):
        connect(make_client("plain", cfg), cfg, timeout_s=1)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_paho_verifies_the_broker_against_the_store_ca(broker: Broker, host: str) -> None:
    cfg = broker.mqtt_cfg(HUB).model_copy(update={"host": host})
    client = make_client("chain", cfg, persistent=False)  # tls_set(ca_certs=ca.crt)
    connect(client, cfg)
    tls = client.socket()
    assert isinstance(tls, ssl.SSLSocket)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    client.disconnect()
    client.loop_stop()


def test_certificate_is_refused_by_a_stranger_ca_or_under_another_name(
    broker: Broker, tmp_path: Path
) -> None:
    stranger = write_broker_config(CFG, tmp_path / "other").ca_cert
    cfg = broker.mqtt_cfg(HUB, tls_ca=stranger)
    with pytest.raises((MqttConnectError, ssl.SSLError, OSError)):
        connect(make_client("wrong-ca", cfg), cfg, timeout_s=3)
    ctx = ssl.create_default_context(cafile=str(broker.bundle.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        ctx.wrap_socket(raw, server_hostname="not-the-hub.example")


# -- who may do what ------------------------------------------------------------------------


def test_hub_alerts_and_results_reach_the_gateway_but_its_raw_claims_do_not(clients) -> None:
    hub, gw = clients(HUB), clients(GATEWAY)
    hub.sub(T.all_claims, T.all_rpc_requests)
    gw.sub(T.all_alerts, T.claim_result("+"), T.hub_status)
    hub.pub(T.alert("a-ok"), b"alert", retain=True)
    hub.pub(T.claim_result("bob"), b"result")
    hub.pub(T.hub_status, b"online", retain=True)
    assert gw.until((T.hub_status, b"online")) == [
        (T.alert("a-ok"), b"alert"),
        (T.claim_result("bob"), b"result"),
    ]
    # The web claims through rpc (the hub checks the session and CSRF tokens); a raw claim
    # naming any staff member would bypass both, so the broker drops it.
    gw.pub(T.claims("bob"), b"claim")
    gw.pub(T.rpc_request("web-1"), b"marker")  # allowed, and arrives after the claim would
    assert hub.until((T.rpc_request("web-1"), b"marker")) == []


def test_web_requests_reach_the_hub_and_only_the_hubs_replies_reach_the_web(clients) -> None:
    hub, gw, cam = clients(HUB), clients(GATEWAY), clients(CAM1)
    hub.sub(T.all_rpc_requests)
    gw.sub(T.rpc_reply("+"), T.all_rpc_requests)  # the second is refused: requests carry passwords
    cam.pub(T.rpc_request("web-1"), b"a camera asking the hub for a customer card")
    gw.pub(T.rpc_request("web-1"), b"request")
    assert hub.until((T.rpc_request("web-1"), b"request")) == []
    for forger in (cam, gw):
        forger.pub(T.rpc_reply("web-1"), b"forged reply")
    hub.pub(T.rpc_reply("web-1"), b"reply")
    assert gw.until((T.rpc_reply("web-1"), b"reply")) + gw.drain() == []


def test_camera_faces_status_and_last_will_reach_the_hub(clients) -> None:
    hub = clients(HUB)
    hub.sub(T.all_faces, T.all_edge_status)
    hub.drain(GRACE_S)  # retained statuses of earlier tests
    cam = clients(CAM1, will=(T.edge_status("door-1"), b"offline"))
    cam.pub(T.faces("door-1"), b"embedding")
    cam.pub(T.edge_status("door-1"), b"online", retain=True)
    assert hub.until((T.edge_status("door-1"), b"online")) == [(T.faces("door-1"), b"embedding")]
    cam.kill()
    assert hub.until((T.edge_status("door-1"), b"offline")) == []


def test_a_camera_cannot_publish_as_another_camera(clients) -> None:
    hub = clients(HUB)
    hub.sub(T.all_faces, T.all_edge_status, T.all_claims)
    hub.drain(GRACE_S)  # retained statuses of earlier tests
    liar = clients(CAM1, will=(T.edge_status("door-2"), b"forged will"))
    liar.pub(T.faces("door-2"), b"spoofed embedding")  # dropped silently by Mosquitto
    liar.pub(T.edge_status("door-2"), b"spoofed status")
    liar.pub(T.claims("bob"), b"a camera claiming a customer")
    liar.kill()  # its will, on door-2's status, must not be published either
    honest = clients(CAM2)
    honest.pub(T.faces("door-2"), b"sentinel")
    assert hub.until((T.faces("door-2"), b"sentinel")) == []
    assert hub.drain() == []


def test_a_floor_camera_sends_positions_only_and_no_embeddings(clients) -> None:
    hub = clients(HUB)
    hub.sub(T.all_faces, T.all_floor)
    floor = clients(FLOOR1)
    floor.pub(T.faces("floor-1"), b"a floor camera has no business sending embeddings")
    floor.pub(T.floor("door-1"), b"positions under another camera's name")
    floor.pub(T.floor("floor-1"), b"positions")
    assert hub.until((T.floor("floor-1"), b"positions")) == []
    door = clients(CAM1)
    door.pub(T.floor("door-1"), b"an entrance camera sending positions")
    door.pub(T.faces("door-1"), b"sentinel")
    assert hub.until((T.faces("door-1"), b"sentinel")) == []


def test_only_the_hub_publishes_alerts_results_and_hub_status(clients) -> None:
    gw = clients(GATEWAY)
    gw.sub(T.all_alerts, T.claim_result("+"), T.hub_status)
    gw.drain(GRACE_S)  # retained alerts and status of earlier tests
    for forger in (clients(CAM1), gw):  # the gateway would get its own publish back
        forger.pub(T.alert("forged"), b"fake alert")
        forger.pub(T.claim_result("bob"), b"fake result")
        forger.pub(T.hub_status, b"fake status")
    hub = clients(HUB)
    hub.pub(T.alert("sentinel"), b"sentinel")
    # Sentinel from another publisher: give the forgeries (sent earlier) the grace period too.
    assert gw.until((T.alert("sentinel"), b"sentinel")) + gw.drain() == []


def test_a_camera_reads_nothing(broker: Broker, clients) -> None:
    cam = clients(CAM1)
    cam.sub(T.faces("door-2"), T.all_faces, T.all_alerts, T.claim_result("+"), T.hub_status, "#")
    assert set(cam.granted) <= {0, 1, 0x80}  # 2.0 grants and filters per message
    hub, gw, other = clients(HUB), clients(GATEWAY), clients(CAM2)
    gw.sub(T.all_alerts)
    other.pub(T.faces("door-2"), b"their embedding")
    hub.pub(T.alert("a-cam"), b"alert")
    hub.pub(T.hub_status, b"online", retain=True)
    gw.until((T.alert("a-cam"), b"alert"), timeout=5)
    assert cam.drain() == []


def test_the_gateway_cannot_read_embeddings_or_camera_status(clients) -> None:
    gw = clients(GATEWAY)
    gw.sub(T.all_faces, T.all_edge_status, T.base + "/edge/#", T.base + "/#")
    hub, cam = clients(HUB), clients(CAM1)
    hub.sub(T.all_faces)
    cam.pub(T.edge_status("door-1"), b"online", retain=True)
    cam.pub(T.faces("door-1"), b"embedding")
    hub.until((T.faces("door-1"), b"embedding"))
    hub.pub(T.alert("a-gw"), b"allowed")  # what the gateway does read, as the sentinel
    seen = gw.until((T.alert("a-gw"), b"allowed")) + gw.drain()
    assert [t for t, _ in seen if "/edge/" in t] == []


def test_a_device_cannot_take_over_the_hubs_session(clients) -> None:
    hub = clients(HUB, client_id="storesense-hub")
    hub.sub(T.all_faces)
    clients(CAM2, client_id="storesense-hub")  # the broker uses the username as client id
    cam = clients(CAM1)
    cam.pub(T.faces("door-1"), b"still here")
    assert hub.until((T.faces("door-1"), b"still here")) == []
    assert hub.c.is_connected()


# -- the bundle itself ----------------------------------------------------------------------


def test_bundle_files_modes_and_certificates(tmp_path: Path) -> None:
    b = write_broker_config(CFG, tmp_path / "b", hub_host_names=["hub.store.lan", "10.0.0.2"])
    for secret in (b.ca_key, b.broker_key, b.passwd, *b.credentials_dir.iterdir()):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    assert b.credentials_dir.stat().st_mode & 0o777 == 0o700
    assert set(b.accounts) == {HUB, GATEWAY, CAM1, CAM2, FLOOR1}
    for user, password in b.accounts.items():
        line = next(x for x in b.passwd.read_text().splitlines() if x.startswith(f"{user}:"))
        assert verify_mosquitto_hash(password, line.split(":", 1)[1])
        assert len(password) >= 32
    creds = b.credentials(CAM1).read_text()
    assert f"password: {b.accounts[CAM1]}" in creds and "username: cam-door-1" in creds
    ca = x509.load_pem_x509_certificate(b.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(b.broker_cert.read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(map(str, san.get_values_for_type(x509.IPAddress))) == {"127.0.0.1", "10.0.0.2"}
    assert set(san.get_values_for_type(x509.DNSName)) == {"hub.store.lan", "localhost"}
    # the web app's certificate: the same store CA, the same names, 0600 key
    web = x509.load_pem_x509_certificate(b.web_cert.read_bytes())
    web.verify_directly_issued_by(ca)
    assert b.web_key.stat().st_mode & 0o777 == 0o600
    web_san = web.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(web_san.get_values_for_type(x509.DNSName)) == {"hub.store.lan", "localhost"}
    assert (web.not_valid_after_utc - web.not_valid_before_utc).days <= 398  # Apple's limit
    conf = b.conf.read_text()
    for line in ("allow_anonymous false", "tls_version tlsv1.2", f"acl_file {b.acl}"):
        assert line in conf
    listeners = [x for x in conf.splitlines() if x.startswith("listener ")]
    assert listeners == ["listener 8883 0.0.0.0"]  # TLS only, no plain listener


def test_our_hash_is_mosquittos_format(tmp_path: Path) -> None:
    ours = mosquitto_hash("s3cret", salt=b"\x00" * 12)
    assert ours.startswith("$7$101$AAAAAAAAAAAAAAAA$") and verify_mosquitto_hash("s3cret", ours)
    assert not verify_mosquitto_hash("wrong", ours)
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed: cannot cross-check with the real tool")
    plain = tmp_path / "pw"
    plain.write_text("u:s3cret\n")
    subprocess.run([tool, "-U", str(plain)], check=True, capture_output=True)  # hashes in place
    assert verify_mosquitto_hash("s3cret", plain.read_text().strip().split(":", 1)[1])


def test_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    first = write_broker_config(CFG, tmp_path / "b")
    with pytest.raises(BrokerConfigError, match="--force"):
        write_broker_config(CFG, tmp_path / "b")
    assert first.passwd.read_text() == (tmp_path / "b" / "passwd").read_text()  # untouched
    first.broker_key.chmod(0o644)  # an old key left readable must not stay so
    no_cams = parse_config("store_id: s1\n")  # hub and gateway only is a valid store
    again = write_broker_config(no_cams, tmp_path / "b", force=True)
    assert set(again.accounts) == {HUB, GATEWAY}
    assert sorted(p.name for p in again.credentials_dir.iterdir()) == [
        "hub.yaml",
        "phone-gateway.yaml",
    ]  # the removed cameras' credentials are gone
    assert again.broker_key.stat().st_mode & 0o777 == 0o600
    assert "cam-" not in again.acl.read_text()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"hub_host_names": ["bad host"]}, "not a host name"),
        ({"listen_host": "0.0.0.0; x"}, "not a host name"),
        ({"tls_port": 0}, "port"),
    ],
)
def test_refuses_bad_inputs(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(BrokerConfigError, match=match):
        write_broker_config(CFG, tmp_path / "b", **kw)
    with pytest.raises(BrokerConfigError, match="spaces"):
        write_broker_config(CFG, tmp_path / "with space")
    assert not (tmp_path / "b").exists()


def test_cli_writes_the_bundle_and_refuses_a_second_time(tmp_path: Path, capsys) -> None:
    from storesense_tools.cli import main

    cfg = Path(__file__).resolve().parents[2] / "config" / "store.example.yaml"
    args = ["--home", str(tmp_path), "--config", str(cfg), "broker-config"]
    args += ["--out", str(tmp_path / "mq"), "--host", "hub.store.lan"]
    assert main(args) == 0
    assert "accounts" in capsys.readouterr().out
    assert "cam-door-1" in (tmp_path / "mq" / "acl").read_text()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err


def test_an_offline_hub_session_keeps_more_than_mosquittos_default_1000_messages(
    broker: Broker,
) -> None:
    """Mosquitto drops QoS 1 messages beyond ``max_queued_messages`` (default 1,000) for an
    offline session after acknowledging them to the sender; the generated config raises it so
    a hub outage does not silently lose what the cameras' outboxes already let go."""
    n = 3000
    cfg = broker.mqtt_cfg(HUB)
    received: queue.Queue[bytes] = queue.Queue()

    def hub_session() -> object:
        c = make_client(HUB, cfg, persistent=True)
        c.on_message = lambda cl, u, m: received.put(bytes(m.payload))
        connect(c, cfg)
        return c

    hub = hub_session()
    hub.subscribe(T.faces("door-1"), qos=1)
    time.sleep(0.5)
    hub.disconnect()  # a clean DISCONNECT: the persistent session stays, messages queue
    hub.loop_stop()
    cam = make_client(CAM1, broker.mqtt_cfg(CAM1), persistent=False)
    connect(cam, broker.mqtt_cfg(CAM1))
    infos = [cam.publish(T.faces("door-1"), str(i).encode(), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(10)
    cam.disconnect()
    cam.loop_stop()
    hub = hub_session()  # the hub comes back: the broker delivers the whole queue
    got: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.add(received.get(timeout=1))
        except queue.Empty:
            continue
    hub.disconnect()
    hub.loop_stop()
    assert len(got) == n, f"{n - len(got)} of {n} queued messages lost by the broker"
