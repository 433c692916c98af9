"""Floor ingest survives a hub crash: a real SQLite file, a synthetic store day, no close().

The "crash" drops FloorIngest A without ``close()`` and closes its connection between two
messages (a crash inside a transaction rolls it back and the un-acked message is redelivered,
which is the broker's part, tested elsewhere). B opens the same file and gets the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hub.floor.ingest import FloorIngest
from hub.store import db
from storesense.config import StoreConfig
from storesense.topics import Topics
from tests.hub.floor_synth import T0, floor_cfg, messages, two_camera_day

NOW = T0 + 86400
SECONDS = 300
STORE = "tcrash"


def _with(cfg: StoreConfig, **floor) -> StoreConfig:
    return cfg.model_copy(update={"floor": cfg.floor.model_copy(update=floor)})


@pytest.fixture(scope="module")
def day() -> list[tuple[str, bytes]]:
    """Two cameras watching the same 12 shoppers (cam-b 0.2 m off), in arrival order."""
    return two_camera_day(floor_cfg(store=STORE).store_id, 12, seed=7, seconds=SECONDS)


def _feed(ing: FloorIngest, msgs: list[tuple[str, bytes]]) -> None:
    for topic, payload in msgs:
        ing.handle(topic, payload, NOW)


def _results(conn) -> tuple[list[tuple], list[tuple], list[tuple]]:
    visits = [
        tuple(r)
        for r in conn.execute("SELECT * FROM floor_visits ORDER BY person_key, zone, enter_t")
    ]
    grid = [
        (r[0], r[1], r[2], r[3], round(r[4], 6))
        for r in conn.execute("SELECT * FROM floor_grid ORDER BY day, cell_mm, ix, iy")
    ]
    days = [tuple(r) for r in conn.execute("SELECT * FROM floor_days ORDER BY day")]
    return visits, grid, days


def _uninterrupted(tmp_path: Path, cfg: StoreConfig, msgs) -> tuple:
    ing = FloorIngest(db.migrate_db(tmp_path / "ref.sqlite3"), cfg)
    _feed(ing, msgs)
    ing.close()
    return _results(ing.conn)


def _crash_at(tmp_path: Path, cfg: StoreConfig, msgs, cut: int) -> FloorIngest:
    a = FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), cfg)
    _feed(a, msgs[:cut])
    assert a.journeys.tracks and a.grid.held_slots  # visits and slots are in progress
    a.conn.close()  # no close(): what a kill -9 leaves behind is the committed transactions
    return FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), cfg)


def test_crash_with_per_message_snapshots_loses_nothing(tmp_path: Path, day):
    cfg = _with(floor_cfg(store=STORE), snapshot_s=0)
    ref_visits, ref_grid, ref_days = _uninterrupted(tmp_path, cfg, day)
    assert len(ref_visits) >= 12 and ref_grid
    cut = len(day) // 2 + 3  # mid-slot: the slot in progress must be continued, not restarted
    b = _crash_at(tmp_path, cfg, day, cut)
    assert b.restore_problems == []
    assert b.journeys.tracks  # the open visits came back
    _feed(b, day[cut:])
    b.close()
    visits, grid, days = _results(b.conn)
    assert visits == ref_visits  # exactly: every visit, same person keys and times
    assert grid == ref_grid  # person-seconds per cell, written once
    assert days == ref_days


def test_crash_with_default_snapshot_interval(tmp_path: Path, day):
    """5 s snapshots: person-seconds stay exact; zone visits lose at most the last 5 s."""
    cfg = floor_cfg(store=STORE)
    assert cfg.floor.snapshot_s == 5.0
    ref_visits, ref_grid, _ = _uninterrupted(tmp_path, cfg, day)
    cut = len(day) // 2 + 7  # not on a snapshot boundary: 3.5 s of state changes are lost
    b = _crash_at(tmp_path, cfg, day, cut)
    _feed(b, day[cut:])
    b.close()
    visits, grid, _ = _results(b.conn)
    assert grid == ref_grid
    ref = {(v[0], v[1]): v for v in ref_visits}
    got = {(v[0], v[1]): v for v in visits}
    assert got.keys() == ref.keys()  # no visit lost, none invented, no person split
    for key, v in got.items():
        assert abs(v[3] - ref[key][3]) <= cfg.floor.snapshot_s  # enter_t
        assert abs(v[4] - ref[key][4]) <= cfg.floor.snapshot_s  # exit_t


@pytest.mark.parametrize(
    ("change", "slots_kept"),
    [
        ({"cell_m": 1.0}, False),  # another grid: slots dropped and sealed
        ({"dwell_exit_s": 6.0}, True),  # same grid, other zone rules: only tracks dropped
    ],
)
def test_state_saved_under_another_config_is_dropped_and_logged(
    tmp_path: Path, day, caplog, change, slots_kept
):
    cfg = floor_cfg(store=STORE)
    cut = len(day) // 2
    a = FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), cfg)
    _feed(a, day[:cut])
    a.conn.close()
    with caplog.at_level(logging.WARNING, logger="hub"):
        b = FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), _with(cfg, **change))
    assert any("another configuration" in p for p in b.restore_problems)
    assert "another configuration" in caplog.text
    assert not b.journeys.tracks
    assert (b.grid.held_slots > 0) == slots_kept
    if not slots_kept:
        assert "differs from the configured" in caplog.text
        # a late frame for a slot that was written but is no longer held: counted, not added
        before = _results(b.conn)[1]
        late = messages("cam-a", T0 + 100, 1, lambda t: [(99, 5.0, 5.0)])[0]
        b.handle(Topics(cfg.store_id).floor("cam-a"), late.to_bytes(), NOW)
        assert b.grid.stats.late_frames == 2
        assert _results(b.conn)[1] == before
    _feed(b, day[cut:])
    b.close()
    assert b.stats.visits > 0


def test_corrupt_saved_state_is_logged_and_ingest_goes_on(tmp_path: Path, day, caplog):
    cfg = floor_cfg(store=STORE)
    cut = len(day) // 2
    a = FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), cfg)
    _feed(a, day[:cut])
    a.conn.execute('UPDATE floor_state SET body = \'{"v": 1, "config": [1\'')
    a.conn.execute(
        "UPDATE floor_slots SET body = '{\"day\": 3}' "
        "WHERE slot = (SELECT max(slot) FROM floor_slots)"
    )
    a.conn.close()
    with caplog.at_level(logging.WARNING, logger="hub"):
        b = FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), cfg)
    assert len(b.restore_problems) == 2, b.restore_problems
    assert "floor state dropped: JSONDecodeError" in caplog.text
    assert "unreadable saved slot (KeyError" in caplog.text
    _feed(b, day[cut:])
    b.close()
    assert b.stats.visits > 0
    # the damaged rows were replaced: the next start restores cleanly
    c = FloorIngest(b.conn, cfg)
    assert c.restore_problems == []
