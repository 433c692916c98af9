"""The parked-writes file on its own; the hub parking and replaying it, with a real lock,
broker and kill -9: tests/hub/test_service_db_locked.py."""

from __future__ import annotations

from pathlib import Path

from hub.bus.parked import ParkedWrites, parked_path


def test_a_parked_file_torn_by_a_crash_mid_append_keeps_its_whole_lines(tmp_path: Path) -> None:
    """The last line half-written (power cut during the append; that message was never
    acknowledged, so the broker still has it): skipped and counted, the others kept."""
    parked = ParkedWrites(parked_path(tmp_path))
    parked.park({"id": "a", "at": 1.0})
    parked.park({"id": "b", "at": 2.0})
    assert parked_path(tmp_path).stat().st_mode & 0o777 == 0o600  # whatever the umask
    with parked_path(tmp_path).open("a") as fh:
        fh.write('{"id": "c", "at"')
    again = ParkedWrites(parked_path(tmp_path))
    assert [e["id"] for e in again.pending()] == ["a", "b"] and again.torn == 1
    assert "b" in again and "c" not in again
    again.clear()
    assert not parked_path(tmp_path).exists() and not ParkedWrites(parked_path(tmp_path))
