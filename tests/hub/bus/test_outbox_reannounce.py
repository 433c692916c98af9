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
    rows = conn.execute("SELECT topic, payload FROM outbox WHERE sent_at IS NULL").fetchall()
    by_topic = {r[0]: bytes(r[1]) for r in rows}
    # the recent clear, and the two live alerts' current states (order across topics is free)
    assert sorted(by_topic) == sorted(t.alert(a) for a in ids)
    assert by_topic[t.alert(ids[2])] == b""
    for alert_id in ids[:2]:
        alert = m.decode(by_topic[t.alert(alert_id)], m.Alert)
        seq = conn.execute("SELECT seq FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()[0]
        assert (alert.alert_id, alert.state, alert.seq) == (alert_id, "open", seq)


def test_reannounce_reuses_each_topics_newest_row_so_reconnects_do_not_grow_the_table(
    tmp_path: Path,
) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    t = Topics("s1")
    now = time.time()
    ids = open_alerts(conn, tmp_path, t, 3)
    rows_before = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    for _ in range(5):  # five reconnects, each re-announcing once everything was sent
        with db.write(conn):
            conn.execute("UPDATE outbox SET sent_at=? WHERE sent_at IS NULL", (now,))
        with db.write(conn):
            assert alerts.reannounce(conn, t, now, clears_since=now - 600) == 3
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == rows_before
    unsent = {r[0] for r in conn.execute("SELECT topic FROM outbox WHERE sent_at IS NULL")}
    assert unsent == {t.alert(a) for a in ids}


def test_republish_leaves_an_unsent_newest_row_and_enqueues_where_none_is_left(
    tmp_path: Path,
) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    t = Topics("s1")
    with db.write(conn):
        outbox.enqueue(conn, t.alert("a1"), b"old", True, now=1.0)
        outbox.enqueue(conn, t.alert("a1"), b"newest, unsent", True, now=2.0)
    with db.write(conn):
        outbox.republish(conn, t.alert("a1"), _Wire(b"current"), now=3.0)
        outbox.republish(conn, t.alert("a2"), _Wire(b"a2 state"), now=3.0)  # its rows purged
    rows = conn.execute("SELECT topic, payload, sent_at FROM outbox ORDER BY outbox_id").fetchall()
    # the unsent newest row goes out as it is (it already holds the latest state written)
    assert [(r[0], bytes(r[1]), r[2]) for r in rows] == [
        (t.alert("a1"), b"old", None),
        (t.alert("a1"), b"newest, unsent", None),
        (t.alert("a2"), b"a2 state", None),
    ]


class _Wire:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def to_bytes(self) -> bytes:
        return self.payload
