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
tombstone that keeps the customer id. A redaction is itself keyed: each redacted row carries
``redaction_mac``, an HMAC over its id, its chain MAC and the id of that tombstone
(``redacted_by``), so whoever has only the database file cannot blank a row and call it
redacted — the verifier names such a row. Redactions from before schema 10 carry a *legacy*
seal (migration 0010 explains why that is the honest most it can do); ``verify`` counts them.

Retention deletes the oldest rows; the last deleted row's id and MAC become the chain's
*anchor* in ``meta``, itself MAC'd, so a prefix cut by hand is detected too. What a hash chain
cannot detect alone is the newest rows being cut off: ``verify`` reports the head (id and MAC)
so it can be noted outside the hub, and the nightly retention report records it.

Every append happens inside the caller's ``BEGIN IMMEDIATE`` transaction, so rows are chained
in commit order by whichever process (hub, web app, CLI) writes them.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from dataclasses import dataclass

from hub.store import chain, db
from hub.store.chain import GENESIS

VIEW_PROFILE = "view_profile"
ERASE = "erase"
SHOW_PHOTO = "show_photo"
WITHDRAW_PHOTO_CONSENT = "withdraw_photo_consent"
ANCHOR_KEY = "audit_anchor"

# The key file, the MACs and the chaining of pre-chain rows live in hub.store.chain, because
# the schema-3 migration chains the rows older releases wrote. ``_keys`` is that cache.
_keys = chain.KEYS
_key = chain.key
_mac = chain.mac
_content_mac = chain.content_mac
_row_mac = chain.row_mac


def _anchor(conn: sqlite3.Connection, key: bytes) -> tuple[int, str] | str:
    """(last purged id, its MAC), or an error text if the stored anchor is not genuine."""
    stored = db.get_meta(conn, ANCHOR_KEY)
    if stored is None:
        return 0, GENESIS
    try:
        data = json.loads(stored)
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


def record_photo_display(
    conn: sqlite3.Connection, *, actor: str, customer_id: str, alert_id: str
) -> None:
    """Every time the hub hands a phone a customer's enrolment photo ("photo shown to staff
    at arrival" consent), one row: who, which customer, for which alert."""
    with db.write(conn):
        append(conn, actor=actor, action=SHOW_PHOTO, customer_id=customer_id,
               detail=f"arrival photo for alert {alert_id}")  # fmt: skip


def record_erasure(
    conn: sqlite3.Connection, customer_id: str, *, actor: str, detail: str, at: float
) -> int:
    """Inside the erasure's transaction: append the tombstone row and redact every earlier row
    about the customer under the key, each sealed with the tombstone's id; returns how many.

    The chain still verifies (``content_mac`` is kept); the rows keep who did what and when.
    The tombstone's detail ends with the count, so it says what the erasure redacted. This is
    the only code that writes a redaction: the seal needs the audit key.
    """
    earlier = conn.execute(
        "SELECT audit_id, row_mac FROM audit WHERE customer_id=? ORDER BY audit_id",
        (customer_id,),
    ).fetchall()
    tombstone = append(conn, at=at, actor=actor, action=ERASE, customer_id=customer_id,
                       detail=f"{detail}; audit rows redacted: {len(earlier)}")  # fmt: skip
    key = _key(conn)
    conn.executemany(
        "UPDATE audit SET customer_id=NULL, detail='', redacted=1, redacted_by=?, "
        "redaction_mac=? WHERE audit_id=?",
        [(tombstone, chain.redaction_mac(key, aid, mac, tombstone), aid) for aid, mac in earlier],
    )
    return len(earlier)


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
    db.put_meta(conn, ANCHOR_KEY, json.dumps({"id": audit_id, "mac": mac, "seal": seal}))
    return gone


def newest_at(conn: sqlite3.Connection) -> float | None:
    """When the newest row was written (None: an empty log)."""
    row = conn.execute("SELECT max(at) FROM audit").fetchone()
    return None if row[0] is None else float(row[0])


def erased_since(conn: sqlite3.Connection, at: float | None) -> list[str]:
    """The customers whose erasure tombstone is newer than ``at`` (all of them for None):
    what a restore of an older backup would bring back."""
    rows = conn.execute(
        "SELECT DISTINCT customer_id FROM audit WHERE action=? AND customer_id IS NOT NULL "
        "AND at > ? ORDER BY customer_id",
        (ERASE, -1.0 if at is None else at),
    )
    return [str(r[0]) for r in rows]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_id: int | None
    head_mac: str | None
    broken_at: int | None = None  # the first audit_id that does not verify
    reason: str = ""
    legacy_redactions: int = 0  # redactions sealed by migration 0010, not by an erasure


def _redaction_problem(conn: sqlite3.Connection, key: bytes, row: sqlite3.Row) -> str:
    """Why a row marked redacted is not an erasure's redaction ("" when it is one)."""
    if row["customer_id"] is not None or row["detail"]:
        return "a redacted row carries content"
    seal, by = row["redaction_mac"], row["redacted_by"]
    if seal is None:
        return "it is marked redacted without an erasure's seal (forged redaction)"
    want = chain.redaction_mac(key, int(row["audit_id"]), row["row_mac"] or "", by)
    if not hmac.compare_digest(seal, want):
        return "its redaction seal does not verify (forged redaction)"
    if by is not None:
        tomb = conn.execute("SELECT action FROM audit WHERE audit_id=?", (by,)).fetchone()
        if tomb is None or tomb[0] != ERASE or by <= int(row["audit_id"]):
            return f"its redaction names row {by}, which is not a later erasure"
    return ""


def verify(conn: sqlite3.Connection) -> ChainReport:
    """Walk the whole chain; stop at the first row that does not verify and say why."""
    key = _key(conn)
    anchor = _anchor(conn, key)
    if isinstance(anchor, str):
        return ChainReport(False, 0, None, None, None, anchor)
    expect_id, prev = anchor
    n = legacy = 0
    for row in conn.execute(
        "SELECT audit_id, at, actor, action, customer_id, detail, content_mac, prev_mac, "
        "row_mac, redacted, redacted_by, redaction_mac FROM audit ORDER BY audit_id"
    ):
        aid = int(row["audit_id"])
        why = ""
        if aid != expect_id + 1:
            why = f"rows {expect_id + 1}..{aid - 1} are missing"
        elif row["prev_mac"] != prev:
            why = "it does not follow the row before it"
        elif row["redacted"]:
            why = _redaction_problem(conn, key, row)
            legacy += not why and row["redacted_by"] is None
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
            return ChainReport(False, n, expect_id or None, prev, aid, why, legacy)
        expect_id, prev = aid, row["row_mac"]
        n += 1
    return ChainReport(True, n, expect_id or None, prev if n or expect_id else None, None, "",
                       legacy)  # fmt: skip
