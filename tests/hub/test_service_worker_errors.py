"""The hub's worker never dies silently: failures injected into its steps are logged, counted
in the retained hub status (``HubStatus.errors``), and later messages are still processed.

A real hub on a private Mosquitto with a real SQLite file; the one fake is the fault: a
function of the hub's own made to raise ``N`` times (as ``Outbox.flush`` does when the database
stays locked past its 30 s busy timeout), then to behave.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.node_health import node_rows
from hub.bus.outbox import Outbox
from hub.push.sender import PushSender, load_or_create_vapid
from hub.service import HubService
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.loop_guard import LoopGuard
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

N = 3


def _fail_first(n: int, fn: Callable[..., Any], exc: Exception) -> Callable[..., Any]:
    """``fn``, except that its first ``n`` calls raise ``exc``; ``.calls`` counts all calls."""
    lock = threading.Lock()
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            k = calls[0]
        if k <= n:
            raise exc
        return fn(*args, **kwargs)

    wrapper.calls = calls  # type: ignore[attr-defined]
    return wrapper


@pytest.fixture
def cfg(tmp_path: Path) -> Iterator[StoreConfig]:
    require_mosquitto()
    with ExitStack() as stack:
        port = private_mosquitto(stack, tmp_path)
        yield parse_config(f"store_id: w{uuid.uuid4().hex[:8]}\nmqtt: {{port: {port}}}\n")


class _StatusWatch:
    def __init__(self, cfg: StoreConfig, topic: str) -> None:
        self.got: list[m.HubStatus] = []
        self.client = make_client(f"watch-{uuid.uuid4().hex[:6]}", cfg.mqtt, persistent=False)
        self.client.on_message = lambda c, u, msg: self.got.append(
            m.decode(msg.payload, m.HubStatus)
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        connect(self.client, cfg.mqtt)

    def latest(self) -> m.HubStatus | None:
        return self.got[-1] if self.got else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _heartbeat(hub: HubService, camera: str) -> tuple[str, bytes]:
    msg = m.EdgeStatus(camera_id=camera, role="entrance", online=True, frames=1)
    return hub.topics.edge_status(camera), msg.to_bytes()


def test_a_locked_database_under_the_outbox_flush_is_counted_and_the_worker_goes_on(
    cfg: StoreConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = sqlite3.OperationalError("database is locked")
    flaky = _fail_first(N, Outbox.flush, locked)
    monkeypatch.setattr(Outbox, "flush", flaky)
    hub = HubService(cfg, tmp_path, client_id=f"hub-{cfg.store_id}").start()
    watch = _StatusWatch(cfg, hub.topics.hub_status)
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(cam, cfg.mqtt)
    try:
        assert wait_for(lambda: flaky.calls[0] > N, 60), "the worker stopped calling flush"
        assert hub._worker is not None and hub._worker.is_alive()
        cam.publish(*_heartbeat(hub, "door-9"), qos=1)
        # processed after the failures: the node row is there, the worker still alive
        assert wait_for(
            lambda: (
                [r["camera_id"] for r in node_rows(sqlite3_ro(hub_db_path(tmp_path)))] == ["door-9"]
            ),
            30,
        )
        # the count reaches the retained status, where health is already reported
        assert wait_for(
            lambda: (s := watch.latest()) is not None and s.errors.get("outbox_flush") == N, 30
        ), watch.got
        assert watch.latest().online  # type: ignore[union-attr]
        assert hub.guard.counts == {"outbox_flush": N}
    finally:
        cam.disconnect()
        cam.loop_stop()
        watch.close()
        hub.stop()


def test_a_handler_that_raises_is_counted_and_later_messages_are_processed(
    cfg: StoreConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = HubService(cfg, tmp_path, client_id=f"hub-{cfg.store_id}")
    flaky = _fail_first(N, hub._on_edge_status, RuntimeError("injected"))
    hub._routes[hub.topics.all_edge_status] = flaky
    hub.client.message_callback_add(hub.topics.all_edge_status, hub._enqueuer(flaky))
    hub.start()
    watch = _StatusWatch(cfg, hub.topics.hub_status)
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(cam, cfg.mqtt)
    try:
        for i in range(N + 2):
            cam.publish(*_heartbeat(hub, f"door-{i}"), qos=1)
        want = [f"door-{i}" for i in range(N, N + 2)]  # the first N raised
        assert wait_for(
            lambda: [r["camera_id"] for r in node_rows(sqlite3_ro(hub_db_path(tmp_path)))] == want,
            30,
        )
        assert wait_for(
            lambda: (
                (s := watch.latest()) is not None
                and s.errors.get("message") == N
                and s.rejected.get("internal_error") == N
            ),
            30,
        ), watch.got
    finally:
        cam.disconnect()
        cam.loop_stop()
        watch.close()
        hub.stop()


def test_the_push_sender_counts_a_failed_send_and_sends_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.store import db

    db.migrate_db(hub_db_path(tmp_path)).close()
    guard = LoopGuard(__import__("logging").getLogger("test"))
    sender = PushSender(
        hub_db_path(tmp_path), load_or_create_vapid(tmp_path), subject="mailto:a@b.c", guard=guard
    )
    sent: list[str] = []
    flaky = _fail_first(N, lambda conn, alert: sent.append(alert.alert_id), OSError("injected"))
    monkeypatch.setattr(sender, "_send", flaky)
    sender.start()
    alerts = [
        m.Alert(
            alert_id=f"a{i}",
            seq=i + 1,
            state="open",
            customer_id="c1",
            customer_name="C",
            greeting="Hi",
            camera_id="door-1",
            arrived_at=0,
            expires_at=1,
        )
        for i in range(N + 2)
    ]
    sender.offer(alerts)
    assert wait_for(lambda: len(sent) == 2, 20)
    sender.stop()
    assert sent == [f"a{N}", f"a{N + 1}"]
    assert guard.counts == {"push_send": N}


def sqlite3_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn
