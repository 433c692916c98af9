"""One process per job: a hub per home, an edge agent per camera.

Two hubs on one home share a database and an MQTT client id: the broker drops the older
session every time the other connects, so both flap (measured: every 2 s) and each acts on
half the messages. Two agents for one camera share its outbox and client id the same way.

The guard is an exclusive ``fcntl.flock`` on a lock file, held for the whole life of the
process. The kernel releases it when the process ends, however it ends: a ``kill -9`` never
leaves a stale lock behind, and no pid-file cleanup is needed. The holder writes its pid and
what it is into the file only so that the refusal can name it.

A restore (``storesense restore``) takes the hub's lock too (:func:`hub_lock` with
``doing="a restore"``): it must never replace the database of a running hub, and a hub started
while a restore runs must not open the half-installed database. One lock file, one rule: the
home belongs to one process at a time.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from storesense.errors import CliError


class AlreadyRunning(CliError):
    """Another live process holds the lock; the message is the one line the user sees.
    ``pid`` and ``holder`` (what the holder said it is) let a caller word its own refusal."""

    def __init__(self, message: str, *, pid: str = "unknown", holder: str = "") -> None:
        super().__init__(message)
        self.pid = pid
        self.holder = holder


class InstanceLock:
    """Held from ``acquire`` until ``release`` or the process's end (the kernel's doing)."""

    def __init__(self, path: Path, what: str, *, doing: str | None = None) -> None:
        """``what``: the job the lock stands for (named in the refusal); ``doing``: what this
        holder is, when it is not that job itself (a restore holding the hub's lock)."""
        self.path = path
        self.what = what
        self.doing = doing or what
        self._fh: IO[str] | None = None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise :class:`AlreadyRunning` naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # no O_TRUNC: the holder's pid must survive a refused opener's open
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid, _, doing = fh.read().strip().partition("\n")
            fh.close()
            pid, doing = pid.strip() or "unknown", doing.strip() or self.what
            running = self.what if doing == self.what else f"{doing} on {self.path.parent}"
            raise AlreadyRunning(
                f"{running} is already running (pid {pid}, lock {self.path}): "
                "stop it first; only one may run",
                pid=pid,
                holder=doing,
            ) from None
        except BaseException:
            fh.close()
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n{self.doing}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def hub_lock(home: Path, *, doing: str | None = None) -> InstanceLock:
    """The hub's: one ``storesense hub run`` per home (its database, its MQTT client id).
    ``doing``: another holder that needs the home to itself (``"a restore"``, the demo)."""
    return InstanceLock(home / "hub.lock", f"a hub on {home}", doing=doing)


def edge_lock(home: Path, camera_id: str) -> InstanceLock:
    """One agent per camera: beside the camera's outbox in its state folder."""
    return InstanceLock(home / f"edge-{camera_id}.lock", f"an edge agent for camera {camera_id}")
