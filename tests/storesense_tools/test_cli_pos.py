"""`storesense pos …` / `storesense suggest …` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from storesense_tools.cli import main

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = "".join(
    f"5364{i:02d},2297{i % 4},LONDON BUS COFFEE MUG {i % 4},{1 + i % 3},2010-12-0{1 + i % 5} "
    f"10:00:00,2.5,1785{i % 6}.0,United Kingdom\n"
    for i in range(40)
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_build_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    csv = tmp_path / "sales.csv"
    csv.write_text(HEADER + ROWS)
    assert _run(capsys, "--home", home, "db", "migrate")[0] == 0  # as the hub does at start
    code, out, _ = _run(capsys, "--home", home, "pos", "import", "--csv", str(csv), "--json")
    assert code == 0
    rep = json.loads(out)
    assert (rep["invoices_imported"], rep["lines_imported"], rep["committed"]) == (40, 40, True)
    code, out, _ = _run(capsys, "--home", home, "pos", "import", "--csv", str(csv))
    assert code == 0 and "0 invoices" in out and "40 already there" in out
    code, out, _ = _run(capsys, "--home", home, "suggest", "build", "--cutoff", "2010-12-06")
    assert code == 0 and json.loads(out)["customers"] == 6
    assert _run(capsys, "--home", home, "pos", "birthday", "--customer", "17850",
                "--date", "12-03")[0] == 0  # fmt: skip
    (Path(home) / "store.yaml").write_text("store_id: s1\n")
    code, out, _ = _run(
        capsys, "--home", home, "pos", "card", "--customer", "17850",
        "--at", "2010-12-06T09:00", "--reason", "complaint #12",
    )  # fmt: skip
    card = json.loads(out)
    assert code == 0 and card["customer_id"] == "17850" and card["totals"]["baskets"] == 7
    assert card["usual_items"] and card["active_bonuses"][0]["kind"] == "birthday_earned"
    audit = sqlite3.connect(Path(home) / "hub.sqlite3").execute(
        "SELECT action, customer_id, detail FROM audit WHERE action='view_profile'"
    )
    assert audit.fetchall() == [("view_profile", "17850", "complaint #12")]
    code, _, err = _run(
        capsys, "--home", home, "pos", "card", "--customer", "nobody", "--reason", "x"
    )
    assert code == 2 and "no customer 'nobody'" in err
    code, _, err = _run(
        capsys, "--home", home, "pos", "card", "--customer", "17850", "--reason", " "
    )
    assert code == 2 and "audited" in err


def test_bad_file_exits_2_with_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    csv = tmp_path / "bad.csv"
    csv.write_text(HEADER + ROWS + "536999,22970,MUG,x,2010-12-01 10:00:00,2.5,17850.0,UK\n")
    assert _run(capsys, "--home", home, "db", "migrate")[0] == 0
    code, _, err = _run(capsys, "--home", home, "pos", "import", "--csv", str(csv))
    assert code == 2
    assert "line 42: quantity 'x' is not a whole number" in err
    assert "1 bad row(s) (allowed 0), nothing imported" in err
    code, out, _ = _run(capsys, "--home", home, "pos", "import", "--csv", str(csv),
                        "--max-errors", "1")  # fmt: skip
    assert code == 0 and "40 invoices" in out
    assert _run(capsys, "--home", home, "pos", "import", "--csv", "/nonexistent.csv")[0] == 2
    code, _, err = _run(capsys, "--home", home, "pos", "birthday", "--customer", "1",
                        "--date", "13-01")  # fmt: skip
    assert code == 2 and "MM-DD" in err


# --- suggest export ------------------------------------------------------------------------
# Two taste groups (A, B) before the build's cut-off, plus the awkward customers an export
# must not drop: a thin history (popularity at build time), one who only bought after the
# cut-off (not in the build: the lookup's best-seller fallback), one who bought a new item
# after the cut-off (the card drops it from "new for you"), a cancellation, and an enrolled
# customer with no receipt at all.
CUTOFF = "2011-06-01"
ITEMS = {f"{g}{i}": f"{'RED' if g == '21' else 'BLUE'} MUG {i}" for g in ("21", "22")
         for i in range(1, 7)}  # fmt: skip


def _sales_csv() -> tuple[str, dict[str, set[str]]]:
    """The CSV text and, independently of the product, what each customer bought."""
    rows: list[tuple[str, str, int, str, str]] = []  # invoice, code, qty, time, customer
    n = 0
    for g, base in (("21", 13000), ("22", 14000)):
        for c in range(8):
            for visit in range(2):
                n += 1
                at = f"2011-05-{1 + c * 3 + visit:02d} 10:00:00"
                rows += [(f"5{n:05d}", f"{g}{i}", 1, at, f"{base + c}") for i in range(1, 7)]
    rows += [("600001", f"21{i}", 2, "2011-05-20 11:00:00", "15001") for i in (1, 2, 3)]
    rows += [("600002", "221", 1, "2011-05-21 11:00:00", "15002")]
    rows += [("600003", "POST", 1, "2011-05-21 11:00:00", "15002")]  # postage: not an item
    rows += [("600004", "214", 1, "2011-06-10 09:00:00", "15001")]  # after the cut-off
    rows += [("600005", "211", 3, "2011-06-11 09:00:00", "15003")]  # only after the cut-off
    rows += [("600006", "225", 1, "2011-05-22 12:00:00", "15004")]
    rows += [("C600007", "225", -1, "2011-05-23 12:00:00", "15004")]  # returned it
    text, bought = HEADER, {}
    for inv, code, qty, at, cust in rows:
        desc = ITEMS.get(code, "POSTAGE")
        text += f"{inv},{code},{desc},{qty},{at},2.5,{cust}.0,United Kingdom\n"
        if qty > 0 and not inv.startswith("C"):
            bought.setdefault(cust, set()).add(code)
        bought.setdefault(cust, set())
    return text, bought


def _read_export(path: Path) -> tuple[list[str], dict[str, dict[str, list[tuple[int, str]]]]]:
    import csv

    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        lists: dict[str, dict[str, list[tuple[int, str]]]] = {}
        for cid, kind, rank, item in reader:
            lists.setdefault(cid, {}).setdefault(kind, []).append((int(rank), item))
    return header, lists


@pytest.fixture
def built_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict]:
    """A home with the sales imported through `pos import`, one enrolled customer without
    receipts, and suggestions built with `suggest build --cutoff`."""
    from hub.store import db
    from storesense.paths import hub_db_path

    home = tmp_path / "home"
    text, bought = _sales_csv()
    csv = tmp_path / "sales.csv"
    csv.write_text(text)
    assert _run(capsys, "--home", str(home), "db", "migrate")[0] == 0
    assert _run(capsys, "--home", str(home), "pos", "import", "--csv", str(csv))[0] == 0
    # Only the customers row matters here (an enrolled customer with no receipt); enrolment
    # itself, photos to encrypted templates, is tested in test_enrolment.py.
    conn = db.open_db(hub_db_path(home))
    with db.write(conn):
        conn.execute(
            "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at) "
            "VALUES ('enr-1', 'Erin Enrolled', 'consent-1', 0, 0)"
        )
    conn.close()
    bought["enr-1"] = set()
    code, out, _ = _run(capsys, "--home", str(home), "suggest", "build", "--cutoff", CUTOFF)
    assert code == 0 and json.loads(out)["customers"] == 19  # 15003 and enr-1: not in it
    return str(home), bought


def test_suggest_export_covers_every_customer_as_the_card_does(
    built_home: tuple[str, dict[str, set[str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.shop.card import customer_card
    from hub.shop.suggest import POPULAR
    from hub.store import db
    from storesense.config import parse_config
    from storesense.paths import hub_db_path

    home, bought = built_home
    k = 4
    out = tmp_path / "recs.csv"
    code, text, _ = _run(capsys, "--home", home, "suggest", "export", "--k", str(k),
                         "--out", str(out))  # fmt: skip
    assert code == 0 and f"for {len(bought)} customers" in text
    header, lists = _read_export(out)
    assert header == ["customer_id", "kind", "rank", "item_id"]
    assert set(lists) == set(bought)  # every customer: receipts, late buyer, enrolled only
    for cid, kinds in lists.items():
        assert set(kinds) <= {"usual", "new"}, cid
        for kind, ranked in kinds.items():
            assert [r for r, _ in ranked] == list(range(1, len(ranked) + 1)), (cid, kind)
            assert len(ranked) <= k
            assert len({item for _, item in ranked}) == len(ranked), (cid, kind)
        new = {item for _, item in kinds.get("new", [])}
        assert not new & bought[cid], cid  # never suggest as new what they bought
        assert {item for _, item in kinds.get("usual", [])} <= bought[cid], cid
        assert "POST" not in new
    # full lists where the data allows: 12 items, group customers bought 6
    assert all(len(lists[f"{13000 + c}"]["new"]) == k for c in range(8))
    assert "221" in {i for _, i in lists["15002"]["usual"]}

    conn = db.open_db(hub_db_path(Path(home)))
    popular = [r[0] for r in conn.execute(
        "SELECT stock_code FROM suggestions WHERE customer_id = ? ORDER BY rank", (POPULAR,)
    )]  # fmt: skip
    # not in the build: no usual items, the stored best-sellers minus what they bought since
    assert "usual" not in lists["enr-1"] and "usual" not in lists["15003"]
    assert [i for _, i in lists["enr-1"]["new"]] == popular[:k]
    assert [i for _, i in lists["15003"]["new"]] == [c for c in popular[:k] if c != "211"]
    assert "214" not in {i for _, i in lists["15001"]["new"]}  # bought after the build
    # the same lists, in the same order, as the phone's customer card shows
    cfg = parse_config("store_id: s1\n")
    for cid in bought:
        card = customer_card(conn, cid, cfg, datetime(2011, 7, 1), k=k)
        assert [i for _, i in lists[cid].get("usual", [])] == [
            s.stock_code for s in card.usual_items
        ], cid
        assert [i for _, i in lists[cid].get("new", [])] == [
            s.stock_code for s in card.new_for_you
        ], cid


def test_suggest_export_refuses_bad_k_and_keeps_the_last_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    out = tmp_path / "recs.csv"
    csv = tmp_path / "sales.csv"
    csv.write_text(_sales_csv()[0])
    assert _run(capsys, "--home", home, "db", "migrate")[0] == 0
    assert _run(capsys, "--home", home, "pos", "import", "--csv", str(csv))[0] == 0
    code, _, err = _run(capsys, "--home", home, "suggest", "export", "--out", str(out))
    assert code == 2 and "no suggestions built yet" in err and not out.exists()
    assert _run(capsys, "--home", home, "suggest", "build", "--cutoff", CUTOFF)[0] == 0
    assert _run(capsys, "--home", home, "suggest", "export", "--out", str(out))[0] == 0
    good = out.read_bytes()
    for bad, message in (
        ("0", "--k 0: ask for at least 1 item per list"),
        ("-3", "--k -3: ask for at least 1 item per list"),
        ("11", "--k 11: the last build stored 10 items per list; ask for 1 to 10"),
    ):
        code, _, err = _run(capsys, "--home", home, "suggest", "export", "--k", bad,
                            "--out", str(out))  # fmt: skip
        assert code == 2 and message in err, (bad, err)
    for bad in ("ten", "2.5", ""):
        with pytest.raises(SystemExit) as exc:
            main(["--home", home, "suggest", "export", "--k", bad, "--out", str(out)])
        assert exc.value.code == 2
        assert "argument --k: invalid int value" in capsys.readouterr().err
    code, _, err = _run(capsys, "--home", home, "suggest", "export", "--out",
                        str(tmp_path / "missing" / "recs.csv"))  # fmt: skip
    assert code == 2 and "does not exist" in err
    assert out.read_bytes() == good  # a refused export leaves the last good file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "recs.csv", "sales.csv"]


@pytest.mark.parametrize("bad", ["bad id!", ".hidden", "a/b", "é1"])
def test_pos_birthday_and_card_refuse_an_id_the_id_rule_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """Like enrolment and the POS import (storesense.ids): nothing stored, nothing audited."""
    home = tmp_path / "home"
    assert _run(capsys, "--home", str(home), "db", "migrate")[0] == 0
    (home / "store.yaml").write_text("store_id: s1\n")
    code, _, err = _run(capsys, "--home", str(home), "pos", "birthday", "--customer", bad,
                        "--date", "12-03")  # fmt: skip
    assert code == 2 and f"invalid customer id {bad!r}" in err
    code, _, err = _run(capsys, "--home", str(home), "pos", "card", "--customer", bad,
                        "--reason", "complaint")  # fmt: skip
    assert code == 2 and f"invalid customer id {bad!r}" in err
    conn = sqlite3.connect(home / "hub.sqlite3")
    assert conn.execute("SELECT count(*) FROM pos_birthdays").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM audit WHERE action='view_profile'").fetchone()[0] == 0
    # a valid id with a '.', as loyalty systems use, passes the rule (and is then not found)
    code, _, err = _run(capsys, "--home", str(home), "pos", "card", "--customer", "R.4004",
                        "--reason", "complaint")  # fmt: skip
    assert code == 2 and "no customer 'R.4004'" in err
