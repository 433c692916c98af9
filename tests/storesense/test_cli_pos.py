"""`storesense pos …` / `storesense suggest …` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from storesense.cli import main

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
