"""After a connect the hub makes the broker's retained alert messages true again
(``hub.alerts.claims.reannounce``): recent clears repeated, every retained alert's state."""

from __future__ import annotations

import time
from pathlib import Path

from hub.alerts import claims as alerts
from hub.bus import outbox
from hub.store import db
from storesense import messages as m
from storesense.topics import Topics
from tests.hub.conftest import open_alerts


def test_resend_retained_clears_marks_only_recent_clears_under_the_prefix(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    t = Topics("s1")
    with db.write(conn):
        outbox.enqueue(conn, t.alert("old"), b"", True, now=100.0)  # before the window
        outbox.enqueue(conn, t.alert("a1"), b"", True, now=200.0)  # a recent clear
        outbox.enqueue(conn, t.alert("a2"), b"state", True, now=200.0)  # a state: not a clear
        outbox.enqueue(conn, t.hub_status, b"", True, now=200.0)  # not an alert topic
        outbox.enqueue(conn, t.chain("claim"), b"", False, now=200.0)  # not retained
        conn.execute("UPDATE outbox SET sent_at=300.0")
    with db.write(conn):
        assert outbox.resend_retained_clears(conn, t.alert(""), since=150.0) == 1
    unsent = [r[0] for r in conn.execute("SELECT topic FROM outbox WHERE sent_at IS NULL")]
    assert unsent == [t.alert("a1")]


def test_reannounce_publishes_each_retained_alert_after_the_recent_clears(tmp_path: Path) -> None:
    home = tmp_path
    conn = db.migrate_db(home / "hub.sqlite3")
    t = Topics("s1")
    now = time.time()
    ids = open_alerts(conn, home, t, 3)
    with db.write(conn):  # the third alert long closed and cleared: it stays off the broker
        conn.execute("UPDATE alerts SET retained_cleared=1 WHERE alert_id=?", (ids[2],))
        outbox.enqueue(conn, t.alert(ids[2]), b"", True, now=now)
        conn.execute("UPDATE outbox SET sent_at=?", (now,))
    with db.write(conn):
        assert alerts.reannounce(conn, t, now, clears_since=now - 600) == 2
    rows = conn.execute(
        "SELECT topic, payload FROM outbox WHERE sent_at IS NULL ORDER BY outbox_id"
    ).fetchall()
    topics = [r[0] for r in rows]
    # the clear first (its row is older), then the two live alerts' current states
    assert topics == [t.alert(ids[2]), t.alert(ids[0]), t.alert(ids[1])]
    assert bytes(rows[0][1]) == b""
    for (_, payload), alert_id in zip(rows[1:], ids[:2], strict=True):
        alert = m.decode(bytes(payload), m.Alert)
        seq = conn.execute("SELECT seq FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()[0]
        assert (alert.alert_id, alert.state, alert.seq) == (alert_id, "open", seq)
