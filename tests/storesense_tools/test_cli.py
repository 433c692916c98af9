import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.store import db
from storesense.paths import resolve_home
from storesense_tools.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_config_check_accepts_the_example(capsys) -> None:
    assert main(["config", "check", str(REPO / "config" / "store.example.yaml")]) == 0
    assert "ok (store store-001, 2 cameras)" in capsys.readouterr().out


def test_config_errors_are_one_clear_line_not_a_traceback(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "store.yaml"
    bad.write_text("store_id: s1\nvisits:\n  cooldown: 5\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: visits.cooldown: unknown key" in err
    assert "Traceback" not in err


def test_hub_without_a_config_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path), "hub", "run"]) == 2
    assert "pass --config FILE" in capsys.readouterr().err


def test_edge_run_for_an_unknown_camera(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "store.yaml"
    cfg.write_text("store_id: s1\ncameras:\n  - {id: door-1, role: entrance, source: 0}\n")
    assert (
        main(["--home", str(tmp_path), "--config", str(cfg), "edge", "run", "--camera", "door-2"])
        == 2
    )
    assert "no camera 'door-2'" in capsys.readouterr().err


def test_erase_of_an_unknown_customer(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path), "db", "migrate"]) == 0  # as the hub does at start
    assert main(["--home", str(tmp_path), "erase", "--customer", "nobody"]) == 2
    assert "no customer 'nobody'" in capsys.readouterr().err


def test_home_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORESENSE_HOME", str(tmp_path / "from-env"))
    assert resolve_home(None) == tmp_path / "from-env"
    assert resolve_home(str(tmp_path / "from-flag")) == tmp_path / "from-flag"
    assert (tmp_path / "from-flag").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("STORESENSE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home(None) == tmp_path / "xdg" / "storesense"


def test_on_a_fresh_home_clis_refuse_until_the_database_is_migrated(tmp_path: Path) -> None:
    """Only the hub (or `storesense db migrate`) creates and upgrades the database; any other
    command says so in one line instead of creating an empty file or migrating under a hub.
    Real processes, as an installer or an operator runs them."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "storesense_tools.cli", "--home", str(tmp_path), *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    csv = tmp_path / "sales.csv"
    csv.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    )
    refused = run("pos", "import", "--csv", str(csv))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"storesense: no hub database at {tmp_path / 'hub.sqlite3'}: start the hub or run "
        "`storesense db migrate`"
    ]
    assert not (tmp_path / "hub.sqlite3").exists()
    first = run("db", "migrate")
    assert first.returncode == 0, first.stderr
    every = ", ".join(str(v) for v in range(1, db.SCHEMA_VERSION + 1))
    assert first.stdout.strip().endswith(f"schema version {db.SCHEMA_VERSION} (applied {every})")
    assert run("db", "migrate").stdout.strip().endswith("(nothing to apply)")
    assert run("pos", "import", "--csv", str(csv)).returncode == 0
    # a database an older release left behind: refused until migrated, then fine
    conn = sqlite3.connect(tmp_path / "hub.sqlite3")
    conn.execute("DELETE FROM schema_migrations WHERE version > 1")
    conn.commit()
    conn.close()
    old = run("pos", "import", "--csv", str(csv))
    assert (old.returncode, old.stderr.strip()) == (
        2,
        f"storesense: database at version 1, this program expects {db.SCHEMA_VERSION}: "
        "start the hub or run `storesense db migrate`",
    )
