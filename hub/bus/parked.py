"""Writes the hub's worker could not commit because the database stayed locked, kept in a file
until they can be (``<home>/parked-writes.jsonl``).

Why: the worker acknowledges an MQTT message once it has handled it. When the write that
records a face message's effect (the seen id, a visit, an alert) fails because another writer
(a long ``pos import``, a CLI erasure, a backup check) holds the database past the wait, the
message was already consumed by the recogniser; acknowledged and dropped, the customer's alert
was simply lost. Not acknowledging it is no answer either: the broker sends a QoS 1 message
only once per session, and unacknowledged messages fill its in-flight window (20) until the
hub hears nothing at all, claims and web requests included.

So the decided effect (not the embedding: the recogniser has already voted; a parked entry
names a customer id, a camera, a track and times) is appended here and fsync'd before the
message is acknowledged, and the worker replays the file, in order, once the lock is free:
in the same process, or at the next start after a crash. Every entry carries an id that the
replay records in ``seen_messages`` in the same transaction, so a replay interrupted between
its commit and the file's removal has no second effect: exactly once.

The file is 0600 (made so, whatever the umask) and exists only while something is parked; a
torn last line (a crash mid-append) was never acknowledged, so the broker still has that
message.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "parked-writes.jsonl"


def parked_path(home: Path) -> Path:
    return home / FILE_NAME


class ParkedWrites:
    """The parked entries of one hub home, oldest first; only the worker thread uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn = 0  # lines a crash left half-written (never acknowledged: not lost)
        self._entries: list[dict[str, Any]] = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    self.torn += 1
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    self._entries.append(entry)
                else:
                    self.torn += 1
            if self.torn:
                log.warning("%s: %d torn line(s) skipped", path, self.torn)
        self._ids = {str(e["id"]) for e in self._entries}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def park(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` (JSON-able, with a string ``id``) and fsync before returning: the
        caller acknowledges the message only after this."""
        line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._entries.append(entry)
        self._ids.add(str(entry["id"]))

    def pending(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        """Every entry is committed: the file goes (its entries' ids are in seen_messages)."""
        self.path.unlink(missing_ok=True)
        self._entries.clear()
        self._ids.clear()
