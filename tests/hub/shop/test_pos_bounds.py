"""The POS bounds (storesense/pos_bounds.py), enforced alike by the webhook and the CSV import.

The two measured failures they end: a webhook quantity of 10^30 was an HTTP 500
(``OverflowError`` in SQLite), and a unit price of 1e308 × 10 was "sale of inf imported" with
the customer made Gold at a 12-month spend of ``null``. Real SQLite files throughout."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.shop.pos_import import ImportFailed, import_csv
from hub.shop.pos_webhook import WebhookRejected, ingest_webhook
from hub.store import db
from storesense import pos_bounds

HEADER = "invoice_no,invoiced_at,customer_id,sku,description,quantity,unit_price,country\n"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


def _tx(qty: Any = 2, price: Any = 2.55, at: str = "2024-03-01T10:15:00", n: int = 1) -> dict:
    line = {"sku": "85123A", "quantity": qty, "unit_price": price}
    return {"invoice_no": "T-1", "customer_id": "C1", "invoiced_at": at, "lines": [line] * n}


def _refusal(conn: sqlite3.Connection, body: dict) -> list[dict]:
    with pytest.raises(WebhookRejected) as info:
        ingest_webhook(conn, body, "k-1")
    assert conn.execute("SELECT count(*) FROM pos_invoices").fetchone()[0] == 0
    return info.value.errors


FUTURE = (datetime.now() + timedelta(days=30)).isoformat(timespec="seconds")


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (_tx(qty=10**30), ["lines", 0, "quantity"], "less than or equal"),
        (_tx(qty=-(10**7)), ["lines", 0, "quantity"], "greater than or equal"),
        (_tx(qty=10, price=1e308), ["lines", 0, "unit_price"], "less than or equal"),
        (_tx(qty=100_000, price=1000.0), ["lines", 0], "line total"),
        (_tx(qty=1_000_000, price=9.0, n=20), [], "invoice total"),
        (_tx(n=pos_bounds.MAX_LINES + 1), ["lines"], "at most 2000"),
        (_tx(at="1970-01-01T00:00:00"), ["invoiced_at"], "out of range"),
        (_tx(at="0001-01-01T00:00:00+01:00"), ["invoiced_at"], "out of range"),
        (_tx(at=FUTURE), ["invoiced_at"], "out of range"),
    ],
)
def test_the_webhook_refuses_out_of_bounds_values_naming_the_field(
    conn: sqlite3.Connection, body: dict, loc: list, words: str
) -> None:
    errors = _refusal(conn, body)
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == loc and words in str(errors[0]["msg"]), errors


def test_the_largest_allowed_values_import_and_add_up_exactly(conn: sqlite3.Connection) -> None:
    body = _tx(qty=10, price=pos_bounds.MAX_UNIT_PRICE)
    assert ingest_webhook(conn, body, "k-1").status == "imported"
    row = conn.execute("SELECT total FROM pos_invoices").fetchone()
    assert row[0] == 10_000_000.0


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("T-1,2024-03-01 10:15:00,C1,A,x,1000000000000000000000000000000,2.5,", "quantity"),
        ("T-1,2024-03-01 10:15:00,C1,A,x,10,1e308,", "unit_price"),
        ("T-1,2024-03-01 10:15:00,C1,A,x,10,inf,", "unit_price"),
        ("T-1,2024-03-01 10:15:00,C1,A,x,100000,1000,", "line total"),
        ("T-1,1999-12-31 23:00:00,C1,A,x,1,1,", "invoiced_at"),
        (f"T-1,{FUTURE},C1,A,x,1,1,", "invoiced_at"),
        ("T-1,9999-12-31T23:59:59-05:00,C1,A,x,1,1,", "invoiced_at"),
        (f"T-1,2024-03-01 10:15:00,C1,{'A' * 65},x,1,1,", "sku"),
    ],
)
def test_the_csv_import_refuses_the_same_values_with_the_line_number(
    conn: sqlite3.Connection, tmp_path: Path, row: str, words: str
) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(HEADER + "T-0,2024-03-01 10:00:00,C1,A,x,1,1,\n" + row + "\n")
    with pytest.raises(ImportFailed) as info:
        import_csv(conn, path, "generic")
    errors = info.value.report.errors
    assert [line for line, _ in errors] == [3], errors  # the header is line 1
    assert words in errors[0][1], errors
    assert conn.execute("SELECT count(*) FROM pos_invoices").fetchone()[0] == 0


def test_an_invoice_total_over_the_bound_is_refused_at_its_first_line(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    rows = "".join(f"T-1,2024-03-01 10:15:00,C1,A{i},x,1000000,9,\n" for i in range(20))
    path = tmp_path / "sales.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(ImportFailed) as info:
        import_csv(conn, path, "generic")
    assert [(line, "invoice total" in msg) for line, msg in info.value.report.errors] == [(2, True)]
