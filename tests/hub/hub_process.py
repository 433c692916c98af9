"""A real `storesense hub run` process for the kill -9 tests: its own interpreter, so SIGKILL
takes it down with nothing flushed, and a start that waits until the hub says it is online."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from storesense import messages as m
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


@dataclass
class HubRunner:
    """Starts hub processes on ``home`` with ``cfg`` written to ``home/store.yaml``.

    ``status`` is the caller's list of ``HubStatus`` messages (its watcher fills it from the
    retained status topic); each start clears it and waits for an online one. Every process
    logs to its own file in ``log_dir``, kept in ``logs`` for the test to read.
    """

    home: Path
    cfg: StoreConfig
    log_dir: Path
    status: list[m.HubStatus]
    logs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conf = self.home / "store.yaml"
        self.conf.write_text(
            yaml.safe_dump(self.cfg.model_dump(mode="json", exclude_defaults=True))
        )

    def start(self) -> subprocess.Popen:
        self.status.clear()
        self.logs.append(self.log_dir / f"hub-{len(self.logs)}.log")
        argv = [sys.executable, "-m", "storesense_tools.cli", "--home", str(self.home),
                "--config", str(self.conf), "hub", "run"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.logs[-1].open("w") as log:
            proc = subprocess.Popen(argv, env=env, stderr=log)
        assert wait_for(lambda: any(s.online for s in self.status), 30), "hub did not come up"
        time.sleep(1.0)  # its subscriptions are in place
        return proc


@dataclass
class Watched:
    """What a watcher heard: the hub's status messages (``HubRunner.status``) and alerts."""

    status: list[m.HubStatus] = field(default_factory=list)
    alerts: list[m.Alert] = field(default_factory=list)


@contextmanager
def watching(cfg: StoreConfig) -> Iterator[Watched]:
    """A client subscribed to the store's hub status and every alert until the block ends."""
    topics = Topics(cfg.store_id)
    heard = Watched()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        if msg.topic == topics.hub_status:
            heard.status.append(m.decode(payload, m.HubStatus))
        elif payload:  # an empty retained message is a retraction
            heard.alerts.append(m.decode(payload, m.Alert))

    client = make_client(f"watch-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [(topics.hub_status, 1), (topics.all_alerts, 1)]
    )
    connect(client, cfg.mqtt)
    try:
        yield heard
    finally:
        client.disconnect()
        client.loop_stop()
