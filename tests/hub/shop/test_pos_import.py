"""POS CSV import on a real SQLite file: counts, idempotency, cancellations, bad rows with line
numbers, all-or-nothing, the generic format, revenue per category, and a real UCI slice."""

from __future__ import annotations

import csv
import gzip
import itertools
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from hub.shop.pos_import import ImportFailed, import_csv
from hub.shop.pos_store import (
    revenue_by_category,
    revenue_by_category_hourly,
    revenue_by_category_range,
)
from hub.store import db
from tests.conftest import shared_data_dir

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD = HEADER + (
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"  # noqa: E501
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:27:00,3.39,17850.0,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,,United Kingdom\n"
    '536367,22086,"PAPER CHAIN KIT 50\'S CHRISTMAS ",12,2010-12-01 09:00:00,2.95,13047.0,United Kingdom\n'  # noqa: E501
    "536367,POST,POSTAGE,1,2010-12-01 09:00:00,18.0,13047.0,United Kingdom\n"
    "C536368,71053,WHITE METAL LANTERN,-2,2010-12-02 10:00:00,3.39,17850.0,United Kingdom\n"
    "536369,21731,RED TOADSTOOL LED NIGHT LIGHT,-3,2010-12-02 11:00:00,1.65,13047.0,United Kingdom\n"  # noqa: E501
    "536369,22745,POPPY'S PLAYHOUSE BEDROOM,6,2010-12-02 11:00:00,2.10,13047.0,United Kingdom\n"
)
BAD = HEADER + (
    "536400,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-03 08:26:00,2.55,12346.0,UK\n"
    "536401,71053,WHITE METAL LANTERN,abc,2010-12-03 08:26:00,3.39,12346.0,UK\n"
    "536402,71053,WHITE METAL LANTERN,1,2010-12-03 08:26:00,-1,12346.0,UK\n"
    "536403,71053,WHITE METAL LANTERN,1,2010-12-03 08:26:00,3.39,12346.0\n"
    "C536404,71053,WHITE METAL LANTERN,2,2010-12-03 08:26:00,3.39,12346.0,UK\n"
    "536405,71053,WHITE METAL LANTERN,1,2010-12-03 09:00:00,3.39,12347.0,UK\n"
    "536405,85123A,WHITE HANGING HEART T-LIGHT HOLDER,1,2010-12-03 09:00:00,2.55,12348.0,UK\n"
    "536406,71053,WHITE METAL LANTERN,zz,2010-12-03 09:00:00,3.39,,UK\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


def test_import_counts_cancellations_and_skips(conn: sqlite3.Connection, tmp_path: Path) -> None:
    rep = import_csv(conn, _write(tmp_path, "good.csv", GOOD))
    assert rep.committed
    assert (rep.rows, rep.skipped_no_customer, rep.error_count) == (9, 1, 0)
    assert (rep.invoices_imported, rep.lines_imported, rep.cancellations) == (4, 8, 1)
    assert rep.return_lines == 1
    inv = {r["invoice_no"]: r for r in conn.execute("SELECT * FROM pos_invoices")}
    assert set(inv) == {"536365", "536367", "C536368", "536369"}
    assert inv["536365"]["customer_id"] == "17850"  # "17850.0" normalised
    assert inv["536365"]["invoiced_at"] == "2010-12-01 08:26:00"  # first scan of the basket
    assert inv["536365"]["total"] == pytest.approx(55.98)
    assert inv["C536368"]["cancellation"] == 1
    assert inv["C536368"]["total"] == pytest.approx(-6.78)
    assert inv["536369"]["cancellation"] == 0  # one returned line does not cancel a sale
    cats = dict(conn.execute("SELECT stock_code, category FROM pos_products").fetchall())
    assert cats["POST"] == "non-product"
    assert cats["22086"] == "christmas"
    assert cats["85123A"] == "lighting"


def test_reimport_adds_nothing(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = _write(tmp_path, "good.csv", GOOD)
    import_csv(conn, path)
    before = (_count(conn, "pos_invoices"), _count(conn, "pos_lines"))
    rep = import_csv(conn, path)
    assert (rep.invoices_imported, rep.lines_imported, rep.invoices_duplicate) == (0, 0, 4)
    assert (_count(conn, "pos_invoices"), _count(conn, "pos_lines")) == before


def test_bad_rows_fail_whole_import_with_line_numbers(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    with pytest.raises(ImportFailed) as exc:
        import_csv(conn, _write(tmp_path, "bad.csv", BAD))
    errors = dict(exc.value.report.errors)
    assert sorted(errors) == [3, 4, 5, 6, 8]
    assert "whole number" in errors[3]
    assert ">= 0" in errors[4]
    assert "expected 8 fields, got 7" in errors[5]
    assert "cancellation C536404 has a positive quantity" in errors[6]
    assert "customer 12347" in errors[8] and "12348" in errors[8]
    assert exc.value.report.skipped_no_customer == 1  # the bad row without customer: skipped
    assert _count(conn, "pos_invoices") == 0 and _count(conn, "pos_lines") == 0


def test_max_errors_drops_whole_invoices(conn: sqlite3.Connection, tmp_path: Path) -> None:
    rep = import_csv(conn, _write(tmp_path, "bad.csv", BAD), max_errors=5)
    assert rep.error_count == 5 and rep.invoices_imported == 1
    # 536405's first line was fine, but half an invoice would conflict once the file is fixed
    assert [r[0] for r in conn.execute("SELECT invoice_no FROM pos_invoices")] == ["536400"]
    with pytest.raises(ImportFailed):
        import_csv(conn, _write(tmp_path, "bad2.csv", BAD), max_errors=4)


def test_conflicting_invoice_rolls_back_everything(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    import_csv(conn, _write(tmp_path, "good.csv", GOOD))
    changed = HEADER + (
        "536500,71053,WHITE METAL LANTERN,1,2010-12-05 08:00:00,3.39,17850.0,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,99,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
    )
    with pytest.raises(ImportFailed) as exc:
        import_csv(conn, _write(tmp_path, "changed.csv", changed))
    assert exc.value.report.errors == [
        (3, "invoice 536365 was already imported with different content")
    ]
    assert conn.execute("SELECT 1 FROM pos_invoices WHERE invoice_no = '536500'").fetchone() is None
    assert _count(conn, "pos_invoices") == 4


def test_generic_format(conn: sqlite3.Connection, tmp_path: Path) -> None:
    text = (
        "invoice_no,invoiced_at,customer_id,sku,description,quantity,unit_price\n"
        "T-1,2024-03-01T10:15:00,C1001,SKU-1,Red mug,2,4.50\n"
        "T-1,2024-03-01T10:15:00,C1001,SKU-2,Cake stand,1,12.00\n"
        "T-2,2024-03-02T09:00:00,C1001,SKU-1,Red mug,-1,4.50\n"
        "T-3,2024-03-02T09:30:00,,SKU-1,Red mug,1,4.50\n"
    )
    rep = import_csv(conn, _write(tmp_path, "g.csv", text), "generic")
    assert (rep.invoices_imported, rep.cancellations, rep.skipped_no_customer) == (2, 1, 1)
    row = conn.execute("SELECT total, cancellation FROM pos_invoices WHERE invoice_no='T-2'")
    assert tuple(row.fetchone()) == (-4.5, 1)
    with pytest.raises(ImportFailed, match="missing column"):
        import_csv(conn, _write(tmp_path, "g.csv", text), "online-retail")


def test_unreadable_time_and_empty_file(conn: sqlite3.Connection, tmp_path: Path) -> None:
    bad_time = HEADER + "536600,71053,LANTERN,1,yesterday,3.39,17850.0,UK\n"
    with pytest.raises(ImportFailed) as exc:
        import_csv(conn, _write(tmp_path, "t.csv", bad_time))
    assert exc.value.report.errors == [(2, "unreadable time 'yesterday'")]
    with pytest.raises(ImportFailed, match="empty file"):
        import_csv(conn, _write(tmp_path, "e.csv", ""))
    with pytest.raises(ValueError, match="unknown format"):
        import_csv(conn, _write(tmp_path, "e.csv", ""), "xlsx")


def test_revenue_by_category(conn: sqlite3.Connection, tmp_path: Path) -> None:
    import_csv(conn, _write(tmp_path, "good.csv", GOOD))
    day1 = revenue_by_category(conn, date(2010, 12, 1))
    assert day1 == {"lighting": 55.98, "christmas": 35.4}  # postage is not a category
    assert revenue_by_category(conn, date(2010, 12, 1), include_non_product=True)[
        "non-product"
    ] == pytest.approx(18.0)
    day2 = revenue_by_category(conn, date(2010, 12, 2))
    assert day2 == {"lighting": pytest.approx(-11.73), "toys": pytest.approx(12.6)}
    both = revenue_by_category_range(conn, date(2010, 12, 1), date(2010, 12, 2))
    assert both == {"lighting": 44.25, "christmas": 35.4, "toys": 12.6}
    assert revenue_by_category_hourly(conn, date(2010, 12, 1)) == {
        8: {"lighting": 55.98},
        9: {"christmas": 35.4},
    }
    assert revenue_by_category(conn, date(2011, 1, 1)) == {}
    with pytest.raises(ValueError):
        revenue_by_category_range(conn, date(2010, 12, 2), date(2010, 12, 1))


def test_real_uci_slice(conn: sqlite3.Connection, tmp_path: Path) -> None:
    src = shared_data_dir() / "retail" / "online-retail-until-2011-10-31.csv.gz"
    if not src.exists():
        pytest.skip(f"UCI Online Retail not found at {src} (set STORESENSE_SHARED_DATA)")
    with gzip.open(src, "rt", encoding="utf-8", newline="") as fh:
        lines = list(itertools.islice(fh, 20001))  # header + 20,000 rows (quoted: one per line)
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        out.writelines(lines)
    rows = list(csv.reader(lines[1:]))
    with_cust = [r for r in rows if r[6]]
    rep = import_csv(conn, path)
    assert rep.rows == 20000 and rep.error_count == 0
    assert rep.skipped_no_customer == len(rows) - len(with_cust)
    assert rep.lines_imported == len(with_cust)
    assert rep.invoices_imported == len({r[0] for r in with_cust})
    assert rep.cancellations == len({r[0] for r in with_cust if r[0].startswith("C")})
    net = sum(int(r[3]) * float(r[5]) for r in with_cust)
    stored = conn.execute("SELECT SUM(total) FROM pos_invoices").fetchone()[0]
    assert stored == pytest.approx(net, abs=0.05)
    again = import_csv(conn, path)
    assert again.invoices_imported == 0 and again.invoices_duplicate == rep.invoices_imported
