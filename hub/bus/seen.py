"""Inbound message ids whose effect has committed (the ``seen_messages`` table).

QoS 1 is at-least-once: every handler records the id in the transaction that applies the
message, so a re-delivery after a crash finds it here and has no second effect. The bus owns
the table; the handlers (alerts, floor) call these functions.
"""

from __future__ import annotations

import sqlite3


def already_seen(conn: sqlite3.Connection, msg_id: str) -> bool:
    """A cheap check before the work; the ``remember`` in the transaction is what decides."""
    row = conn.execute("SELECT 1 FROM seen_messages WHERE msg_id=?", (msg_id,)).fetchone()
    return row is not None


def remember(conn: sqlite3.Connection, msg_id: str, now: float) -> bool:
    """Inside a write transaction: True the first time a message id is seen, False after."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO seen_messages(msg_id, received_at) VALUES (?, ?)", (msg_id, now)
    )
    return cur.rowcount == 1


def forget_before(conn: sqlite3.Connection, cutoff: float) -> int:
    """Inside a write transaction: drop ids older than any re-delivery can be."""
    return conn.execute("DELETE FROM seen_messages WHERE received_at < ?", (cutoff,)).rowcount
