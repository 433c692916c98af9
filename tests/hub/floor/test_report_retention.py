"""Report history is kept for ``floor.report_keep_days`` and no longer: the nightly
``storesense report`` prunes ``HOME/reports`` after writing (issue 12, the kept history)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.floor.report import folder_end, prune_reports
from hub.store import db
from storesense.config import parse_config
from storesense_tools import cli

TODAY = dt.date(2026, 12, 2)


def _folders(home: Path, names: list[str]) -> None:
    for n in names:
        d = home / "reports" / n
        d.mkdir(parents=True)
        (d / "report.html").write_text("<p>old</p>")


def test_folder_end_of_each_period():
    assert folder_end("2026-11-30") == dt.date(2026, 11, 30)
    assert folder_end("2026-W01") == dt.date(2026, 1, 4)  # ISO week 1 of 2026: Dec 29 - Jan 4
    assert folder_end("2024-02") == dt.date(2024, 2, 29)
    assert folder_end("2026-W54") is None and folder_end("2026-13") is None
    assert folder_end("notes") is None and folder_end("2026-11-31") is None


def test_prune_keeps_the_last_n_days_and_nothing_else_is_touched(tmp_path):
    home = tmp_path
    _folders(
        home,
        [
            "2026-11-02",  # ended 30 days ago: kept (limit 30)
            "2026-11-01",  # 31 days ago: removed
            "2026-W44",  # Oct 26 - Nov 1: removed
            "2026-W45",  # Nov 2 - Nov 8: kept (it ends inside the limit)
            "2026-10",  # ended Oct 31: removed
            "2026-11",  # kept
            "2026-W99",  # not a real week: never touched
            "my-notes",  # not a report: never touched
        ],
    )
    (home / "reports" / "2020-01-01").symlink_to(home / "reports" / "my-notes")
    gone = prune_reports(home, 30, TODAY)
    assert gone == ["2026-10", "2026-11-01", "2026-W44"]
    left = sorted(p.name for p in (home / "reports").iterdir())
    assert left == ["2020-01-01", "2026-11", "2026-11-02", "2026-W45", "2026-W99", "my-notes"]
    assert (home / "reports" / "my-notes" / "report.html").is_file()  # not followed
    assert prune_reports(home, 30, TODAY) == []  # idempotent
    assert prune_reports(tmp_path / "nowhere", 30, TODAY) == []
    with pytest.raises(ValueError):
        prune_reports(home, 0, TODAY)


def test_nightly_report_prunes_with_the_configured_days(tmp_path, capsys):
    """`storesense report` (what the nightly unit runs) writes today's folders, then removes
    those past ``floor.report_keep_days`` from the store YAML; with ``--out`` it prunes
    nothing (a one-off report elsewhere)."""
    home = tmp_path / "home"
    home.mkdir()
    db.migrate_db(home / "hub.sqlite3").close()
    conf = tmp_path / "store.yaml"
    conf.write_text("store_id: r1\nfloor: {width_m: 6, height_m: 4, report_keep_days: 10}\n")
    assert parse_config(conf.read_text()).floor.report_keep_days == 10
    today = dt.date.today()
    old = (today - dt.timedelta(days=11)).isoformat()
    recent = (today - dt.timedelta(days=9)).isoformat()
    _folders(home, [old, recent])
    base = ["--home", str(home), "--config", str(conf), "report", "--date", "today"]
    assert cli.main([*base, "--out", str(tmp_path / "elsewhere")]) == 0
    assert (home / "reports" / old).is_dir()  # --out: history untouched
    assert cli.main(base) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert f"removed 1 report folders older than 10 days: {old}" in out
    assert not (home / "reports" / old).exists()
    assert (home / "reports" / recent).is_dir() and (home / "reports" / today.isoformat()).is_dir()
    assert parse_config("store_id: d\n").floor.report_keep_days == 400  # the default
