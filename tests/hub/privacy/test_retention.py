"""The retention schedule on a frozen clock: each purpose's data goes exactly when its time is
up, nothing else goes, the run is audited and the chain still verifies."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime

import pytest

from hub.alerts import claims as alerts
from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.privacy.retention import run_retention
from hub.store import db
from storesense.privacy_config import DAY_S, RetentionConfig
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice

NOW = time.time() + DAY_S  # the frozen clock: tomorrow, so enrolment rows made now are young
POLICY = RetentionConfig(
    templates_days_after_last_visit=365,
    visits_days=90,
    false_matches_days=365,
    unknown_visitors_days=7,
    audit_days=1095,
)


def _visit(conn: sqlite3.Connection, customer_id: str, at: float) -> str:
    with db.write(conn) as c:
        out = alerts.record_match(
            c,
            Topics("s1"),
            customer_id=customer_id,
            camera_id="door-1",
            first_usable_at=at,
            now=at,
            cooldown_s=60,
            alert_ttl_s=60,
        )
        c.execute("UPDATE alerts SET state='expired' WHERE alert_id=?", (out.alert_id,))
    return str(out.alert_id)


def _count(conn: sqlite3.Connection, table: str, where: str = "1") -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


@pytest.fixture
def store(gallery: Gallery) -> Gallery:
    """c_recent visited 10 days ago, c_stale 400 days ago, c_never enrolled 430 days ago and
    never came; c_new enrolled yesterday; plus old and new unknown visitors, false matches
    and audit rows."""
    conn = gallery.conn
    with db.write(conn) as c:  # the oldest row of the log, older than 3 years
        audit.append(c, at=NOW - 1200 * DAY_S, actor="x", action="old")
    for cid in ("c_recent", "c_stale", "c_never", "c_new"):
        gallery.enrol(cid, cid, consent(f"f-{cid}"), [(unit(hash(cid) % 1000), 0.9, "t")])
    conn.execute(
        "UPDATE customers SET consent_at=?, created_at=?", (NOW - 500 * DAY_S, NOW - 500 * DAY_S)
    )
    conn.execute(
        "UPDATE customers SET consent_at=?, created_at=? WHERE customer_id='c_never'",
        (NOW - 430 * DAY_S, NOW - 430 * DAY_S),
    )
    conn.execute(
        "UPDATE customers SET consent_at=?, created_at=? WHERE customer_id='c_new'",
        (NOW - DAY_S, NOW - DAY_S),
    )
    _visit(conn, "c_stale", NOW - 400 * DAY_S)
    _visit(conn, "c_recent", NOW - 200 * DAY_S)  # an old visit of a recent customer
    _visit(conn, "c_recent", NOW - 10 * DAY_S)
    with db.write(conn) as c:
        c.executemany(
            "INSERT INTO unknown_visitors(track_id, camera_id, seen_at) VALUES (?, 'door-1', ?)",
            [("old", NOW - 8 * DAY_S), ("new", NOW - 6 * DAY_S)],
        )
        c.executemany(
            "INSERT INTO false_matches(at, alert_id, customer_id, camera_id, staff_id) "
            "VALUES (?, ?, 'c_recent', 'door-1', 'bob')",
            [(NOW - 366 * DAY_S, "fm-old"), (NOW - 30 * DAY_S, "fm-new")],
        )
    add_invoice(conn, "INV1", "c_stale", datetime(2026, 1, 5, 10), [("A1", "MUG", 2, 3.5)])
    return gallery


def test_each_purpose_keeps_its_data_exactly_as_long_as_configured(store: Gallery) -> None:
    conn = store.conn
    version = store.version()
    report = run_retention(conn, POLICY, now=NOW)
    # face profiles: a year after the last visit (or the enrolment, if they never came back)
    left = {r[0] for r in conn.execute("SELECT customer_id FROM customers")}
    assert left == {"c_recent", "c_new"}
    assert (report.face_profiles, report.templates) == (2, 2)
    assert _count(conn, "templates", "customer_id IN ('c_stale', 'c_never')") == 0
    assert store.version() > version  # the running hub stops matching them
    # visits and their alerts: 90 days
    assert (report.visits, report.alerts) == (2, 2)
    assert _count(conn, "visits") == 1 and _count(conn, "alerts") == 1
    assert _count(conn, "alert_matches") == 1
    assert (report.false_matches, report.unknown_visitors) == (1, 1)
    assert [r[0] for r in conn.execute("SELECT alert_id FROM false_matches")] == ["fm-new"]
    assert report.audit_rows == 1
    assert _count(conn, "audit", "action='old'") == 0
    # purchases are not biometric data: untouched
    assert _count(conn, "pos_invoices", "customer_id='c_stale'") == 1
    # the run is audited, per profile and as a whole, and the chain verifies after the purge
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY audit_id")]
    assert actions.count("retention_delete") == 2 and actions[-1] == "retention_run"
    assert audit.verify(conn).ok
    # a second run the same night finds nothing more
    again = run_retention(conn, POLICY, now=NOW)
    assert (again.face_profiles, again.visits, again.alerts, again.unknown_visitors) == (0, 0, 0, 0)


def test_a_dry_run_counts_the_same_and_deletes_nothing(store: Gallery) -> None:
    conn = store.conn
    before = {t: _count(conn, t) for t in ("customers", "templates", "visits", "audit")}
    dry = run_retention(conn, POLICY, now=NOW, dry_run=True)
    assert {t: _count(conn, t) for t in before} == before
    real = run_retention(conn, POLICY, now=NOW)
    assert (dry.face_profiles, dry.visits, dry.unknown_visitors) == (
        real.face_profiles,
        real.visits,
        real.unknown_visitors,
    )


def test_one_day_earlier_the_stale_profile_is_still_kept(store: Gallery) -> None:
    """The boundary: c_stale's last visit is 400 days before NOW; 35 days before NOW it was
    365 days old, not older."""
    run_retention(store.conn, POLICY, now=NOW - 35 * DAY_S)
    left = {r[0] for r in store.conn.execute("SELECT customer_id FROM customers")}
    assert "c_stale" in left and "c_never" not in left


def test_the_policy_cannot_exceed_the_legal_ceiling() -> None:
    with pytest.raises(ValueError, match="less than or equal to 1095"):
        RetentionConfig(templates_days_after_last_visit=2000)
