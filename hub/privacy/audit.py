"""The audit log: every enrolment, match, alert, claim, profile view, export and erasure, in a
keyed hash chain so that a changed, inserted or deleted row is detectable.

Why a *keyed* chain: a plain SHA-256 chain only catches careless edits, since whoever can write
the SQLite file can recompute every hash. Each row here carries an HMAC-SHA256 (key in
``<home>/secrets/audit.key``, 0600, never in the database) over its own fields and the previous
row's MAC, so rewriting history needs the key as well as the file.

Why two MACs per row: erasure must leave "only a minimal tombstone", yet deleting or rewriting a
row would break the chain. So personal fields (customer id, detail) are MAC'd separately into
``content_mac``, and the chain MAC covers that digest. Erasure *redacts* a row (nulls the
personal fields, sets ``redacted``): the chain still verifies from the stored digest, and what
is left says only that someone did something at a time. The erasure row itself is the
tombstone that keeps the customer id.

Retention deletes the oldest rows; the last deleted row's id and MAC become the chain's
*anchor* in ``meta``, itself MAC'd, so a prefix cut by hand is detected too. What a hash chain
cannot detect alone is the newest rows being cut off: ``verify`` reports the head (id and MAC)
so it can be noted outside the hub, and the nightly retention report records it.

Every append happens inside the caller's ``BEGIN IMMEDIATE`` transaction, so rows are chained
in commit order by whichever process (hub, web app, CLI) writes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from hub.store import db

VIEW_PROFILE = "view_profile"
GENESIS = "0" * 64
ANCHOR_KEY = "audit_anchor"
KEY_BYTES = 32

# Added to the audit table by hub.store.db's migration to schema 3 (and present in new files).
CHAIN_COLUMNS = (
    ("content_mac", "TEXT"),
    ("prev_mac", "TEXT"),
    ("row_mac", "TEXT"),
    ("redacted", "INTEGER NOT NULL DEFAULT 0"),
)

_keys: dict[str, bytes] = {}


class AuditKeyError(RuntimeError):
    pass


def key_path_for(conn: sqlite3.Connection) -> Path | None:
    """``<home>/secrets/audit.key`` beside the hub database; None for an in-memory database."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return Path(row[2]).parent / "secrets" / "audit.key" if row[2] else None
    return None


def _key(conn: sqlite3.Connection) -> bytes:
    path = key_path_for(conn)
    cache_key = str(path) if path else f"memory:{id(conn)}"
    if cache_key in _keys:
        return _keys[cache_key]
    if path is None:
        key = os.urandom(KEY_BYTES)  # an in-memory log lives and dies with this process
    elif path.exists():
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise AuditKeyError(f"{path}: audit key must be {KEY_BYTES} bytes, found {len(key)}")
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.urandom(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
                fh.flush()
                os.fsync(fh.fileno())
    _keys[cache_key] = key
    return key


def _mac(key: bytes, parts: list[object]) -> str:
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _content_mac(key: bytes, customer_id: str | None, detail: str) -> str:
    return _mac(key, ["content", customer_id, detail])


def _row_mac(key: bytes, audit_id: int, prev: str, at: float, actor: str, action: str,
             content_mac: str) -> str:  # fmt: skip
    return _mac(key, ["row", audit_id, prev, at, actor, action, content_mac])


def _anchor(conn: sqlite3.Connection, key: bytes) -> tuple[int, str] | str:
    """(last purged id, its MAC), or an error text if the stored anchor is not genuine."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (ANCHOR_KEY,)).fetchone()
    if row is None:
        return 0, GENESIS
    try:
        data = json.loads(row[0])
        audit_id, mac, seal = int(data["id"]), str(data["mac"]), str(data["seal"])
    except (ValueError, KeyError, TypeError):
        return "the chain anchor in meta is unreadable"
    if not hmac.compare_digest(seal, _mac(key, ["anchor", audit_id, mac])):
        return "the chain anchor in meta was not written by the retention job"
    return audit_id, mac


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    customer_id: str | None = None,
    detail: str = "",
    at: float | None = None,
) -> int:
    """Chain one row onto the log; call inside a ``db.write`` transaction. Returns its id."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the write transaction it records")
    key = _key(conn)
    at = time.time() if at is None else float(at)
    last = conn.execute(
        "SELECT audit_id, row_mac FROM audit ORDER BY audit_id DESC LIMIT 1"
    ).fetchone()
    if last is not None:
        prev_id, prev = int(last[0]), str(last[1])
    else:
        anchor = _anchor(conn, key)
        prev_id, prev = anchor if isinstance(anchor, tuple) else (0, GENESIS)
    audit_id = prev_id + 1
    content = _content_mac(key, customer_id, detail)
    conn.execute(
        "INSERT INTO audit(audit_id, at, actor, action, customer_id, detail, content_mac, "
        "prev_mac, row_mac) VALUES (?,?,?,?,?,?,?,?,?)",
        (audit_id, at, actor, action, customer_id, detail, content, prev,
         _row_mac(key, audit_id, prev, at, actor, action, content)),
    )  # fmt: skip
    return audit_id


def record_profile_view(
    conn: sqlite3.Connection, *, actor: str, customer_id: str, reason: str, at: float | None = None
) -> None:
    """Every path that shows a customer card (phone app, manager page, ``pos card``, the demo's
    phones) records the view through here, so the log is complete whatever the front end."""
    if not reason.strip():
        raise ValueError("a profile view needs a reason (e.g. the claimed alert)")
    with db.write(conn):
        append(conn, actor=actor, action=VIEW_PROFILE, customer_id=customer_id, detail=reason,
               at=at)  # fmt: skip


def redact_customer(conn: sqlite3.Connection, customer_id: str) -> int:
    """Inside the erasure's transaction: strip the customer from earlier rows; returns how many.

    The chain still verifies (``content_mac`` is kept); the rows keep who did what and when.
    """
    return conn.execute(
        "UPDATE audit SET customer_id=NULL, detail='', redacted=1 WHERE customer_id=?",
        (customer_id,),
    ).rowcount


def purge_before(conn: sqlite3.Connection, cutoff: float) -> int:
    """Inside a write transaction: delete the oldest rows written before ``cutoff``.

    Only a prefix of the chain goes (rows are deleted in id order up to the first one that is
    young enough), and the last deleted row becomes the sealed anchor.
    """
    key = _key(conn)
    keep = conn.execute("SELECT min(audit_id) FROM audit WHERE at >= ?", (cutoff,)).fetchone()[0]
    cond, args = ("audit_id < ?", (keep,)) if keep is not None else ("1", ())
    last = conn.execute(
        f"SELECT audit_id, row_mac FROM audit WHERE {cond} ORDER BY audit_id DESC LIMIT 1", args
    ).fetchone()
    if last is None:
        return 0
    gone = conn.execute(f"DELETE FROM audit WHERE {cond}", args).rowcount
    audit_id, mac = int(last[0]), str(last[1])
    seal = _mac(key, ["anchor", audit_id, mac])
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
        "value=excluded.value",
        (ANCHOR_KEY, json.dumps({"id": audit_id, "mac": mac, "seal": seal})),
    )
    return gone


def chain_existing(conn: sqlite3.Connection) -> int:
    """Inside a write transaction: chain rows written before the log was chained (schema < 3).

    They were unprotected until now; from here on a change to them is detected.
    """
    key = _key(conn)
    prev = GENESIS
    n = 0
    for row in conn.execute(
        "SELECT audit_id, at, actor, action, customer_id, detail, row_mac FROM audit "
        "ORDER BY audit_id"
    ).fetchall():
        if row["row_mac"] is not None:
            prev = row["row_mac"]
            continue
        content = _content_mac(key, row["customer_id"], row["detail"])
        mac = _row_mac(key, row["audit_id"], prev, row["at"], row["actor"], row["action"], content)
        conn.execute(
            "UPDATE audit SET content_mac=?, prev_mac=?, row_mac=? WHERE audit_id=?",
            (content, prev, mac, row["audit_id"]),
        )
        prev = mac
        n += 1
    return n


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_id: int | None
    head_mac: str | None
    broken_at: int | None = None  # the first audit_id that does not verify
    reason: str = ""


def verify(conn: sqlite3.Connection) -> ChainReport:
    """Walk the whole chain; stop at the first row that does not verify and say why."""
    key = _key(conn)
    anchor = _anchor(conn, key)
    if isinstance(anchor, str):
        return ChainReport(False, 0, None, None, None, anchor)
    expect_id, prev = anchor
    n = 0
    for row in conn.execute(
        "SELECT audit_id, at, actor, action, customer_id, detail, content_mac, prev_mac, "
        "row_mac, redacted FROM audit ORDER BY audit_id"
    ):
        aid = int(row["audit_id"])
        why = ""
        if aid != expect_id + 1:
            why = f"rows {expect_id + 1}..{aid - 1} are missing"
        elif row["prev_mac"] != prev:
            why = "it does not follow the row before it"
        elif row["redacted"]:
            if row["customer_id"] is not None or row["detail"]:
                why = "a redacted row carries content"
        elif not hmac.compare_digest(
            row["content_mac"] or "", _content_mac(key, row["customer_id"], row["detail"])
        ):
            why = "its customer or detail was changed"
        if not why:
            mac = _row_mac(key, aid, prev, row["at"], row["actor"], row["action"],
                           row["content_mac"] or "")  # fmt: skip
            if not hmac.compare_digest(row["row_mac"] or "", mac):
                why = "its time, actor or action was changed"
        if why:
            return ChainReport(False, n, expect_id or None, prev, aid, why)
        expect_id, prev = aid, row["row_mac"]
        n += 1
    return ChainReport(True, n, expect_id or None, prev if n or expect_id else None)
