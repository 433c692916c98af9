"""A real `storesense hub run` process for the kill -9 tests: its own interpreter, so SIGKILL
takes it down with nothing flushed, and a start that waits until the hub says it is online."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from storesense import messages as m
from storesense.config import StoreConfig
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
