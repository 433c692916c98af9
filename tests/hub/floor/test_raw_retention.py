"""The floor room's raw rows (zone visits, camera runs) are kept ``floor.raw_keep_days`` and no
longer; the daily aggregates a report draws stay (issue 12, the kept history). Real shoppers
through the hub's real ingest into a real SQLite file, pruned, then read back from a new
connection."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from hub.floor.analysis import analyse
from hub.floor.ingest import FloorIngest
from hub.floor.retention import prune_raw, pruned_before
from hub.store import db
from storesense.config import StoreConfig, parse_config
from storesense.topics import Topics
from storesense_tools import cli
from storesense_tools.store_sim import local_start
from tests.hub.floor_synth import T0, floor_cfg, messages, shoppers

TODAY = dt.date(2026, 12, 2)
OLD = TODAY - dt.timedelta(days=100)
RECENT = TODAY - dt.timedelta(days=10)
TABLES = ("floor_visits", "floor_grid", "floor_days", "floor_camera_heights")  # by day


def _walk(conn: sqlite3.Connection, cfg: StoreConfig, day: dt.date, n: int = 8) -> None:
    """Ten minutes of ``n`` shoppers on ``day`` from 10:00, one camera run, real ingest."""
    start = local_start(day.isoformat(), 10)
    ing = FloorIngest(conn, cfg)
    topics = Topics(cfg.store_id)
    who = shoppers(n, seed=n, seconds=600)
    for msg in messages("cam-a", start, 600, lambda t: who(t - start + T0), interval_s=10.0):
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=start + 86400)
    ing.close()


def _counts(conn: sqlite3.Connection, day: dt.date) -> dict[str, int]:
    out = {
        t: conn.execute(f"SELECT count(*) FROM {t} WHERE day = ?", (day.isoformat(),)).fetchone()[0]
        for t in TABLES
    }
    out["floor_runs"] = conn.execute("SELECT count(*) FROM floor_runs").fetchone()[0]  # all
    return out


@pytest.fixture
def hub_db(tmp_path: Path) -> tuple[Path, StoreConfig]:
    cfg = floor_cfg("cameras: [{id: cam-a, role: floor, source: 0}]\n")
    path = tmp_path / "hub.sqlite3"
    conn = db.migrate_db(path)
    _walk(conn, cfg, OLD)
    _walk(conn, cfg, RECENT)
    conn.close()
    return path, cfg


def test_old_visits_and_runs_go_the_daily_aggregates_stay(hub_db):
    path, cfg = hub_db
    conn = db.open_db(path)
    old, recent = _counts(conn, OLD), _counts(conn, RECENT)
    assert old["floor_visits"] > 0 and recent["floor_visits"] > 0
    assert old["floor_grid"] > 0 and old["floor_days"] == 1 and old["floor_runs"] == 2
    got = prune_raw(conn, 90, TODAY)
    conn.close()
    assert got.visits == old["floor_visits"] and got.runs == 1
    assert got.kept_from == (TODAY - dt.timedelta(days=90)).isoformat()

    conn = db.open_db(path)  # what is on disk, not what one connection saw
    try:
        after_old, after_recent = _counts(conn, OLD), _counts(conn, RECENT)
        assert after_old["floor_visits"] == 0 and after_old["floor_runs"] == 1  # the recent run
        assert after_recent == {**recent, "floor_runs": 1}  # nothing of the kept days touched
        for t in ("floor_grid", "floor_days", "floor_camera_heights"):
            assert after_old[t] == old[t], t  # the daily aggregates stay
        assert pruned_before(conn) == TODAY - dt.timedelta(days=90)
        again = prune_raw(conn, 90, TODAY)
        assert (again.visits, again.runs) == (0, 0)  # idempotent
        # a later run with a longer keep never moves the recorded day back
        prune_raw(conn, 200, TODAY)
        assert pruned_before(conn) == TODAY - dt.timedelta(days=90)

        # the old day's report: the map is still there, the missing visits are said
        a = analyse(conn, cfg, OLD, OLD)
        assert a.grid.sum() > 0 and a.kpis.visits == 0
        assert a.provisional and "were deleted after 90 days" in (a.provisional_reason or "")
        assert all(i.confidence == "low" for i in a.insights)
        assert all("were deleted" in i.confidence_reason for i in a.insights)
        b = analyse(conn, cfg, RECENT, RECENT)
        assert b.kpis.visits > 0 and "deleted" not in (b.provisional_reason or "")
    finally:
        conn.close()


def test_prune_is_one_transaction(hub_db):
    """A failure while deleting the runs (a real SQLite trigger aborts it) leaves the visits
    deleted just before it in place, and records nothing."""
    path, _ = hub_db
    conn = db.open_db(path)
    try:
        before = _counts(conn, OLD)
        conn.execute(
            "CREATE TEMP TRIGGER no_run_delete BEFORE DELETE ON floor_runs "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            prune_raw(conn, 90, TODAY)
        assert _counts(conn, OLD) == before and pruned_before(conn) is None
        conn.execute("DROP TRIGGER no_run_delete")
        assert prune_raw(conn, 90, TODAY).visits == before["floor_visits"]
        with pytest.raises(ValueError):
            prune_raw(conn, 0, TODAY)
    finally:
        conn.close()


def test_nightly_report_prunes_raw_rows_with_the_configured_days(tmp_path, capsys):
    """`storesense report` (the nightly unit) prunes with ``floor.raw_keep_days``; 90 by
    default; under 40 is refused (the month report and its week-earlier twin need 38)."""
    home = tmp_path / "home"
    home.mkdir()
    extra = "cameras: [{id: cam-a, role: floor, source: 0}]\n"
    cfg = floor_cfg(extra, store="raw1")
    conn = db.migrate_db(home / "hub.sqlite3")
    today = dt.date.today()
    _walk(conn, cfg, today - dt.timedelta(days=45))
    _walk(conn, cfg, today - dt.timedelta(days=20))
    conn.close()
    conf = tmp_path / "store.yaml"
    text = (
        "store_id: raw1\nfloor: {width_m: 10, height_m: 8, cell_m: 0.5, sample_s: 5, "
        "raw_keep_days: 40}\n" + extra
    )
    conf.write_text(text)
    rc = cli.main(["--home", str(home), "--config", str(conf), "report", "--date", "today"])
    out = capsys.readouterr().out
    assert rc == 1, out  # no floor data today: the page says so, the unit fails visibly
    assert "zone visits and 1 camera runs from before" in out and "raw_keep_days 40" in out
    conn = db.open_db(home / "hub.sqlite3")
    try:
        days = [r[0] for r in conn.execute("SELECT DISTINCT day FROM floor_visits")]
        assert days == [(today - dt.timedelta(days=20)).isoformat()]
        assert conn.execute("SELECT count(DISTINCT day) FROM floor_days").fetchone()[0] == 2
    finally:
        conn.close()
    assert parse_config("store_id: d\n").floor.raw_keep_days == 90
    with pytest.raises(ValueError, match="raw_keep_days"):
        parse_config("store_id: d\nfloor: {raw_keep_days: 39}\n")
