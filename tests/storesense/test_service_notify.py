"""sd_notify over a real unix datagram socket, as systemd sees it.

The tests bind the socket systemd would bind, point ``NOTIFY_SOCKET`` at it and assert the exact
datagrams, so a typo in a message (which systemd silently ignores, then kills the unit at the
start timeout) fails here instead of on a store's hub.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storesense import service_notify


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
