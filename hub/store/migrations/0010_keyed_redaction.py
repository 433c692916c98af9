"""Schema 10: a redaction is sealed under the audit key, so only the erasure can make one.

Before this, ``redacted = 1`` with the customer and detail blanked was accepted by the verifier
on its face: anyone with only the database file could blank any row and the chain still
verified. Now each redacted row carries ``redaction_mac`` (``hub.store.chain.redaction_mac``
over the row's id, its chain MAC and ``redacted_by``, the id of the erasure row that is the
tombstone), and the verifier refuses a redaction without a valid seal.

Redactions already on file cannot be told apart from a forgery made before this upgrade: the
old format recorded nothing a forger could not write. They are carried forward honestly: a row
whose chain MAC still verifies under the key, with its content blanked, gets a *legacy* seal
(``redacted_by`` NULL); the verifier accepts it, counts it apart and ``storesense audit
verify`` says how many there are, so a reader knows those redactions rest on the file as it
was at the upgrade, not on an erasure's seal. A redacted row that does not verify, or
that no later erasure row follows (an erasure always writes its tombstone after the rows it
redacts), is left unsealed, and the verifier names it.
"""

from __future__ import annotations

import hmac
import sqlite3

from hub.store import chain

COLUMNS = (("redacted_by", "INTEGER"), ("redaction_mac", "TEXT"))


def apply(conn: sqlite3.Connection) -> None:
    have = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
    for name, decl in COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE audit ADD COLUMN {name} {decl}")
    rows = conn.execute(
        "SELECT audit_id, at, actor, action, content_mac, prev_mac, row_mac FROM audit "
        "WHERE redacted != 0 AND customer_id IS NULL AND detail = '' AND redaction_mac IS NULL "
        "AND EXISTS (SELECT 1 FROM audit e WHERE e.action = 'erase' "
        "AND e.audit_id > audit.audit_id) "
        "ORDER BY audit_id"
    ).fetchall()
    if not rows:
        return  # no key is made for a log with nothing to seal
    k = chain.key(conn)
    for aid, at, actor, action, content, prev, row_mac in rows:
        expected = chain.row_mac(k, aid, prev or "", at, actor, action, content or "")
        if row_mac is None or not hmac.compare_digest(row_mac, expected):
            continue  # not a row of this key's chain: left for the verifier to name
        conn.execute(
            "UPDATE audit SET redaction_mac=? WHERE audit_id=?",
            (chain.redaction_mac(k, aid, row_mac, None), aid),
        )
