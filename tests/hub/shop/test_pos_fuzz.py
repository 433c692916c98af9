"""Fuzz: both POS CSV formats and the webhook JSON answer bad input with their own refusal
(``ImportFailed`` listing line-numbered errors; ``WebhookRejected`` with the field errors) or
import validly; never another exception, never an infinite or out-of-bounds amount stored.
Valid receipts broken in a few places, plus raw bytes. One real SQLite file per test, kept
across examples (duplicates and conflicts get exercised too). Bounds: tests/fuzzing.py."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hub.shop.pos_import import FORMATS, ImportFailed, ImportReport, import_csv
from hub.shop.pos_webhook import WebhookRejected, WebhookResult, ingest_webhook
from hub.store import db
from storesense import pos_bounds
from tests.fuzzing import FUZZ, mutated, nasty_numbers, nasty_text

ROWS = {
    "online-retail": [
        ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
         "CustomerID", "Country"],
        ["536365", "85123A", "WHITE HANGING HEART", "6", "2010-12-01 08:26:00", "2.55",
         "17850.0", "United Kingdom"],
        ["536365", "71053", "WHITE METAL LANTERN", "6", "12/1/2010 8:26", "3.39", "17850.0",
         "United Kingdom"],
        ["C536379", "D", "Discount", "-1", "2010-12-01 09:41:00", "27.5", "14527.0",
         "United Kingdom"],
    ],
    "generic": [
        ["invoice_no", "invoiced_at", "customer_id", "sku", "description", "quantity",
         "unit_price", "country"],
        ["T-1", "2024-03-01T10:15:00+01:00", "C1", "A1", "Mug", "2", "4.5", "UK"],
        ["T-1", "2024-03-01 10:16:00", "C1", "A2", "Plate", "1", "0", "UK"],
        ["T-2", "2024-03-02 11:00:00", "", "A1", "Mug", "1", "4.5", ""],
    ],
}  # fmt: skip
TX = {
    "invoice_no": "W-1",
    "customer_id": "C1001",
    "invoiced_at": "2024-03-01T10:15:00",
    "country": "UK",
    "lines": [
        {"sku": "85123A", "description": "HEART", "quantity": 2, "unit_price": 2.55},
        {"sku": "POST", "description": "POSTAGE", "quantity": -1, "unit_price": 5.0},
    ],
}


@contextmanager
def fresh_db() -> Iterator[sqlite3.Connection]:
    """A new hub database per example: an earlier example's invoice or key must not turn a
    later one into a conflict before its values are even looked at."""
    with tempfile.TemporaryDirectory() as tmp:
        c = db.migrate_db(Path(tmp) / "hub.sqlite3")
        try:
            yield c
        finally:
            c.close()


def _stored_amounts_are_bounded(conn: sqlite3.Connection) -> None:
    for (total,) in conn.execute("SELECT total FROM pos_invoices"):
        assert math.isfinite(total) and abs(total) <= pos_bounds.MAX_INVOICE_TOTAL


def _import_or_refuse(conn: sqlite3.Connection, data: bytes, fmt: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=".csv") as fh:
        fh.write(data)
        fh.flush()
        try:
            rep = import_csv(conn, Path(fh.name), fmt, max_errors=3)
        except ImportFailed as exc:
            assert str(exc)
            assert all(line >= 1 and msg for line, msg in exc.report.errors)
            return
    assert isinstance(rep, ImportReport)
    assert all(line >= 2 and msg for line, msg in rep.errors)  # the header is line 1
    _stored_amounts_are_bounded(conn)


def _csv(rows: Any) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows if isinstance(rows, list) else [rows]:
        writer.writerow(row if isinstance(row, list) else [row])
    return out.getvalue().encode("utf-8", "surrogatepass")


cell = st.one_of(
    st.text(max_size=12),
    nasty_text,
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["1" + "0" * 30, "1e308", "-1e308", "1e-400", "100000", "0.001"]),
)


@st.composite
def broken_csv(draw: st.DrawFn, fmt: str) -> bytes:
    """The format's valid rows with cells swapped for odd ones, rows dropped or repeated."""
    rows = [list(r) for r in ROWS[fmt]]
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(rows) - 1))
        action = draw(st.sampled_from(["cell", "cell", "cell", "drop", "dup", "width"]))
        if action == "cell" and rows[i]:
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(cell)
        elif action == "drop" and len(rows) > 1:
            del rows[i]
        elif action == "dup":
            rows.insert(i, list(rows[i]))
        elif action == "width":
            rows[i] = rows[i][: draw(st.integers(0, len(rows[i]) + 1))]
    return _csv(rows)


@FUZZ
@given(st.sampled_from(sorted(ROWS)).flatmap(lambda f: st.tuples(st.just(f), broken_csv(f))))
def test_a_broken_csv_is_refused_by_line_or_imported_validly(case: tuple[str, bytes]) -> None:
    fmt, data = case
    with fresh_db() as conn:
        _import_or_refuse(conn, data, fmt)


@FUZZ
@given(st.sampled_from(sorted(FORMATS)), st.binary(max_size=300))
def test_raw_bytes_are_refused_or_imported_validly(fmt: str, tail: bytes) -> None:
    header = ",".join(ROWS[fmt][0]).encode() + b"\n"
    with fresh_db() as conn:
        _import_or_refuse(conn, header + tail, fmt)
        _import_or_refuse(conn, tail, fmt)


number = st.one_of(nasty_numbers, st.integers(), st.floats(), st.integers(-(10**40), 10**40))


@st.composite
def broken_amounts(draw: st.DrawFn) -> dict[str, Any]:
    """The receipt with its lines' numbers (and time) set to odd values: the fields whose
    bounds the webhook and the CSV share."""
    tx = {**TX, "lines": [dict(ln) for ln in TX["lines"]]}
    for ln in tx["lines"]:
        for key in ("quantity", "unit_price"):
            if draw(st.booleans()):
                ln[key] = draw(number)
    if draw(st.booleans()):
        tx["invoiced_at"] = draw(st.one_of(nasty_text, st.datetimes().map(str)))
    tx["lines"] = tx["lines"] * draw(st.sampled_from([1, 1, 2, 600, 1001]))
    return tx


@FUZZ
@given(mutated(TX, max_changes=4) | broken_amounts())
def test_a_broken_webhook_body_is_refused_by_field_or_imported_validly(body: Any) -> None:
    with fresh_db() as conn:
        try:
            result = ingest_webhook(conn, body, "fuzz-1")
        except WebhookRejected as exc:
            assert str(exc)
            assert all("loc" in e and "msg" in e for e in exc.errors)
            return
        assert isinstance(result, WebhookResult)
        assert result.http_status in (200, 201, 202, 409)
        _stored_amounts_are_bounded(conn)
