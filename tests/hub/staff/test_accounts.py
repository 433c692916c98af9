"""Staff accounts and sessions in the hub database (``hub.staff``), and the login throttle."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.staff import accounts
from hub.staff.throttle import LoginThrottle, Rule, Throttled
from hub.store import db
from storesense.paths import hub_db_path

PASSWORD = "correct horse battery"


def test_sessions_are_stored_hashed_and_end_on_logout_expiry_or_password_change(
    tmp_path: Path,
) -> None:
    conn = db.migrate_db(hub_db_path(tmp_path))
    staff = accounts.add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD, now=1000.0)
    token, session = accounts.create_session(conn, staff, now=1000.0)
    stored = [r[0] for r in conn.execute("SELECT token_hash FROM web_sessions")]
    assert stored == [accounts.token_hash(token)] and token not in stored
    assert accounts.get_session(conn, token, now=1001.0) == session
    assert accounts.get_session(conn, token, now=1000.0 + accounts.SESSION_TTL_S) is None
    assert accounts.get_session(conn, "x" * 200, now=1001.0) is None
    accounts.end_session(conn, token)
    assert accounts.get_session(conn, token, now=1001.0) is None
    token, _ = accounts.create_session(conn, staff, now=1002.0)
    accounts.add_staff(conn, "alice", "Alice A.", "salesperson", "a new password!", replace=True)
    assert accounts.get_session(conn, token, now=1003.0) is None
    assert accounts.staff_names(conn) == {"alice": "Alice A."}
    with pytest.raises(accounts.AccountError):
        accounts.add_staff(conn, "bad id", "X", "salesperson", PASSWORD)


def test_throttle_counts_per_key_inside_the_window() -> None:
    rule = Rule("account", free=2, window_s=10, max_delay_s=30)
    wide = Rule("wide", free=100, window_s=10, max_delay_s=30)
    t = LoginThrottle((wide, wide, rule))  # only the per-account rule can bite here
    t.failed(t.reserve("a", "1", now=0))
    t.failed(t.reserve("a", "2", now=1))
    with pytest.raises(Throttled):  # blocked for "a", from any client
        t.reserve("a", "3", now=1.5)
    t.reserve("b", "1", now=2)  # client "1" is not blocked
    t.reserve("a", "1", now=11.5)  # the first failure left the window
