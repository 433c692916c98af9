"""``hub.bus.outbox.resend``: only sent, non-retained rows under the prefix, from a time on."""

from __future__ import annotations

from pathlib import Path

from hub.bus import outbox
from hub.chain.feed import resend_since
from hub.store import db
from storesense.topics import Topics


def test_resend_marks_only_the_chain_window_unsent(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    t = Topics("s1")
    with db.write(conn):
        outbox.enqueue(conn, t.chain("claim"), b"old", False, now=100.0)
        outbox.enqueue(conn, t.chain("claim"), b"new", False, now=200.0)
        outbox.enqueue(conn, t.alert("a1"), b"retained", True, now=200.0)  # never re-sent
        outbox.enqueue(conn, t.hub_status, b"other", False, now=200.0)  # not the chain's
        conn.execute("UPDATE outbox SET sent_at=300.0")
    assert resend_since(conn, t, since=150.0) == 1
    unsent = [bytes(r[0]) for r in conn.execute("SELECT payload FROM outbox WHERE sent_at IS NULL")]
    assert unsent == [b"new"]
    assert resend_since(conn, Topics("s2"), since=0.0) == 0  # another store's prefix
