"""POS import and webhook under the one customer-id rule (storesense/ids.py): the ids an
enrolment accepts are imported (each edge character), the ones it refuses are counted, named
with their line and dropped with their invoice — never silently — and the card shows them."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from hub.shop.card import customer_card
from hub.shop.pos_import import ImportFailed, import_csv
from hub.shop.pos_webhook import WebhookRejected, ingest_webhook
from hub.store import db
from storesense import ids
from storesense.config import parse_config

GOOD = ["R.4004", "a-b_c", "x.y.z", "C" * 64, "9", "ends."]
BAD = [".lead", "a/b", "a b", "a+b", "a#b", "C" * 65, "é1", "-opt"]
HEADER = "invoice_no,sku,description,quantity,invoiced_at,unit_price,customer_id,country\n"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


def _csv(tmp_path: Path, customers: list[str]) -> Path:
    rows = [
        f"INV-{i},SKU{i},Thing {i},2,2024-03-01T10:{i:02d}:00,1.50,{cid},UK\n"
        for i, cid in enumerate(customers)
    ]
    path = tmp_path / "pos.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def _customers(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM pos_invoices")}


def test_the_rule_is_the_one_enrolment_uses() -> None:
    assert all(ids.is_customer_id(c) for c in GOOD)
    assert not any(ids.is_customer_id(c) for c in BAD)


def test_import_takes_every_valid_id_and_counts_each_invalid_one(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    path = _csv(tmp_path, GOOD + BAD)
    report = import_csv(conn, path, "generic", max_errors=len(BAD))
    assert _customers(conn) == set(GOOD)
    assert (report.error_count, report.invoices_imported) == (len(BAD), len(GOOD))
    assert report.rows == len(GOOD) + len(BAD)  # every row is accounted for
    lines = {line for line, _ in report.errors}
    assert lines == set(range(len(GOOD) + 2, len(GOOD) + len(BAD) + 2))  # header is line 1
    for (_, message), bad in zip(report.errors, BAD, strict=True):
        assert message == f"invalid customer id {bad!r}: {ids.CUSTOMER_ID_RULE}"


def test_by_default_one_invalid_id_fails_the_import_and_nothing_is_written(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    path = _csv(tmp_path, [*GOOD, "a/b"])
    with pytest.raises(ImportFailed) as exc:
        import_csv(conn, path, "generic")
    assert exc.value.report.error_count == 1
    assert "invalid customer id 'a/b'" in exc.value.report.errors[0][1]
    assert _customers(conn) == set()


def _tx(customer: str, invoice: str) -> dict[str, object]:
    return {"invoice_no": invoice, "customer_id": customer, "invoiced_at": "2024-03-01T10:15:00",
            "lines": [{"sku": "A1", "quantity": 1, "unit_price": 2.0}]}  # fmt: skip


@pytest.mark.parametrize("customer", GOOD)
def test_the_webhook_takes_a_valid_id(conn: sqlite3.Connection, customer: str) -> None:
    assert ingest_webhook(conn, _tx(customer, "T-1"), "key-1").status == "imported"
    assert _customers(conn) == {customer}


@pytest.mark.parametrize("customer", BAD)
def test_the_webhook_refuses_an_invalid_id_saying_which_field(
    conn: sqlite3.Connection, customer: str
) -> None:
    with pytest.raises(WebhookRejected) as exc:
        ingest_webhook(conn, _tx(customer, "T-1"), "key-1")
    assert [e["loc"] for e in exc.value.errors] == [["customer_id"]]
    assert ids.CUSTOMER_ID_RULE in str(exc.value.errors[0]["msg"])
    assert _customers(conn) == set()


def test_the_card_of_a_dotted_customer(conn: sqlite3.Connection, tmp_path: Path) -> None:
    import_csv(conn, _csv(tmp_path, ["R.4004"]), "generic")
    card = customer_card(conn, "R.4004", parse_config("store_id: s1\n"), datetime(2024, 3, 2))
    assert card.customer_id == "R.4004" and card.enrolled is False
