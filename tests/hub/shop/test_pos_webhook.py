"""POS webhook logic on a real SQLite file: import, key replay, key reuse, duplicates,
conflicts, anonymous sales and invalid bodies."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.shop.pos_webhook import WebhookRejected, ingest_webhook, webhook_counts
from hub.store import db


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


def _tx(invoice_no: str = "T-100", qty: int = 2, customer: str | None = "C1001") -> dict[str, Any]:
    return {
        "invoice_no": invoice_no,
        "customer_id": customer,
        "invoiced_at": "2024-03-01T10:15:00",
        "lines": [
            {"sku": "85123A", "description": "WHITE HANGING HEART T-LIGHT HOLDER", "quantity": qty,
             "unit_price": 2.55},
            {"sku": "POST", "description": "POSTAGE", "quantity": 1, "unit_price": 5.0},
        ],
    }  # fmt: skip


def test_import_then_replay_returns_first_answer(conn: sqlite3.Connection) -> None:
    first = ingest_webhook(conn, _tx(), "key-1")
    assert (first.status, first.http_status, first.lines, first.replayed) == (
        "imported",
        201,
        2,
        False,
    )
    row = conn.execute("SELECT customer_id, total, source FROM pos_invoices").fetchone()
    assert tuple(row) == ("C1001", 10.1, "webhook")
    again = ingest_webhook(conn, _tx(), "key-1")
    assert again.replayed and again.status == "imported" and again.lines == 2
    assert conn.execute("SELECT COUNT(*) FROM pos_lines").fetchone()[0] == 2


def test_key_reused_for_other_body_is_refused(conn: sqlite3.Connection) -> None:
    ingest_webhook(conn, _tx(), "key-1")
    with pytest.raises(WebhookRejected, match="different body"):
        ingest_webhook(conn, _tx(qty=3), "key-1")
    assert conn.execute("SELECT COUNT(*) FROM pos_invoices").fetchone()[0] == 1


def test_same_invoice_new_key_duplicate_or_conflict(conn: sqlite3.Connection) -> None:
    ingest_webhook(conn, _tx(), "key-1")
    dup = ingest_webhook(conn, _tx(), "key-2")
    assert (dup.status, dup.http_status, dup.replayed) == ("duplicate", 200, False)
    clash = ingest_webhook(conn, _tx(qty=5), "key-3")
    assert (clash.status, clash.http_status) == ("conflict", 409)
    total = conn.execute("SELECT total FROM pos_invoices WHERE invoice_no = 'T-100'").fetchone()
    assert total[0] == pytest.approx(10.1)  # never overwritten


def test_cancellation_and_anonymous(conn: sqlite3.Connection) -> None:
    ingest_webhook(conn, _tx(), "k1")
    refund = _tx("T-101", qty=-2)
    refund["lines"] = refund["lines"][:1]
    res = ingest_webhook(conn, refund, "k2")
    assert res.status == "imported" and "cancellation" in res.message
    row = conn.execute("SELECT cancellation, total FROM pos_invoices WHERE invoice_no='T-101'")
    assert tuple(row.fetchone()) == (1, -5.1)
    anon = ingest_webhook(conn, _tx("T-102", customer=None), "k3")
    assert (anon.status, anon.http_status) == ("skipped_no_customer", 202)
    ingest_webhook(conn, _tx("T-103", customer="  "), "k4")
    counts = webhook_counts(conn)
    assert counts["no_customer_total"] == 2 and counts["imported"] == 2
    assert conn.execute("SELECT COUNT(*) FROM pos_invoices").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda t: t["lines"][0].update(quantity=0), "quantity"),
        (lambda t: t["lines"][0].update(unit_price=-1), "unit_price"),
        (lambda t: t["lines"][0].update(unit_price=float("nan")), "unit_price"),
        (lambda t: t.update(lines=[]), "lines"),
        (lambda t: t.update(customer_id="bad id!"), "customer_id"),
        (lambda t: t.update(invoiced_at="not a time"), "invoiced_at"),
        (lambda t: t.update(extra_field=1), "extra_field"),
    ],
)
def test_invalid_bodies_are_rejected_with_location(
    conn: sqlite3.Connection, mutate: Any, where: str
) -> None:
    tx = _tx()
    mutate(tx)
    with pytest.raises(WebhookRejected) as exc:
        ingest_webhook(conn, tx, "key-x")
    assert any(where in [str(p) for p in e["loc"]] for e in exc.value.errors)
    # a refused body does not burn the key: the corrected request goes through
    assert ingest_webhook(conn, _tx(), "key-x").status == "imported"


def test_bad_keys_and_non_object_body(conn: sqlite3.Connection) -> None:
    for key in ("", "has space", "x" * 129):
        with pytest.raises(WebhookRejected, match="Idempotency-Key"):
            ingest_webhook(conn, _tx(), key)
    with pytest.raises(WebhookRejected):
        ingest_webhook(conn, ["not", "an", "object"], "k")  # type: ignore[arg-type]
