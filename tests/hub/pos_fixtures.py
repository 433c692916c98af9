"""Helpers for the purchase-data tests: write invoices through the product's own write path."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from hub.shop.categories import default_rules
from hub.shop.pos_store import Invoice, Line, insert_invoices
from hub.store import db


def add_invoice(
    conn: sqlite3.Connection,
    invoice_no: str,
    customer_id: str,
    at: datetime,
    lines: list[tuple[str, str, int, float]],
) -> Invoice:
    """Store one invoice (lines: code, description, quantity, unit price); all-negative lines
    make it a cancellation, as the generic format and the webhook decide."""
    inv = Invoice(
        invoice_no,
        customer_id,
        at,
        "United Kingdom",
        all(q < 0 for _, _, q, _ in lines),
        [Line(c, d, q, p) for c, d, q, p in lines],
    )
    with db.write(conn):
        insert_invoices(conn, [inv], default_rules(), "test")
    return inv
