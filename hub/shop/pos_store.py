"""Purchase data on the hub: the one write path for invoices, and the read queries.

POS customers need not be enrolled (no face), so purchases live in their own tables keyed by
the POS customer id, the same id space as ``customers.customer_id``. An invoice is immutable
once stored: re-importing it (same content hash) is a no-op, a different content under the
same invoice number is a conflict, never a silent overwrite. Times are the store's local wall
clock (``YYYY-MM-DD HH:MM:SS``), which is what a till prints and what day reports group by.

Floor analytics (sales per zone) call ``revenue_by_category`` / ``revenue_by_category_range``
/ ``revenue_by_category_hourly``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from hub.shop.categories import NON_PRODUCT, Categorizer
from storesense.pos_csv import TIME_FMT, Invoice, Line  # the parsed receipt, shared

__all__ = ["TIME_FMT", "Invoice", "Line"]  # and the functions below

# The tables are defined in hub/store/migrations (0001_baseline.sql); this room owns them.


def existing_hash(conn: sqlite3.Connection, invoice_no: str) -> str | None:
    row = conn.execute(
        "SELECT content_hash FROM pos_invoices WHERE invoice_no = ?", (invoice_no,)
    ).fetchone()
    return None if row is None else str(row[0])


def insert_invoices(
    conn: sqlite3.Connection, invoices: Iterable[Invoice], categorize: Categorizer, source: str
) -> int:
    """Store new invoices and upsert their products; call inside a ``db.write`` transaction
    after checking ``existing_hash``. Returns the number of lines written."""
    now = time.time()
    inv_rows, line_rows, products = [], [], {}
    for inv in invoices:
        at = inv.invoiced_at.strftime(TIME_FMT)
        inv_rows.append(
            (
                inv.invoice_no,
                inv.customer_id,
                at,
                at[:10],
                inv.country,
                int(inv.cancellation),
                inv.total,
                len(inv.lines),
                inv.content_hash(),
                source,
                now,
            )
        )
        for i, ln in enumerate(inv.lines):
            line_rows.append(
                (inv.invoice_no, i, ln.stock_code, ln.description, ln.quantity, ln.unit_price)
            )
            if ln.description or ln.stock_code not in products:
                products[ln.stock_code] = ln.description  # latest non-empty description wins
    conn.executemany("INSERT INTO pos_invoices VALUES (?,?,?,?,?,?,?,?,?,?,?)", inv_rows)
    conn.executemany("INSERT INTO pos_lines VALUES (?,?,?,?,?,?)", line_rows)
    conn.executemany(
        "INSERT INTO pos_products(stock_code, description, category, updated_at) "
        "VALUES (?,?,?,?) ON CONFLICT(stock_code) DO UPDATE SET "
        "description = CASE WHEN excluded.description <> '' THEN excluded.description "
        "ELSE description END, category = excluded.category, updated_at = excluded.updated_at",
        [(code, d, categorize(code, d), now) for code, d in products.items()],
    )
    return len(line_rows)


def recategorize(conn: sqlite3.Connection, categorize: Categorizer) -> int:
    """Re-derive every product's category after the rules YAML changed; returns changes."""
    rows = conn.execute("SELECT stock_code, description, category FROM pos_products").fetchall()
    changed = [(new, code) for code, desc, old in rows if (new := categorize(code, desc)) != old]
    conn.executemany("UPDATE pos_products SET category = ? WHERE stock_code = ?", changed)
    return len(changed)


# -- revenue per category (floor analytics: sales per zone) ----------------------------------


def revenue_by_category_range(
    conn: sqlite3.Connection, first_day: date, last_day: date, *, include_non_product: bool = False
) -> dict[str, float]:
    """Net revenue (cancellations subtract) per product category over the days
    ``first_day``..``last_day`` inclusive, store-local dates. Only customer-attributed sales
    are imported, so anonymous till sales are not in these figures (docs/pos.md)."""
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")
    rows = conn.execute(
        "SELECT p.category, SUM(l.quantity * l.unit_price) FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.day BETWEEN ? AND ? GROUP BY p.category",
        (first_day.isoformat(), last_day.isoformat()),
    ).fetchall()
    return {cat: round(v, 2) for cat, v in rows if include_non_product or cat != NON_PRODUCT}


def revenue_by_category(
    conn: sqlite3.Connection, day: date, *, include_non_product: bool = False
) -> dict[str, float]:
    """Net revenue per category on one store-local day."""
    return revenue_by_category_range(conn, day, day, include_non_product=include_non_product)


def revenue_by_category_hourly(
    conn: sqlite3.Connection, day: date, *, include_non_product: bool = False
) -> dict[int, dict[str, float]]:
    """``{hour: {category: net revenue}}`` for one day, to join with hourly occupancy."""
    rows = conn.execute(
        "SELECT CAST(substr(i.invoiced_at, 12, 2) AS INTEGER), p.category, "
        "SUM(l.quantity * l.unit_price) FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.day = ? GROUP BY 1, 2",
        (day.isoformat(),),
    ).fetchall()
    out: dict[int, dict[str, float]] = {}
    for hour, cat, v in rows:
        if include_non_product or cat != NON_PRODUCT:
            out.setdefault(int(hour), {})[cat] = round(v, 2)
    return out


# -- per-customer reads (customer card, loyalty) ----------------------------------------------


def customer_invoices(
    conn: sqlite3.Connection, customer_id: str, since: datetime | None = None
) -> list[sqlite3.Row]:
    """A customer's invoices, oldest first (optionally only those at or after ``since``)."""
    lo = since.strftime(TIME_FMT) if since else ""
    return conn.execute(
        "SELECT invoice_no, invoiced_at, cancellation, total, n_lines FROM pos_invoices "
        "WHERE customer_id = ? AND invoiced_at >= ? ORDER BY invoiced_at, invoice_no",
        (customer_id, lo),
    ).fetchall()


def invoice_lines(conn: sqlite3.Connection, invoice_no: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT l.stock_code, l.description, l.quantity, l.unit_price, "
        "COALESCE(p.category, 'other') AS category FROM pos_lines l "
        "LEFT JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE l.invoice_no = ? ORDER BY l.line_no",
        (invoice_no,),
    ).fetchall()


def category_spend(
    conn: sqlite3.Connection, customer_id: str, since: datetime, until: datetime
) -> dict[str, float]:
    """Net spend per product category in ``[since, until)``, fees excluded."""
    rows = conn.execute(
        "SELECT p.category, SUM(l.quantity * l.unit_price) FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.customer_id = ? AND i.invoiced_at >= ? AND i.invoiced_at < ? "
        "AND p.category <> ? GROUP BY p.category",
        (customer_id, since.strftime(TIME_FMT), until.strftime(TIME_FMT), NON_PRODUCT),
    ).fetchall()
    return {cat: round(v, 2) for cat, v in rows}


def product_info(conn: sqlite3.Connection, codes: list[str]) -> dict[str, tuple[str, str]]:
    """``{stock_code: (description, category)}`` for the given codes."""
    if not codes:
        return {}
    marks = ",".join("?" * len(codes))
    rows = conn.execute(
        f"SELECT stock_code, description, category FROM pos_products WHERE stock_code IN ({marks})",
        codes,
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def set_birthday(conn: sqlite3.Connection, customer_id: str, month: int, day: int) -> None:
    """Record (or change) a customer's birthday; the year is deliberately not kept."""
    date(2000, month, day)  # raises ValueError for 31 April etc. (2000: 29 Feb is allowed)
    conn.execute(
        "INSERT INTO pos_birthdays VALUES (?,?,?) ON CONFLICT(customer_id) "
        "DO UPDATE SET month = excluded.month, day = excluded.day",
        (customer_id, month, day),
    )


def get_birthday(conn: sqlite3.Connection, customer_id: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT month, day FROM pos_birthdays WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def customer_data(conn: sqlite3.Connection, customer_id: str) -> dict[str, Any]:
    """One person's ``purchases`` (one entry per receipt line, oldest first), ``birthday``
    (``[{month, day}]`` or ``[]``) and stored ``suggestions`` for the right of access
    (``hub.privacy.export``); the mirror of ``forget_customer_purchases``.

    Here rather than in ``hub.shop.suggest``, which also reads ``suggestions``: the export
    then does not load numpy and scipy for one primary-key read.
    """
    cid = (customer_id,)
    purchases = conn.execute(
        "SELECT i.invoice_no, i.invoiced_at, i.country, i.cancellation, l.stock_code, "
        "l.description, l.quantity, l.unit_price FROM pos_invoices i "
        "JOIN pos_lines l USING (invoice_no) WHERE i.customer_id=? "
        "ORDER BY i.invoiced_at, i.invoice_no, l.line_no",
        cid,
    ).fetchall()
    birthday = get_birthday(conn, customer_id)
    suggestions = conn.execute(
        "SELECT list, rank, stock_code FROM suggestions WHERE customer_id=? ORDER BY list, rank",
        cid,
    ).fetchall()
    return {
        "purchases": [dict(r) for r in purchases],
        "birthday": [] if birthday is None else [{"month": birthday[0], "day": birthday[1]}],
        "suggestions": [dict(r) for r in suggestions],
    }


def forget_customer_purchases(conn: sqlite3.Connection, customer_id: str) -> int:
    """Erasure for purchase data (called by ``hub.privacy.erasure``, inside its transaction).

    Receipts stay for the store's revenue figures but each gets a random owner id that leads
    to nobody; birthday and suggestions are deleted. ``content_hash`` is left as it was, so
    re-importing an old POS export finds the receipts already there and does not re-link
    them. Returns the receipts unlinked.
    """
    n = conn.execute(
        "UPDATE pos_invoices SET customer_id = 'erased-' || lower(hex(randomblob(8))) "
        "WHERE customer_id = ?",
        (customer_id,),
    ).rowcount
    conn.execute("DELETE FROM pos_birthdays WHERE customer_id = ?", (customer_id,))
    conn.execute("DELETE FROM suggestions WHERE customer_id = ?", (customer_id,))
    return int(n)


def last_day(conn: sqlite3.Connection) -> date | None:
    """The most recent day with any imported sale."""
    row = conn.execute("SELECT MAX(day) FROM pos_invoices").fetchone()
    return date.fromisoformat(row[0]) if row and row[0] else None


def receipt_count(conn: sqlite3.Connection, first_day: date, last_day: date) -> int:
    """Invoices (not cancellations) on the store-local days ``first_day``..``last_day``: the
    day's number of sales for the chain's daily summary (a count, no customer)."""
    row = conn.execute(
        "SELECT count(*) FROM pos_invoices WHERE day BETWEEN ? AND ? AND cancellation = 0",
        (first_day.isoformat(), last_day.isoformat()),
    ).fetchone()
    return int(row[0]) if row else 0
