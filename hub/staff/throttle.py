"""The login throttle, kept by the hub (the one process that sees every login attempt)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginThrottle:
    """At most ``limit`` failed logins per staff id and per client address in ``window_s``.

    In memory: a hub restart forgets, which is acceptable for a store LAN; argon2 already
    makes each guess cost ~0.1 s of CPU. (The lock is for callers outside the worker thread,
    such as tests; the hub itself calls from its one worker.)
    """

    def __init__(self, limit: int = 10, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, keys: list[str], now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            return any(len(self._recent(k, now)) >= self.limit for k in keys)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)
