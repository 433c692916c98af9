"""Suggestions on real SQLite files: repeat ranking, ALS on a planted co-purchase structure,
seen-item filter, popularity fallback, the lookup table, the metrics, and a real UCI split."""

from __future__ import annotations

import csv
import gzip
import math
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.shop.pos_import import import_csv
from hub.shop.suggest import POPULAR, SuggestParams, build_suggestions, last_build, lookup
from hub.store import db
from storesense_tools.retail_eval import evaluate, hit_ndcg, recall
from tests.conftest import shared_data_dir
from tests.hub.pos_fixtures import add_invoice

T0 = datetime(2024, 6, 1, 10)
SMALL = SuggestParams(factors=8, iterations=20, regularization=0.05, alpha=5.0, usual_blend=0.0)


def _item(group: str, i: int) -> tuple[str, str]:
    return f"{group}{i}", f"{'RED' if group == 'A' else 'BLUE'} MUG {i}"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


@pytest.fixture
def planted(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Two taste groups: 12 customers buy A1..A6 together, 12 buy B1..B6 together."""
    n = 0
    for group in ("A", "B"):
        for c in range(12):
            for visit in range(2):
                n += 1
                lines = [(*_item(group, i), 1, 2.0) for i in range(1, 7)]
                at = T0 - timedelta(days=5 + 3 * c + visit)
                add_invoice(conn, f"{n}", f"{group.lower()}{c}", at, lines)
    first_three = [(*_item("A", i), 1, 2.0) for i in (1, 2, 3)]
    add_invoice(conn, "t1", "tA", T0 - timedelta(days=2), first_three)
    add_invoice(conn, "t2", "thin", T0 - timedelta(days=2), [(*_item("B", 1), 1, 2.0)])
    add_invoice(conn, "t3", "thin", T0 - timedelta(days=1), [("POST", "POSTAGE", 1, 9.0)])
    return conn


def test_als_finds_the_planted_group_and_filters_seen(planted: sqlite3.Connection) -> None:
    rep = build_suggestions(planted, cutoff=T0, params=SMALL)
    assert (rep.customers, rep.items) == (26, 12)
    usual, new = lookup(planted, "tA")
    assert {s.stock_code for s in usual} == {"A1", "A2", "A3"}
    assert {s.stock_code for s in new[:3]} == {"A4", "A5", "A6"}
    assert all(s.source == "als" for s in new)
    for cid in [f"a{c}" for c in range(12)] + ["tA", "thin"]:
        bought = {
            r[0]
            for r in planted.execute(
                "SELECT l.stock_code FROM pos_lines l JOIN pos_invoices i USING (invoice_no) "
                "WHERE i.customer_id = ?",
                (cid,),
            )
        }
        assert not bought & {s.stock_code for s in lookup(planted, cid)[1]}, cid


def test_thin_history_gets_popular_unseen(planted: sqlite3.Connection) -> None:
    build_suggestions(planted, cutoff=T0, params=SMALL)
    usual, new = lookup(planted, "thin")
    assert [s.stock_code for s in usual] == ["B1"]  # postage is never an item
    assert {s.source for s in new} == {"popular"} and "B1" not in {s.stock_code for s in new}
    assert "A1" in {s.stock_code for s in new}  # A1 has the most buyers (tA too)
    stranger_usual, stranger_new = lookup(planted, "never-seen")
    assert stranger_usual == []
    stored = [r[0] for r in planted.execute(
        "SELECT stock_code FROM suggestions WHERE customer_id = ? ORDER BY rank", (POPULAR,)
    )]  # fmt: skip
    assert [s.stock_code for s in stranger_new] == stored[:10] and stored[0] == "A1"


def test_repeat_ranking_frequency_and_recency(conn: sqlite3.Connection) -> None:
    mug, lamp, bag = ("X1", "WHITE MUG"), ("X2", "DESK LAMP"), ("X3", "JUMBO BAG")
    for k in range(4):  # bought 4 times, ~300 days ago: 4 × 2^(-300/180) ≈ 1.26
        add_invoice(conn, f"m{k}", "r", T0 - timedelta(days=300 + k), [(*mug, 1, 1.0)])
    add_invoice(conn, "l0", "r", T0 - timedelta(days=2), [(*lamp, 1, 1.0)])  # ≈ 0.99
    for k in range(2):  # ≈ 2 × 0.96
        add_invoice(conn, f"b{k}", "r", T0 - timedelta(days=10 + k), [(*bag, 1, 1.0)])
    add_invoice(conn, "C1", "r", T0 - timedelta(days=1), [(*lamp, -1, 1.0)])  # not a purchase
    build_suggestions(conn, cutoff=T0, params=SMALL)
    usual, _ = lookup(conn, "r")
    assert [s.stock_code for s in usual] == ["X3", "X1", "X2"]
    assert usual[0].score == pytest.approx(2 ** (-8 / 180) + 2 ** (-9 / 180), rel=1e-3)
    # a later cut-off sees a purchase made after this build; an earlier one does not
    build_suggestions(conn, cutoff=T0 - timedelta(days=100), params=SMALL)
    assert [s.stock_code for s in lookup(conn, "r")[0]] == ["X1"]


def test_rebuild_swaps_the_table(planted: sqlite3.Connection, tmp_path: Path) -> None:
    build_suggestions(planted, cutoff=T0, params=SMALL)
    n = planted.execute("SELECT COUNT(*) FROM suggestions").fetchone()[0]
    rep = build_suggestions(planted, cutoff=T0, params=SMALL)
    assert planted.execute("SELECT COUNT(*) FROM suggestions").fetchone()[0] == n
    assert last_build(planted)["customers"] == rep.customers == 26
    empty = build_suggestions(db.migrate_db(tmp_path / "empty.sqlite3"), cutoff=T0)
    assert (empty.customers, empty.items) == (0, 0)


def test_metrics() -> None:
    hr, ndcg = hit_ndcg([5, 1, 2], {1, 9}, 10)
    assert hr == 1.0
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert hit_ndcg([5, 6], {1}, 10) == (0.0, 0.0)
    assert recall([5, 1, 2], {1, 9}, 10) == 0.5
    assert recall([1, 9], {1, 9}, 1) == 0.5


def test_real_uci_split_beats_baselines(tmp_path: Path) -> None:
    """Train before 2011-03-01, test March 2011 on the real file (a time slice of it)."""
    src = shared_data_dir() / "retail" / "online-retail-until-2011-10-31.csv.gz"
    if not src.exists():
        pytest.skip(f"UCI Online Retail not found at {src} (set STORESENSE_SHARED_DATA)")
    part = tmp_path / "until-march.csv.gz"
    with (
        gzip.open(src, "rt", encoding="utf-8", newline="") as fh,
        gzip.open(part, "wt", encoding="utf-8", newline="") as out,
    ):
        rows, writer = csv.reader(fh), csv.writer(out)
        writer.writerow(next(rows))
        for row in rows:  # the file is ordered by InvoiceDate
            if row[4] >= "2011-04-01":
                break
            writer.writerow(row)
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    assert import_csv(conn, part).error_count == 0
    r = evaluate(conn, datetime(2011, 3, 1), datetime(2011, 4, 1), SuggestParams())
    usual, new = r["usual"], r["new"]
    assert r["usual_customers"] > 300 and r["new_customers"] > 300
    assert usual["repeat-purchase baseline"]["HR@10"] > usual["popularity"]["HR@10"] + 0.2
    shipped = usual["repeat + 0.5×ALS"]
    assert shipped["NDCG@10"] >= usual["repeat-purchase baseline"]["NDCG@10"]
    assert shipped["HR@10"] >= usual["repeat-purchase baseline"]["HR@10"]
    assert (
        new["shipped: ALS + popularity fallback"]["Recall@10"]
        > new["popularity (seen filtered)"]["Recall@10"]
    )


def test_customer_who_bought_everything_gets_no_new_items(conn: sqlite3.Connection) -> None:
    both = [("X1", "WHITE MUG", 1, 1.0), ("X2", "DESK LAMP", 1, 1.0)]
    for k in range(3):
        add_invoice(conn, f"e{k}", "all", T0 - timedelta(days=k + 1), both)
    add_invoice(conn, "o1", "other", T0 - timedelta(days=1), both[:1])
    build_suggestions(conn, cutoff=T0, params=SMALL)
    usual, new = lookup(conn, "all")
    assert {s.stock_code for s in usual} == {"X1", "X2"} and new == []
    assert [s.stock_code for s in lookup(conn, "other")[1]] == ["X2"]


def test_six_item_catalogue_no_duplicates_nothing_usual(conn: sqlite3.Connection) -> None:
    """k = 10 on a 6-item catalogue: implicit pads its answer with item 0 (score 0.0); the
    build used to store the customer's own top usual item four times as "new for you"."""
    items = [(f"I{i}", f"ITEM {i}") for i in range(1, 7)]
    n = 0
    for c in range(5):
        for visit in range(2):
            n += 1
            lines = [(*items[(c + j) % 6], 1, 2.0) for j in range(3)]
            add_invoice(conn, f"{n}", f"c{c}", T0 - timedelta(days=3 + c + visit), lines)
    rep = build_suggestions(conn, cutoff=T0, params=SuggestParams(factors=4, k=10))
    assert (rep.customers, rep.items, rep.als_customers) == (5, 6, 5)
    for c in range(5):
        usual, new = lookup(conn, f"c{c}")
        new_codes = [s.stock_code for s in new]
        usual_codes = [s.stock_code for s in usual]
        assert len(new_codes) == len(set(new_codes)) == 3, (c, new_codes)  # 6 - 3 bought
        assert len(usual_codes) == len(set(usual_codes)) == 3
        assert not set(new_codes) & set(usual_codes), (c, new_codes, usual_codes)
    dupes = conn.execute(
        "SELECT customer_id, list, stock_code, count(*) FROM suggestions "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1"
    ).fetchall()
    assert dupes == []
