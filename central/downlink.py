"""The office's outbox for the downlink (``downlink`` table, central/migrations/0003).

Written in the transaction that decides a message; ``central run`` publishes each to
``chain/v1/<store>/down/<kind>`` QoS 1 and marks it sent on the broker's PUBACK
(``CentralService._send_down``). ``chain_ref`` marks the rows about one chain customer, which
their erasure deletes (undelivered templates and purchases are withdrawn with them).
"""

from __future__ import annotations

import psycopg

from storesense import chain_messages as cm


def queue(conn: psycopg.Connection, msg: cm.DownMessage, *, chain_ref: str | None = None) -> None:
    """In the caller's transaction; a message made twice (same id) is one row."""
    conn.execute(
        "INSERT INTO downlink(store_id, kind, msg_id, chain_ref, payload) "
        "VALUES (%s,%s,%s,%s,%s) ON CONFLICT (msg_id) DO NOTHING",
        (msg.store_id, msg.kind, msg.msg_id, chain_ref, msg.to_bytes()),
    )
