"""HTTPS by default, the serving limits and session ends, against real processes.

- a bare ``storesense web run`` on a fresh home issues its certificate from a store CA it
  creates in that home and speaks only HTTPS (httpx trusting just that CA), with HSTS;
- half-open connections (silent TCP, TLS clients sending half a request head) do not keep a
  legitimate request out: the request-head timer frees their slots;
- an expired, logged-out or disabled session's WebSocket is closed by the server (4401).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from websockets.sync.client import connect

from hub.service import HubService
from hub.store import db
from hub.web.app import create_app
from hub.web.security import SESSION_ENDED
from hub.web.server import GuardedH11Protocol, ServerThread, Tls
from storesense import tls
from storesense.config import StoreConfig
from storesense.paths import hub_db_path
from tests.hub.web.conftest import PASSWORD, Stack
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store_yaml(cfg: StoreConfig, tmp: Path, extra: str = "") -> Path:
    path = tmp / "web.yaml"
    path.write_text(
        f"store_id: {cfg.store_id}\nmqtt: {{port: 1883, keepalive_s: 5}}\n{extra}",
        encoding="utf-8",
    )
    return path


def _start_web(home: Path, config: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "storesense_tools.cli", "--home", str(home), "--config",
         str(config), "web", "run", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float = 30) -> str:
    out = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if marker in line:
            return "".join(out)
    proc.kill()
    raise AssertionError(f"no {marker!r} from web run:\n{''.join(out)}")


@pytest.fixture
def web_proc(hub: HubService, cfg: StoreConfig, tmp_path: Path) -> Iterator[tuple]:
    web_home = tmp_path / "web-home"
    web_home.mkdir()
    port = _free_port()
    proc = _start_web(web_home, _store_yaml(cfg, tmp_path), port)
    try:
        yield proc, web_home, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_web_app_speaks_https_on_a_fresh_home(web_proc: tuple) -> None:
    proc, web_home, port = web_proc
    out = _read_until(proc, "Uvicorn running on https://")
    ca_path = web_home / "tls" / "ca.crt"
    assert f"created the store CA {ca_path}" in out and "issued the web certificate" in out
    assert "phone onboarding: https://" in out and "SHA-256" in out
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    leaf = x509.load_pem_x509_certificate((web_home / "tls" / "web.crt").read_bytes())
    leaf.verify_directly_issued_by(ca)  # from the store CA: never a lone self-signed leaf
    assert (web_home / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (web_home / "tls" / "web.key").stat().st_mode & 0o777 == 0o600

    trust = ssl.create_default_context(cafile=str(ca_path))
    base = f"https://127.0.0.1:{port}"
    with httpx.Client(base_url=base, verify=trust, timeout=10) as http:
        assert wait_for(lambda: http.get("/healthz").json()["hub_online"] is True, 20)
        res = http.get("/")
        assert res.status_code == 200
        assert res.headers["strict-transport-security"].startswith("max-age=31536000")
        assert res.headers["cache-control"] == "no-store"
        login = http.post("/api/login", json={"staff_id": "alice", "password": PASSWORD})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie
        assert http.get("/api/me").json()["staff_id"] == "alice"
        # onboarding: the very CA in the home, as DER, and its fingerprint
        der = http.get("/onboarding/store-ca.crt")
        assert der.headers["content-type"] == "application/x-x509-ca-cert"
        assert x509.load_der_x509_certificate(der.content) == ca
        assert http.get("/onboarding/store-ca.json").json()["sha256"] in out
        qr = http.get("/onboarding/qr.svg")
        assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content
        assert "Android" in http.get("/onboarding").text
        # Host allow-list: only the certificate's names
        assert http.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    # no plain HTTP on that port, and an untrusting client refuses the certificate
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=5)  # the system CAs do not know the store CA


def test_a_second_start_keeps_the_store_ca_and_its_certificate(
    hub: HubService, cfg: StoreConfig, tmp_path: Path
) -> None:
    web_home = tmp_path / "web-home"
    hosts = tls.default_web_hosts()
    leaf, ca_path, done = tls.ensure_web_cert(web_home, cfg.store_id, hosts)
    assert len(done) == 2
    before = (ca_path.read_bytes(), leaf.cert_path.read_bytes())
    port = _free_port()
    proc = _start_web(web_home, _store_yaml(cfg, tmp_path), port)
    try:
        out = _read_until(proc, "Uvicorn running on https://")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "created the store CA" not in out and "issued" not in out
    assert (ca_path.read_bytes(), leaf.cert_path.read_bytes()) == before
    # a new name for the hub: a new leaf from the same CA
    _, _, done = tls.ensure_web_cert(web_home, cfg.store_id, [*hosts, "till.store.lan"])
    assert done == [done[0]] and "till.store.lan" in done[0]
    assert ca_path.read_bytes() == before[0]


def test_plain_http_only_when_configured_and_with_a_warning(
    hub: HubService, cfg: StoreConfig, tmp_path: Path
) -> None:
    web_home = tmp_path / "web-home"
    web_home.mkdir()
    port = _free_port()
    config = _store_yaml(cfg, tmp_path, "app: {plain_http: true}\n")
    proc = _start_web(web_home, config, port)
    try:
        out = _read_until(proc, "Uvicorn running on http://")
        assert "WARNING: serving plain HTTP" in out
        res = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert res.status_code == 200 and "strict-transport-security" not in res.headers
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not (web_home / "tls").exists()  # no certificate made for a plain server


# -- half-open connections ---------------------------------------------------------------


def _tls_server(cfg: StoreConfig, tmp_path: Path, **limits: object) -> tuple[ServerThread, Path]:
    leaf, ca_path, _ = tls.ensure_web_cert(tmp_path / "tls-home", cfg.store_id, ["127.0.0.1"])
    app_cfg = cfg.app.model_copy(update=limits)
    app = create_app(cfg.model_copy(update={"app": app_cfg}))
    tls_files = Tls(str(leaf.cert_path), str(leaf.key_path))
    return ServerThread(app, tls=tls_files, app_cfg=app_cfg), ca_path


def _half_open(port: int, ca_path: Path, silent: int, half_heads: int) -> list[socket.socket]:
    """``silent`` TCP connections that never speak, ``half_heads`` TLS connections that send
    half a request head and stop."""
    socks: list[socket.socket] = []
    ctx = ssl.create_default_context(cafile=str(ca_path))
    for _ in range(silent):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    for _ in range(half_heads):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


@pytest.mark.parametrize("header_timeout_s", [1.0, 120.0])
def test_half_open_connections_do_not_block_a_legitimate_request(
    cfg: StoreConfig, hub: HubService, tmp_path: Path, header_timeout_s: float
) -> None:
    """80 half-open connections against a limit of 50: with the head timer (1 s) a real
    request gets through within a few seconds; without it (120 s) it is turned away (503),
    the failure this guards against."""
    server, ca_path = _tls_server(
        cfg, tmp_path, header_timeout_s=header_timeout_s, limit_concurrency=50
    )
    trust = ssl.create_default_context(cafile=str(ca_path))
    timed_out_before = GuardedH11Protocol.timed_out_heads
    with server:
        socks = _half_open(server.port, ca_path, silent=20, half_heads=60)
        try:
            t0 = time.monotonic()
            status = 0
            with httpx.Client(verify=trust, timeout=5) as http:
                while time.monotonic() - t0 < 4.0:
                    status = http.get(f"{server.url}/healthz").status_code
                    if status == 200:
                        break
                    time.sleep(0.2)
            elapsed = time.monotonic() - t0
            if header_timeout_s < 10:
                assert status == 200 and elapsed < 4.0
                assert wait_for(
                    lambda: GuardedH11Protocol.timed_out_heads - timed_out_before >= 60, 5
                )
                half = socks[20]  # a half-head client: the server has closed its connection
                half.settimeout(2)
                assert half.recv(1) == b""
            else:
                assert status == 503  # all slots held by connections that never finish
        finally:
            for s in socks:
                s.close()


# -- session ends close the socket -------------------------------------------------------


def _phone(stack: Stack, staff_id: str) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=stack.web.url, timeout=10)
    res = http.post("/api/login", json={"staff_id": staff_id, "password": PASSWORD})
    res.raise_for_status()
    return http, res.json()["csrf_token"]


def _socket(stack: Stack, http: httpx.Client):
    cookie = f"ss_session={http.cookies['ss_session']}"
    ws = connect(stack.web.url.replace("http://", "ws://") + "/ws",
                 additional_headers={"Cookie": cookie}, open_timeout=10)  # fmt: skip
    assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    return ws


def _closed_code(ws, timeout_s: float) -> tuple[int | None, float]:
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            ws.recv(timeout=timeout_s)
    except Exception:
        pass
    return (ws.close_code, time.monotonic() - t0)


def test_an_expired_sessions_socket_is_closed_and_the_api_answers_401(stack: Stack) -> None:
    http, _ = _phone(stack, "alice")
    conn = db.connect(hub_db_path(stack.home))
    with db.write(conn):  # the session ends 1.5 s from now (as if logged in 12 h ago)
        conn.execute("UPDATE web_sessions SET expires_at=?", (time.time() + 1.5,))
    conn.close()
    ws = _socket(stack, http)  # the socket learns the end from the hub at connect
    code, elapsed = _closed_code(ws, 6.0)
    assert code == SESSION_ENDED and elapsed < 3.0
    assert http.get("/api/me").status_code == 401
    assert not any(link.staff_id == "alice" for link in stack.app.state.gateway.links)


def test_logout_closes_the_socket_at_once(stack: Stack) -> None:
    http, csrf = _phone(stack, "bob")
    ws = _socket(stack, http)
    assert http.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    code, elapsed = _closed_code(ws, 5.0)
    assert code == SESSION_ENDED and elapsed < 1.0


def test_a_disabled_account_loses_its_socket_within_the_recheck(stack: Stack) -> None:
    http, _ = _phone(stack, "carol")
    ws = _socket(stack, http)
    conn = db.connect(hub_db_path(stack.home))
    with db.write(conn):
        conn.execute("UPDATE staff SET active=0 WHERE staff_id='carol'")
    conn.close()
    code, elapsed = _closed_code(ws, 10.0)
    assert code == SESSION_ENDED and elapsed < 7.0
