"""Chain messages about one chain customer, forgotten from the outbox at their erasure.

The hub's outbox keeps sent rows 7 days (``chain resend``). A chain customer's rows there
carry their random chain reference and, in ``chain_member``, their loyalty id: an erasure
must not leave them behind, nor send an unsent one after it. Only this room writes the
``outbox`` table, so the chain room asks here (``hub.chain.members.forget_customer``), inside
the erasure's transaction. The erasure request that follows carries only the reference.
"""

from __future__ import annotations

import sqlite3

import paho.mqtt.client as mqtt

from storesense.topics import Topics


def forget_customer_rows(conn: sqlite3.Connection, chain_ref: str) -> int:
    """Inside a write transaction: delete the SENT chain rows about ``chain_ref``; returns
    how many. Matched on the exact JSON field the chain models write.

    Only sent rows: an unsent one may be in flight (published, PUBACK pending), and deleting
    it would free its ``outbox_id`` for the next row (``INTEGER PRIMARY KEY`` reuses the
    highest), which that PUBACK would then mark sent unpublished (measured: the erasure's
    own retained-alert clears were lost that way). An unsent row goes out in a moment, ahead
    of the erasure request queued behind it, and stays until the sent rows' purge (7 days).
    """
    marker = f'"chain_ref":"{chain_ref}"'.encode()
    pattern = Topics.any_store_chain
    rows = conn.execute(
        "SELECT outbox_id, topic FROM outbox WHERE sent_at IS NOT NULL AND instr(payload, ?) > 0",
        (marker,),
    ).fetchall()
    gone = [(r[0],) for r in rows if mqtt.topic_matches_sub(pattern, r[1])]
    conn.executemany("DELETE FROM outbox WHERE outbox_id=?", gone)
    return len(gone)
