"""The chain room's record of chain-wide customers and peer stores (migration 0014).

Kept apart from ``hub.chain.customers`` (which seals, opens and applies the downlink) so the
erasure (``hub.privacy.erasure``) can ask this room to forget a customer without an import
cycle: erasure imports this, ``customers`` imports erasure.
"""

from __future__ import annotations

import sqlite3

from hub.bus import chain_rows


def forget_customer(
    conn: sqlite3.Connection, customer_id: str, now: float, *, request_up: bool
) -> bool:
    """Inside the erasure's transaction: forget a chain customer here; True if they were one.

    ``request_up``: the erasure began in this store, so the request for every other store is
    queued (``chain_erasures``, sent by the feed's next tick); an erasure ordered by the
    central office does not send one back.
    """
    row = conn.execute(
        "SELECT chain_ref FROM chain_customers WHERE customer_id=?", (customer_id,)
    ).fetchone()
    conn.execute("DELETE FROM chain_customers WHERE customer_id=?", (customer_id,))
    conn.execute("DELETE FROM chain_sealed WHERE customer_id=?", (customer_id,))
    if row is not None:  # her templates and membership, sent or not, leave the outbox
        chain_rows.forget_customer_rows(conn, row[0])
    if row is not None and request_up:
        conn.execute(
            "INSERT OR REPLACE INTO chain_erasures(chain_ref, erased_at) VALUES (?, ?)",
            (row[0], now),
        )
    return row is not None


def chain_entry(conn: sqlite3.Connection, customer_id: str) -> tuple[str, str] | None:
    """(chain_ref, origin store) of a chain customer here; None if not one."""
    row = conn.execute(
        "SELECT chain_ref, origin_store FROM chain_customers WHERE customer_id=?", (customer_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def customer_of(conn: sqlite3.Connection, chain_ref: str) -> str | None:
    row = conn.execute(
        "SELECT customer_id FROM chain_customers WHERE chain_ref=?", (chain_ref,)
    ).fetchone()
    return None if row is None else str(row[0])


def customer_data(conn: sqlite3.Connection, customer_id: str) -> dict[str, object]:
    """What the chain room holds about one person (right of access)."""
    row = conn.execute(
        "SELECT origin_store, revision, received_at FROM chain_customers WHERE customer_id=?",
        (customer_id,),
    ).fetchone()
    sealed = conn.execute(
        "SELECT target_store, sealed_at FROM chain_sealed WHERE customer_id=? ORDER BY 1",
        (customer_id,),
    ).fetchall()
    return {
        "chain_customer": None if row is None else dict(zip(("origin_store", "revision",
                                                             "received_at"), row, strict=True)),
        "sealed_for_stores": [str(r[0]) for r in sealed],
    }  # fmt: skip
