"""Long-running loops survive a failing step: logged, counted, backed off, and going on.

Every daemon here is a few loops (the hub's worker and push sender, the camera agent's frame
loop and watchdog, the web gateway's heartbeat, paho's network threads). An exception that
escapes one ends its thread without a word while the process looks alive: a hub whose worker
died still holds its MQTT connection and acknowledges nothing. So each step of such a loop
runs through :meth:`LoopGuard.step`: the exception is logged with its traceback, counted under
the step's name (the counts go into the status or health the process already reports), and
the loop goes on. A step that keeps failing (a database locked by a long import) is retried
with exponential back-off, so it neither spins nor floods the log. The systemd watchdog stays
the last resort: a step that hangs instead of raising still stops the pings.

paho's own threads are covered by :func:`guard_mqtt_callbacks`: paho re-raises a callback's
exception in its network thread by default, which ends ``loop_start``'s thread for good.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import paho.mqtt.client as mqtt

T = TypeVar("T")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class LoopGuard:
    """The failures of one process's loops, by step name; thread-safe counting."""

    def __init__(self, log: logging.Logger, *, backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.log = log
        self.backoff_max_s = backoff_max_s
        self.counts: Counter[str] = Counter()
        self._failing: Counter[str] = Counter()  # consecutive failures per step
        self._lock = threading.Lock()

    def step(self, name: str, fn: Callable[..., T], *args: object) -> T | None:
        """``fn(*args)``; on an exception: log it, count it under ``name``, return None."""
        try:
            result = fn(*args)
        except Exception:
            self.failed(name)
            return None
        with self._lock:
            self._failing.pop(name, None)
        return result

    def failed(self, name: str) -> None:
        """Record the exception being handled (call from an ``except`` block)."""
        with self._lock:
            self.counts[name] += 1
            self._failing[name] += 1
            n = self._failing[name]
        self.log.exception("%s failed (%d in a row); going on", name, n)

    def count(self, name: str) -> None:
        """Count a failure logged elsewhere (paho's callback errors)."""
        with self._lock:
            self.counts[name] += 1

    def backoff_s(self) -> float:
        """How long the loop should pause before its next round: 0 while nothing fails in a
        row, then 0.5 s, 1 s, 2 s … up to ``backoff_max_s``."""
        with self._lock:
            n = max(self._failing.values(), default=0)
        if n == 0:
            return 0.0
        return float(min(BACKOFF_FIRST_S * 2 ** min(n - 1, 16), self.backoff_max_s))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def guard_mqtt_callbacks(client: mqtt.Client, guard: LoopGuard, log: logging.Logger) -> None:
    """Keep paho's network thread alive through a failing callback, logged and counted
    (``mqtt_callback``). paho reports the exception through its log hook, then goes on."""
    client.suppress_exceptions = True

    def on_log(c: mqtt.Client, userdata: object, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and buf.startswith("Caught exception in"):
            guard.count("mqtt_callback")
            log.error("MQTT callback failed; going on: %s", buf)

    client.on_log = on_log
