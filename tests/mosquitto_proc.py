"""A private Mosquitto process for tests that must stop, restart or configure the broker."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def require_mosquitto() -> None:
    """Fail, never skip, without the broker binary.

    The project's rule is that a test may skip only when the ``../shared`` data is absent:
    Mosquitto is an installable dependency (``.ci/run`` installs it), so a missing binary is a
    broken machine, and a skip would let the fault and broker-security tests pass unseen.
    """
    if not Path(MOSQUITTO).is_file():
        pytest.fail(
            f"mosquitto is not installed (looked on PATH and at {MOSQUITTO}): "
            "install it with `apt-get install mosquitto` or run .ci/run, which does",
            pytrace=False,
        )


class MosquittoProcess:
    def __init__(self, conf: Path, port: int) -> None:
        self.conf = conf
        self.port = port
        # as root Mosquitto would switch to its own user, who cannot read files in tmp_path
        with conf.open("a") as fh:
            fh.write(f"\nuser {getpass.getuser()}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> MosquittoProcess:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start with {self.conf}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # Mosquitto saves its persistence file on exit
            self.proc.wait(timeout=10)
            self.proc = None


def persistent_mosquitto(tmp: Path, port: int) -> MosquittoProcess:
    """Persistence on with a 1 s autosave (60 s as deployed), in ``tmp/persist/mosquitto.db``:
    queued QoS 1 messages survive a restart, and a test can read what the broker wrote."""
    (tmp / "persist").mkdir()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp / 'persist'}/\nautosave_interval 1\n"
    )
    return MosquittoProcess(conf, port)


def private_mosquitto(stack: ExitStack, home: Path) -> int:
    """An anonymous loopback Mosquitto (tcp_nodelay) for the benches; stopped with ``stack``.

    Returns its port. A bench is run by hand, so a missing broker ends it with a message.
    """
    if not Path(MOSQUITTO).exists():
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = home / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    proc = MosquittoProcess(conf, port).start()
    stack.callback(proc.stop)
    return port
