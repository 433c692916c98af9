"""One hub per home, one edge agent per camera: real `storesense` processes on a private
Mosquitto. The second start is refused with one line and exit 2, the first keeps running and
connected (it still answers over MQTT), and after a kill -9 of the first a new one starts (the
kernel dropped the lock with the process: nothing stale to clean up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from storesense import messages as m
from storesense import rpc
from storesense.config import parse_config
from storesense.instance_lock import hub_lock
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "storesense_tools" / "demo_assets" / "face-demographics-walking-and-pause.gif"


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    require_mosquitto()
    with ExitStack() as stack:
        yield private_mosquitto(stack, tmp_path)


def _storesense(home: Path, conf: Path, *args: str, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "storesense_tools.cli", "--home", str(home),
            "--config", str(conf), *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as fh:
        return subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT)


def _refused(proc: subprocess.Popen, log: Path) -> str:
    """The second process's exit: code 2 and exactly one line of output (no traceback)."""
    assert proc.wait(timeout=60) == 2
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


class _Watcher:
    """Subscribes to the store's topics and keeps what arrives (thread-safe enough for tests)."""

    def __init__(self, store: str, port: int) -> None:
        cfg = parse_config(f"store_id: {store}\nmqtt: {{port: {port}}}\n")
        self.topics = Topics(store)
        self.web_id = f"web-{uuid.uuid4().hex[:8]}"
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = make_client(self.web_id, cfg.mqtt, persistent=False)
        self.client.on_message = self._on_message
        connect(self.client, cfg.mqtt)
        self.client.subscribe(
            [(f"{self.topics.base}/#", 1), (self.topics.rpc_reply(self.web_id), 1)]
        )

    def _on_message(self, c: object, u: object, msg: object) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))  # type: ignore[attr-defined]

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.got if t == topic]

    def hub_answers_ping(self, timeout_s: float = 30) -> bool:
        """A ping request, repeated until answered: one sent before the hub's SUBACK is lost."""
        asked: set[str] = set()

        def answered() -> bool:
            replies = [rpc.decode_reply(p) for p in self.on(self.topics.rpc_reply(self.web_id))]
            if any(r.request_id in asked and r.ok for r in replies):
                return True
            req = rpc.new_request("ping", {}, timeout_s=10)
            asked.add(req.request_id)
            self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)
            return wait_for(
                lambda: any(
                    rpc.decode_reply(p).request_id == req.request_id
                    for p in self.on(self.topics.rpc_reply(self.web_id))
                ),
                2,
            )

        return wait_for(answered, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill9(proc)


def _hub_home(tmp_path: Path, port: int) -> tuple[Path, Path, _Watcher]:
    """An empty hub home, its store YAML (a fresh store id on the private broker), a watcher."""
    store = f"l{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    home.mkdir()
    conf = tmp_path / "store.yaml"
    conf.write_text(f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 5}}\n")
    return home, conf, _Watcher(store, port)


def test_a_second_hub_on_one_home_is_refused_and_the_first_stays_connected(
    port: int, tmp_path: Path
) -> None:
    home, conf, watch = _hub_home(tmp_path, port)
    procs: list[subprocess.Popen] = []
    try:
        first = _storesense(home, conf, "hub", "run", log=tmp_path / "hub-1.log")
        procs.append(first)
        assert watch.hub_answers_ping(), (tmp_path / "hub-1.log").read_text()
        second = _storesense(home, conf, "hub", "run", log=tmp_path / "hub-2.log")
        procs.append(second)
        line = _refused(second, tmp_path / "hub-2.log")
        assert "already running" in line and f"pid {first.pid}" in line, line
        assert str(home / "hub.lock") in line
        # The first was never knocked off the broker: no offline status (its last will, fired
        # by a client-id takeover), and its worker still answers over MQTT.
        assert first.poll() is None
        assert watch.hub_answers_ping()
        statuses = [m.decode(p, m.HubStatus) for p in watch.on(watch.topics.hub_status)]
        assert statuses and all(s.online for s in statuses), statuses

        _kill9(first)  # no clean-up: the kernel drops the flock with the process
        third = _storesense(home, conf, "hub", "run", log=tmp_path / "hub-3.log")
        procs.append(third)
        assert watch.hub_answers_ping(), (tmp_path / "hub-3.log").read_text()
        assert third.poll() is None
    finally:
        for p in procs:
            _stop(p)
        watch.close()


def test_a_hub_started_during_a_restore_is_refused_naming_the_restore(
    port: int, tmp_path: Path
) -> None:
    """A restore holds the hub's own lock (one lock, not two): a `hub run` started meanwhile
    exits 2 with one line before it opens the database, and starts once the restore ends."""
    home, conf, watch = _hub_home(tmp_path, port)
    procs: list[subprocess.Popen] = []
    try:
        with hub_lock(home, doing="a restore"):  # what `storesense restore` holds
            refused = _storesense(home, conf, "hub", "run", log=tmp_path / "hub-1.log")
            procs.append(refused)
            line = _refused(refused, tmp_path / "hub-1.log")
            assert f"a restore on {home} is already running (pid {os.getpid()}" in line, line
            assert not (home / "hub.sqlite3").exists()  # refused before opening the database
        started = _storesense(home, conf, "hub", "run", log=tmp_path / "hub-2.log")
        procs.append(started)
        assert watch.hub_answers_ping(), (tmp_path / "hub-2.log").read_text()
        assert not (home / "hub.sqlite3.lock").exists()  # the hub holds no second lock
    finally:
        for p in procs:
            _stop(p)
        watch.close()


def test_a_second_edge_agent_for_one_camera_is_refused_and_the_first_keeps_sending(
    port: int, tmp_path: Path
) -> None:
    store = f"l{uuid.uuid4().hex[:8]}"
    home = tmp_path / "cam"
    home.mkdir()
    conf = tmp_path / "store.yaml"
    conf.write_text(
        f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 5}}\ncameras:\n"
        f"  - {{id: door-1, role: entrance, source: '{CLIP}', fps: 5, loop: true}}\n"
    )
    watch = _Watcher(store, port)
    topic = watch.topics.edge_status("door-1")

    def heartbeats() -> list[m.EdgeStatus]:
        return [m.decode(p, m.EdgeStatus) for p in watch.on(topic) if p]

    procs: list[subprocess.Popen] = []
    run = ("edge", "run", "--camera", "door-1")
    try:
        first = _storesense(home, conf, *run, log=tmp_path / "edge-1.log")
        procs.append(first)
        assert wait_for(lambda: any(h.frames > 0 for h in heartbeats()), 90), (
            tmp_path / "edge-1.log"
        ).read_text()
        second = _storesense(home, conf, *run, log=tmp_path / "edge-2.log")
        procs.append(second)
        line = _refused(second, tmp_path / "edge-2.log")
        assert "camera door-1 is already running" in line and f"pid {first.pid}" in line, line
        # the first goes on: later heartbeats count more frames, none says offline
        seen = max(h.frames for h in heartbeats())
        assert wait_for(lambda: max(h.frames for h in heartbeats()) > seen, 30)
        assert first.poll() is None
        assert all(h.online for h in heartbeats())

        _kill9(first)
        before = len(heartbeats())
        third = _storesense(home, conf, *run, log=tmp_path / "edge-3.log")
        procs.append(third)
        assert wait_for(
            lambda: any(h.online and h.frames > 0 for h in heartbeats()[before:]), 90
        ), (tmp_path / "edge-3.log").read_text()
        assert third.poll() is None
    finally:
        for p in procs:
            _stop(p)
        watch.close()
