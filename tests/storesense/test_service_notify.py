"""sd_notify over a real unix datagram socket, as systemd sees it.

The tests bind the socket systemd would bind, point ``NOTIFY_SOCKET`` at it and assert the exact
datagrams, so a typo in a message (which systemd silently ignores, then kills the unit at the
start timeout) fails here instead of on a store's hub.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storesense import service_notify

MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture(autouse=True)
def _pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the fallback even where systemd-python happens to be installed: it is what runs."""
    monkeypatch.setattr(service_notify, "_systemd_notify", None)
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)


def _receive(sock: socket.socket) -> bytes:
    sock.settimeout(2.0)
    return sock.recv(4096)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A filesystem datagram socket standing in for systemd's, named by ``NOTIFY_SOCKET``.

    It lives in a short /tmp folder, not ``tmp_path``: unix socket paths max out at 108 bytes.
    """
    with tempfile.TemporaryDirectory(prefix="sn-") as folder:
        path = os.path.join(folder, "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            yield sock


def test_each_call_sends_its_exact_datagram(notify_socket: socket.socket) -> None:
    assert service_notify.ready() is True
    assert _receive(notify_socket) == b"READY=1"
    assert service_notify.watchdog() is True
    assert _receive(notify_socket) == b"WATCHDOG=1"
    assert service_notify.status("camera door-1: 8.0 fps") is True
    assert _receive(notify_socket) == b"STATUS=camera door-1: 8.0 fps"
    assert service_notify.stopping() is True
    assert _receive(notify_socket) == b"STOPPING=1"


def test_status_cannot_inject_other_assignments(notify_socket: socket.socket) -> None:
    service_notify.status("source error\nREADY=1")
    assert _receive(notify_socket) == b"STATUS=source error READY=1"


def test_status_is_utf8(notify_socket: socket.socket) -> None:
    service_notify.status("caméra prête")
    assert _receive(notify_socket) == "STATUS=caméra prête".encode()


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd may hand out ``@name``: the '@' stands for the leading NUL of an abstract name."""
    name = f"storesense-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service_notify.ready() is True
        assert _receive(sock) == b"READY=1"
        assert service_notify.watchdog() is True
        assert _receive(sock) == b"WATCHDOG=1"


def test_no_op_without_notify_socket() -> None:
    assert "NOTIFY_SOCKET" not in os.environ
    assert service_notify.ready() is False
    assert service_notify.watchdog() is False
    assert service_notify.stopping() is False
    assert service_notify.status("anything") is False


def test_missing_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon must keep running if systemd's socket went away (e.g. during a re-exec)."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert service_notify.watchdog() is False
    assert "could not notify systemd (WATCHDOG)" in caplog.text


def test_non_unix_address_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert service_notify.ready() is False


def test_systemd_python_is_used_when_importable(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(service_notify, "_systemd_notify", lambda msg: sent.append(msg) or True)
    assert service_notify.status("hub up") is True
    assert sent == ["STATUS=hub up"]
    notify_socket.settimeout(0.05)
    with pytest.raises(TimeoutError):
        notify_socket.recv(4096)  # the fallback did not send a second copy


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),  # WatchdogSec=30 -> ping every 15 s
        ("30000000", "self", 15.0),
        ("500000", "self", 0.25),
        ("30000000", "other", None),  # meant for another process
        ("30000000", "junk", None),
        (None, None, None),
        ("", None, None),
        ("0", None, None),
        ("-5", None, None),
        ("thirty", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    elif pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert service_notify.watchdog_interval_s() == expected


# -- the hub daemon, as systemd runs it ------------------------------------------------------


def _mosquitto_port() -> int:
    try:
        socket.create_connection(MOSQUITTO, timeout=1).close()
    except OSError:
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    return MOSQUITTO[1]


_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def receive_with_sender(sock: socket.socket, timeout_s: float) -> tuple[bytes, int] | None:
    """One datagram and the pid the kernel says sent it (``SO_PASSCRED``); None on timeout.

    systemd reads the same credentials: with ``NotifyAccess=main`` it drops datagrams from any
    pid but the unit's main process, so a READY sent from a child would be silently ignored.
    """
    sock.settimeout(timeout_s)
    try:
        data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(_CRED.size))
    except TimeoutError:
        return None
    pid = -1
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = _CRED.unpack(raw[: _CRED.size])[0]
    return data, pid


def _collect(sock: socket.socket, seconds: float) -> list[tuple[bytes, int]]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        item = receive_with_sender(sock, left)
        if item is not None:
            got.append(item)
    return got


def _hub_config(tmp_path: Path) -> Path:
    path = tmp_path / "store.yaml"
    path.write_text(f"store_id: t{uuid.uuid4().hex[:10]}\nmqtt: {{port: {_mosquitto_port()}}}\n")
    return path


def test_hub_run_says_ready_pings_the_watchdog_and_says_stopping(
    notify_socket: socket.socket, tmp_path: Path
) -> None:
    """``storesense hub run`` as the Type=notify unit starts it: READY once, a WATCHDOG ping
    every half of ``WATCHDOG_USEC``, STOPPING on SIGTERM, all from the main process."""
    notify_socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    script = Path(sys.executable).with_name("storesense")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "storesense_tools.cli"]
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "STORESENSE_HOME")}
    env["WATCHDOG_USEC"] = "400000"  # WatchdogSec=0.4: a ping every 0.2 s
    home = tmp_path / "home"
    log_path = tmp_path / "hub.log"
    with open(log_path, "wb") as log_file:
        hub = subprocess.Popen(
            [*cmd, "--home", str(home), "--config", str(_hub_config(tmp_path)), "hub", "run"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            got: list[tuple[bytes, int]] = []
            deadline = time.monotonic() + 60  # a cold start imports numpy, paho, pydantic...
            while time.monotonic() < deadline and not (
                (b"READY=1", hub.pid) in got and got.count((b"WATCHDOG=1", hub.pid)) >= 3
            ):
                assert hub.poll() is None, log_path.read_text()
                item = receive_with_sender(notify_socket, 1.0)
                if item is not None:
                    got.append(item)
            hub.send_signal(signal.SIGTERM)
            assert hub.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if hub.poll() is None:
                hub.kill()
                hub.wait()
    got += _collect(notify_socket, 0.3)
    messages = [data for data, _ in got]
    assert messages.count(b"READY=1") == 1, (messages, log_path.read_text())
    assert messages.count(b"WATCHDOG=1") >= 3, messages
    assert b"STOPPING=1" in messages[messages.index(b"READY=1") :], messages
    assert set(messages) <= {b"READY=1", b"WATCHDOG=1", b"STOPPING=1"}, messages  # no typos
    assert {pid for _, pid in got} == {hub.pid}  # NotifyAccess=main accepts nothing else


def _pings(sock: socket.socket, seconds: float) -> int:
    return sum(data == b"WATCHDOG=1" for data, _ in _collect(sock, seconds))


def test_a_wedged_hub_worker_stops_the_watchdog_pings(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The hub pings from its worker thread, not from a timer: when the worker hangs (a stuck
    SQLite write, a deadlock) the pings stop and systemd restarts the hub, as it should."""
    from hub.service import HubService
    from storesense.config import load_config

    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    cfg = load_config(_hub_config(tmp_path))
    hub = HubService(cfg, tmp_path, client_id=f"hub-{cfg.store_id}")
    wedge, wedged, release = threading.Event(), threading.Event(), threading.Event()
    real_tick = hub._tick

    def tick(now: float) -> None:  # the worker's periodic step, hanging on request
        if wedge.is_set() and not release.is_set():
            wedged.set()
            release.wait(30)
        real_tick(now)

    hub._tick = tick  # type: ignore[method-assign]
    with hub:
        try:
            assert _pings(notify_socket, 1.0) >= 3  # alive: about five a second
            wedge.set()
            assert wedged.wait(5)
            _collect(notify_socket, 0.05)  # a ping sent just before the hang
            assert _pings(notify_socket, 1.2) == 0  # three intervals: systemd would kill it
            # the process and its thread are still there: only the missing pings tell
            assert hub._worker is not None and hub._worker.is_alive()
        finally:
            release.set()
        assert _pings(notify_socket, 1.0) >= 3  # and it recovers when the worker does


def test_a_re_created_socket_gets_the_next_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection is kept between pings; when systemd re-creates its socket (a daemon
    re-exec) the next message reconnects and arrives instead of being lost."""
    with tempfile.TemporaryDirectory(prefix="sn-") as folder:
        path = os.path.join(folder, "notify.sock")
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as first:
            first.bind(path)
            assert service_notify.watchdog() is True
            assert _receive(first) == b"WATCHDOG=1"
        os.unlink(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as second:
            second.bind(path)
            assert service_notify.status("back") is True
            assert _receive(second) == b"STATUS=back"
