"""The keyed hash chain's primitives: the audit key file and the two MACs of a row.

They live in the store, below ``hub.privacy.audit`` which appends, redacts and verifies with
them, because migration 0003 must chain the rows older releases wrote without a chain, and a
migration may not import a room (the rooms import the store, never the reverse). The rules
of the chain itself are explained in ``hub.privacy.audit``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from pathlib import Path

GENESIS = "0" * 64
KEY_BYTES = 32

# key file path (or "memory:<id>") -> key; a process reads each key file once
KEYS: dict[str, bytes] = {}


class AuditKeyError(RuntimeError):
    pass


def audit_key_path(db_path: Path) -> Path:
    """``<home>/secrets/audit.key`` for the hub database at ``db_path``."""
    return db_path.parent / "secrets" / "audit.key"


def key_path_for(conn: sqlite3.Connection) -> Path | None:
    """The audit key beside this connection's database; None for an in-memory database."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return audit_key_path(Path(row[2])) if row[2] else None
    return None


def key(conn: sqlite3.Connection) -> bytes:
    """The audit key for this database, made (0600, fsync'd) the first time it is needed."""
    path = key_path_for(conn)
    cache_key = str(path) if path else f"memory:{id(conn)}"
    if cache_key in KEYS:
        return KEYS[cache_key]
    if path is None:
        value = os.urandom(KEY_BYTES)  # an in-memory log lives and dies with this process
    elif path.exists():
        value = path.read_bytes()
        if len(value) != KEY_BYTES:
            raise AuditKeyError(f"{path}: audit key must be {KEY_BYTES} bytes, found {len(value)}")
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = os.urandom(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            value = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(value)
                fh.flush()
                os.fsync(fh.fileno())
    KEYS[cache_key] = value
    return value


def forget_key(path: Path) -> None:
    """Drop this process's cached copy of the key file at ``path``: the file was just written
    or removed (a restore installing keys, or taking back the ones that did not fit)."""
    KEYS.pop(str(path), None)


def mac(k: bytes, parts: list[object]) -> str:
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(k, text.encode(), hashlib.sha256).hexdigest()


def content_mac(k: bytes, customer_id: str | None, detail: str) -> str:
    return mac(k, ["content", customer_id, detail])


def row_mac(k: bytes, audit_id: int, prev: str, at: float, actor: str, action: str,
            content: str) -> str:  # fmt: skip
    return mac(k, ["row", audit_id, prev, at, actor, action, content])


def redaction_mac(k: bytes, audit_id: int, row_mac_: str, tombstone_id: int | None) -> str:
    """The erasure's seal on a redacted row: only a holder of the key can mark a row redacted.

    It binds the row (its id and its chain MAC, so a seal cannot be moved to another row) to
    the erasure row that records why (``tombstone_id``). ``None`` is the seal migration 0010
    put on redactions made before seals existed, which name no erasure row (see there).
    """
    return mac(k, ["redaction", audit_id, row_mac_, tombstone_id])


def chain_existing(conn: sqlite3.Connection) -> int:
    """Inside a write transaction: chain rows written before the log was chained (schema < 3).

    They were unprotected until now; from here on a change to them is detected.
    """
    k = key(conn)
    prev = GENESIS
    n = 0
    for row in conn.execute(
        "SELECT audit_id, at, actor, action, customer_id, detail, row_mac FROM audit "
        "ORDER BY audit_id"
    ).fetchall():
        if row[6] is not None:
            prev = row[6]
            continue
        content = content_mac(k, row[4], row[5])
        new = row_mac(k, row[0], prev, row[1], row[2], row[3], content)
        conn.execute(
            "UPDATE audit SET content_mac=?, prev_mac=?, row_mac=? WHERE audit_id=?",
            (content, prev, new, row[0]),
        )
        prev = new
        n += 1
    return n
