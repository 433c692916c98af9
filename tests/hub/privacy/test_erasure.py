"""Right to erasure across face data and purchase data, in one transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.faces.gallery import Gallery
from hub.privacy.erasure import erase_customer
from hub.shop.card import CustomerNotFound, customer_card
from hub.shop.pos_import import import_csv
from hub.shop.pos_store import revenue_by_category_range, set_birthday
from hub.store import db
from storesense.config import StoreConfig
from storesense_tools.cli import main
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice

CFG = StoreConfig(store_id="s1")
NOW = datetime(2024, 6, 1, 12)
CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/2010 8:34,1.69,13047,United Kingdom
"""


def _count(conn: sqlite3.Connection, sql: str, *args: object) -> int:
    return int(conn.execute(sql, args).fetchone()[0])


def test_erasure_removes_face_data_and_unlinks_receipts(gallery: Gallery) -> None:
    conn = gallery.conn
    gallery.enrol("C1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    add_invoice(conn, "1", "C1", NOW - timedelta(days=3), [("M1", "RED MUG", 2, 5.0)])
    add_invoice(conn, "2", "C2", NOW - timedelta(days=3), [("M1", "RED MUG", 1, 5.0)])
    with db.write(conn):
        set_birthday(conn, "C1", 5, 17)
    conn.execute(
        "INSERT INTO false_matches(at, alert_id, customer_id, camera_id, staff_id)"
        " VALUES (1, 'a9', 'C1', 'door-1', 'bob')"
    )
    day = (NOW - timedelta(days=3)).date()
    revenue_before = revenue_by_category_range(conn, day, day)

    report = erase_customer(conn, "C1", actor="dpo", reason="asked in store")

    assert (report.profile, report.receipts_unlinked, report.anything) == (True, 1, True)
    assert _count(conn, "SELECT count(*) FROM customers WHERE customer_id='C1'") == 0
    assert _count(conn, "SELECT count(*) FROM templates") == 0
    assert _count(conn, "SELECT count(*) FROM pos_invoices WHERE customer_id='C1'") == 0
    assert _count(conn, "SELECT count(*) FROM pos_birthdays") == 0
    assert _count(conn, "SELECT count(*) FROM false_matches") == 0
    with pytest.raises(CustomerNotFound):
        customer_card(conn, "C1", CFG, NOW)
    # the other customer and the store's sales figures are untouched
    assert customer_card(conn, "C2", CFG, NOW).totals.baskets == 1
    assert revenue_by_category_range(conn, day, day) == revenue_before
    audit = conn.execute("SELECT actor, action, detail FROM audit WHERE action='erase'").fetchone()
    assert (audit["actor"], audit["action"]) == ("dpo", "erase")
    assert "receipts unlinked: 1" in audit["detail"]
    assert not erase_customer(conn, "C1", actor="dpo", reason="again").anything


def test_reimport_after_erasure_does_not_relink(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    csv = tmp_path / "pos.csv"
    csv.write_text(CSV)
    import_csv(conn, csv)
    assert erase_customer(conn, "17850", actor="dpo", reason="r").receipts_unlinked == 2
    again = import_csv(conn, csv)
    assert again.invoices_imported == 0
    assert _count(conn, "SELECT count(*) FROM pos_invoices WHERE customer_id='17850'") == 0
    assert _count(conn, "SELECT count(*) FROM pos_invoices") == 3


def test_cli_erases_a_purchase_only_customer(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    csv = tmp_path / "pos.csv"
    csv.write_text(CSV)
    assert main(["--home", str(home), "db", "migrate"]) == 0  # what the hub does when it starts
    assert main(["--home", str(home), "pos", "import", "--csv", str(csv)]) == 0
    assert main(["--home", str(home), "erase", "--customer", "13047"]) == 0
    assert "no profile; 1 receipts unlinked" in capsys.readouterr().out
    assert main(["--home", str(home), "erase", "--customer", "13047"]) == 2
