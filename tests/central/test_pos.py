"""The chain's POS feed (issue 16 part 4) on real UCI Online Retail rows.

Two stores' real hub databases and the office's real ingest on PostgreSQL (tests/chain_office.py,
no broker: tests/storesense_tools/test_chain_customers.py covers the brokers). Customer 17850
of the UCI set (34 invoices in the first 20,000 rows) enrols at s2 with the chain consent. The
office imports s1's till export with ``storesense central pos import`` (twice: once), then
s2's: each store holding 17850 receives every one of her receipts from either till, into its
shop tables, so the card shows them; an erasure at s1 unlinks them at the office and at s2.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from hub.privacy.erasure import erase_customer
from hub.shop import pos_store
from hub.shop.card import customer_card
from storesense_tools.cli import main
from tests.chain_office import Office
from tests.chain_store import ChainStore
from tests.hub.conftest import unit

UCI = (
    Path(__file__).resolve().parents[3] / "shared/data/retail/online-retail-until-2011-10-31.csv.gz"
)
CUSTOMER = "17850"


def _slice(out: Path, first: int, last: int) -> Path:
    """Rows ``first``..``last`` of the UCI export under its header, as a till would export."""
    with gzip.open(UCI, "rt", encoding="utf-8-sig", newline="") as src, out.open(
        "w", newline=""
    ) as dst:  # fmt: skip
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= last:
                break
            if i >= first:
                writer.writerow(row)
    return out


@pytest.fixture
def office(tmp_path: Path, pg_dsn: str) -> Iterator[Office]:
    if not UCI.exists():
        pytest.skip(f"UCI Online Retail data not found at {UCI} (see ../shared/data/README)")
    stores = {s: ChainStore(tmp_path / s, s, send="[customers]") for s in ("s1", "s2")}
    o = Office(pg_dsn, stores)
    try:
        yield o
    finally:
        o.pg.close()
        for st in stores.values():
            st.close()


def _office_invoices(office: Office, store: str | None = None) -> set[str]:
    rows = office.pg.execute(
        "SELECT store_id, invoice_no FROM pos_invoices WHERE customer_id=%s", (CUSTOMER,)
    ).fetchall()
    return {f"{s}/{no}" for s, no in rows if store is None or s == store}


def _hub_invoices(store: ChainStore) -> set[str]:
    return {r["invoice_no"] for r in pos_store.customer_invoices(store.conn, CUSTOMER)}


def test_the_office_imports_once_and_each_store_gets_its_chain_customers_history(
    office: Office, tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s1, s2 = office.stores["s1"], office.stores["s2"]
    office.settle()
    s2.enrol(CUSTOMER, "Customer 17850", unit(5), chain=True)
    office.settle()  # s1 has her template; both stores told the office they hold her

    part1 = _slice(tmp_path / "s1-till.csv", 0, 20_000)
    argv = ["central", "pos", "import", str(part1), "--store", "s1", "--database", pg_dsn]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0  # the same export again: nothing twice
    again = capsys.readouterr().out
    assert "0 invoices (0 lines) imported" in again and "0 purchases queued" in again, again
    n_office = office.count("pos_invoices")
    assert f"{n_office} invoices" in first
    # partitioned by store (central/migrations/0003): one till's invoices and lines sit in one
    # hash partition each, so the key (store_id, invoice_no) stays the database's own rule
    where = office.pg.execute(
        "SELECT 'i:' || tableoid::regclass::text, count(*) FROM pos_invoices GROUP BY 1 "
        "UNION ALL SELECT 'l:' || tableoid::regclass::text, count(*) FROM pos_lines GROUP BY 1"
    ).fetchall()
    assert len(where) == 2 and {w[0].split(":")[1].rsplit("_h", 1)[0] for w in where} == {
        "pos_invoices",
        "pos_lines",
    }, where
    mine = _office_invoices(office)
    assert len(mine) == 34  # 17850's invoices in those rows (counted from the file)
    office.settle()
    # s2 gets them numbered by their till's store; s1 (the till's own store) by their number
    assert _hub_invoices(s2) == mine
    assert _hub_invoices(s1) == {no.removeprefix("s1/") for no in mine}

    # s2's till export: her receipts there reach s1 too, the others' nowhere
    part2 = _slice(tmp_path / "s2-till.csv", 80_000, 90_000)  # she bought once in these
    assert main(["central", "pos", "import", str(part2), "--store", "s2", "--database",
                 pg_dsn]) == 0  # fmt: skip
    office.settle()
    theirs = _office_invoices(office, "s2")
    assert theirs, "17850 bought nothing in rows 80,000-90,000: pick other rows"
    assert _hub_invoices(s1) == {no.removeprefix("s1/") for no in mine} | theirs
    assert _hub_invoices(s2) == mine | {no.removeprefix("s2/") for no in theirs}
    others = s2.conn.execute(
        "SELECT count(DISTINCT customer_id) FROM pos_invoices WHERE customer_id<>'c1'"
    ).fetchone()[0]
    assert others == 1  # only the chain customer's history crossed, no one else's

    # the card at s2 shows her whole chain history (both tills)
    card = customer_card(s2.conn, CUSTOMER, s2.cfg, datetime(2011, 11, 1))
    assert card.name == "Customer 17850"
    visits = s2.conn.execute(
        "SELECT count(*) FROM pos_invoices WHERE customer_id=? AND cancellation=0", (CUSTOMER,)
    ).fetchone()[0]
    assert visits > 0 and card.totals.baskets == visits, card.totals
    assert {b.invoice_no for b in card.recent_baskets} <= mine | {
        no.removeprefix("s2/") for no in theirs
    }

    # erased at s1: the office unlinks her invoices (figures stay), s2 unlinks its copies
    before = office.count("pos_invoices")
    erase_customer(s1.conn, CUSTOMER, actor="manager", reason="asked at s1")
    office.settle()
    assert _office_invoices(office) == set() and office.count("pos_invoices") == before
    assert office.count("chain_members") == 0
    assert _hub_invoices(s2) == set() and _hub_invoices(s1) == set()
    assert CUSTOMER not in {r[0] for r in s2.conn.execute("SELECT customer_id FROM customers")}
    # nothing about her is left to send
    left = office.pg.execute("SELECT count(*) FROM downlink WHERE sent_at IS NULL").fetchone()
    assert left == (0,)
