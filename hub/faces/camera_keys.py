"""The hub's per-camera face seal keys: issue, rotate, retire, revoke, and look one up.

One file, ``<home>/secrets/camera_keys.json`` (0600), beside the template and audit keys and
not in the database, for the same reason they are not: a copy of ``hub.sqlite3`` (a backup)
together with a copy of ``mosquitto.db`` must not open the face tracks queued there. The file
names every key ever issued with its camera and state:

- ``active``: accepted. Issuing a key for a camera that has one is a *rotation*: the new key
  is active at once and the old one stays active (messages sealed under it are still queued
  in the outbox and the broker) until ``retire``;
- ``retired`` / ``revoked``: refused, counted by that reason; the key bytes are deleted from
  the file, only the id and camera stay, so the hub tells a revoked key from an unknown one
  and keeps refusing plain tracks from that camera.

Written with an exclusive ``flock`` and an atomic rename (the CLI edits, the running hub only
reads and reloads when the file changes), so a reader sees the old file or the new one.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from storesense import messages as m
from storesense.face_seal import CameraKey, new_key

FORMAT = "storesense-camera-keys"
KeyState = Literal["active", "retired", "revoked"]


class CameraKeyError(ValueError):
    """A key operation that cannot be done (unknown id, wrong state); one line for the CLI."""


def _read(path: Path) -> dict[str, dict[str, Any]]:
    return _parse(path, path.read_bytes()) if path.exists() else {}


def _parse(path: Path, raw: bytes) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise CameraKeyError(f"{path} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CameraKeyError(f"{path} is not a {FORMAT} file")
    keys = data.get("keys")
    if not isinstance(keys, dict):
        raise CameraKeyError(f"{path}: no 'keys' mapping")
    return keys


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The key table under an exclusive lock; written back atomically when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = _read(path)
        yield keys
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": FORMAT, "keys": keys}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        os.close(lock)


def issue(path: Path, camera_id: str, *, now: float | None = None) -> CameraKey:
    """A new active key for ``camera_id`` (its first, or a rotation: older keys stay active)."""
    key = new_key(camera_id)
    with _editing(path) as keys:
        keys[key.key_id] = {
            "camera_id": camera_id,
            "key": base64.b64encode(key.key).decode(),
            "state": "active",
            "issued_at": time.time() if now is None else now,
        }
    return key


def _end(
    path: Path, state: KeyState, key_ids: list[str] | None, camera_id: str | None
) -> list[str]:
    ended: list[str] = []
    with _editing(path) as keys:
        chosen = key_ids if key_ids is not None else [
            k for k, e in keys.items() if e["camera_id"] == camera_id
        ]  # fmt: skip
        for key_id in chosen:
            entry = keys.get(key_id)
            if entry is None:
                raise CameraKeyError(f"no camera key {key_id!r} (see `storesense camera-key list`)")
            if entry["state"] == "active" or (state == "revoked" and entry["state"] != "revoked"):
                entry.update(state=state, key=None, changed_at=time.time())
                ended.append(key_id)
    return ended


def retire(path: Path, key_id: str) -> list[str]:
    """After a rotation, once the camera's queue under ``key_id`` has drained: refuse it."""
    return _end(path, "retired", [key_id], None)


def revoke(path: Path, *, key_id: str | None = None, camera_id: str | None = None) -> list[str]:
    """A stolen camera or key: refuse one key, or every key of a camera, from now on."""
    if (key_id is None) == (camera_id is None):
        raise CameraKeyError("revoke one key id or one camera's keys")
    return _end(path, "revoked", [key_id] if key_id else None, camera_id)


def listing(path: Path) -> list[dict[str, Any]]:
    """Every key without its bytes, oldest first (the CLI's table)."""
    rows = [
        {"key_id": k, **{f: v for f, v in e.items() if f != "key"}} for k, e in _read(path).items()
    ]
    return sorted(rows, key=lambda r: (r["camera_id"], r["issued_at"]))


class CameraKeys:
    """The running hub's read-only view, reloaded when the file changes (checked per face
    message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._keyed: set[str] = set()
        self._refresh()

    def _refresh(self) -> None:
        # The bytes, not (mtime, inode): two edits within one timestamp tick can reuse the
        # freed inode and show the same mtime (seen in the tests), and a revocation must not be
        # missed. The file is a few hundred bytes per key: one read per message is microseconds.
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._raw, self._keys, self._keyed = None, {}, set()
            return
        if raw == self._raw:
            return
        self._keys = _parse(self.path, raw)
        self._keyed = {e["camera_id"] for e in self._keys.values()}
        self._raw = raw

    def keyed(self, camera_id: str) -> bool:
        """Was a key ever issued for this camera (then its plain face tracks are refused)."""
        self._refresh()
        return camera_id in self._keyed

    def lookup(self, camera_id: str, key_id: str) -> CameraKey:
        """The active key ``key_id`` of ``camera_id``; ``PayloadError`` with a countable reason
        (``unknown_key``, ``key_camera_mismatch``, ``key_retired``, ``key_revoked``)."""
        self._refresh()
        entry = self._keys.get(key_id)
        if entry is None:
            raise m.PayloadError("unknown_key", f"no key {key_id} on this hub")
        if entry["camera_id"] != camera_id:
            raise m.PayloadError("key_camera_mismatch", f"key {key_id} is not {camera_id}'s")
        if entry["state"] != "active":
            raise m.PayloadError(f"key_{entry['state']}", f"key {key_id} of {camera_id}")
        return CameraKey(key_id, camera_id, base64.b64decode(entry["key"]))
