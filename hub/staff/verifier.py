"""Password checks off the hub's worker: a small, bounded pool of argon2 threads.

Why: the hub has one worker thread that answers every web request, takes every claim and
raises every alert. An argon2 check costs ~0.1 s of CPU and 64 MiB (more under load), so a
burst of logins verified on that thread queued everything behind it: with 16 logins at
once, a salesperson's Accept waited for all of them (``bench/hub_login_burst.py`` measures
it). Here the worker only reads the hash (``accounts.load_credentials``) and hands the
check to ``threads`` threads (argon2-cffi releases the GIL while hashing); the answer comes
back to the worker through ``later`` (the hub's own queue), which then creates the session.

Bounds: at most ``threads`` checks run at once (memory: ``threads`` × 64 MiB) and at most
``max_pending`` are accepted, running or waiting (the issue's cap of 10 concurrent
verifications); one more is refused at once (``VerifierBusy``, the phone is told to try
again) and costs no argon2.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hub.staff import accounts

log = logging.getLogger(__name__)
THREADS = 2  # the hub's machine has few cores; two checks at once keep the memory at 128 MiB
MAX_PENDING = 10  # running + waiting: the cap on verifications in flight

Done = Callable[[accounts.Staff | None], None]


class VerifierBusy(RuntimeError):
    """``max_pending`` checks are already accepted: refused without hashing."""


@dataclass(frozen=True)
class _Job:
    cred: accounts.Credentials
    password: str
    done: Done


class PasswordVerifier:
    """``submit`` from the worker; ``done(staff or None)`` is handed to ``later`` from a
    verifier thread, so it runs on whatever thread ``later`` schedules it on (the worker)."""

    def __init__(
        self,
        later: Callable[[Callable[[], None]], None],
        *,
        threads: int = THREADS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if threads < 1 or max_pending < threads:
            raise ValueError("need threads >= 1 and max_pending >= threads")
        self._later = later
        self.max_pending = max_pending
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self.peak_pending = 0  # for tests and the bench: the cap held
        self.refused = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"hub-argon2-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, cred: accounts.Credentials, password: str, done: Done) -> None:
        with self._lock:
            if self._pending >= self.max_pending:
                self.refused += 1
                raise VerifierBusy(f"{self._pending} password checks already in progress")
            self._pending += 1
            self.peak_pending = max(self.peak_pending, self._pending)
        self._jobs.put(_Job(cred, password, done))

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                staff = accounts.check_password(job.cred, job.password)
            except Exception:  # argon2 out of memory, a bug: a refusal, never a stuck login
                log.exception("password check failed")
                staff = None
            with self._lock:
                self._pending -= 1
            self._later(functools.partial(job.done, staff))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the threads once the checks already accepted are done (their answers still
        go to ``later``, which may by then ignore them)."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout_s)
