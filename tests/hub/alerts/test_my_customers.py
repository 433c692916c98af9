"""'Never lose a customer': My customers, hand over, idle claims that end, missed alerts.

Real SQLite files through the migrations (the ``gallery``/``db_path`` fixtures of
tests/hub/conftest.py); every transition is the claim state machine's conditional UPDATE.
"""

from __future__ import annotations

import datetime as dt
import time

from hub.alerts import claims as alerts
from hub.alerts import views
from hub.faces.gallery import Gallery
from storesense import messages as m
from tests.consent import consent
from tests.hub.alerts.test_claims import TOPICS, _open_alert, _outbox
from tests.hub.conftest import unit


def _press(conn, alert_id: str, staff_id: str, action: str, now: float) -> m.ClaimResult:
    req = m.ClaimRequest(alert_id=alert_id, staff_id=staff_id, action=action)
    res = alerts.handle_claim(conn, TOPICS, req, now, reopen_ttl_s=90)
    assert res is not None
    return res


def test_my_customers_lists_what_i_hold_until_done(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    now = time.time()
    first = _open_alert(conn, now=now)
    assert views.my_customers(conn, "alice") == []
    assert _press(conn, first, "alice", "claim", now + 1).outcome == "won"
    (held,) = views.my_customers(conn, "alice", idle_s=600, confirm_s=60)
    assert (held["alert_id"], held["customer_name"], held["camera_id"]) == (
        first, "Ada Lovelace", "door-1"
    )  # fmt: skip
    assert (held["ask_at"], held["ends_at"]) == (now + 601, now + 661)
    assert views.my_customers(conn, "bob") == []  # only the claimer's list
    assert _press(conn, first, "bob", "done", now + 2).outcome == "not_yours"
    assert _press(conn, first, "alice", "done", now + 3).outcome == "done"
    assert views.my_customers(conn, "alice") == []


def test_hand_over_reopens_for_colleagues_with_a_fresh_expiry(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    now = time.time()
    alert_id = _open_alert(conn, now=now, ttl=30)
    _press(conn, alert_id, "alice", "claim", now + 1)
    assert _press(conn, alert_id, "bob", "handover", now + 2).outcome == "not_yours"
    res = _press(conn, alert_id, "alice", "handover", now + 50)  # past the first expiry
    assert res.outcome == "handed_over"
    row = conn.execute("SELECT state, claimed_by, expires_at FROM alerts").fetchone()
    assert tuple(row) == ("open", None, now + 50 + 90)
    announced = _outbox(conn, "/alerts/")[-1]
    assert (announced.state, announced.claimed_by, announced.seq) == ("open", None, 3)
    assert views.my_customers(conn, "alice") == []
    assert _press(conn, alert_id, "bob", "claim", now + 51).outcome == "won"
    audit = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY audit_id")]
    assert audit[-3:] == ["claim", "handover", "claim"]


def test_idle_claim_is_asked_then_ended_unless_kept(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    now = time.time()
    kept = _open_alert(conn, now=now)
    _press(conn, kept, "alice", "claim", now)
    gallery.enrol("c2", "Bo Idle", consent("consent-2"), [(unit(2), 0.9, "t")])
    idle = _open_alert(conn, customer_id="c2", now=now)
    _press(conn, idle, "bob", "claim", now)
    # at 900 s both phones ask; alice answers "Yes, still with them", bob does not
    assert _press(conn, kept, "alice", "keep", now + 950).outcome == "kept"
    assert _press(conn, idle, "alice", "keep", now + 950).outcome == "not_yours"
    ended = alerts.end_idle_claims(conn, TOPICS, now + 1019, idle_s=900, confirm_s=120)
    assert ended == []  # not yet: 900 + 120 s
    ended = alerts.end_idle_claims(conn, TOPICS, now + 1021, idle_s=900, confirm_s=120)
    assert ended == [idle]
    states = dict(conn.execute("SELECT alert_id, state FROM alerts").fetchall())
    assert states == {kept: "claimed", idle: "done"}
    assert _outbox(conn, "/alerts/")[-1].state == "done"
    # the kept claim's clock restarted at its answer
    later = alerts.end_idle_claims(conn, TOPICS, now + 950 + 1021, idle_s=900, confirm_s=120)
    assert later == [kept]
    actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE actor='hub'")]
    assert actions.count("claim_idle_end") == 2


def test_missed_alerts_are_the_days_expired_ones(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    now = time.time()
    missed = _open_alert(conn, now=now, ttl=10)
    assert alerts.expire_due(conn, TOPICS, now + 11) == 1
    gallery.enrol("c2", "Bo Taken", consent("consent-2"), [(unit(2), 0.9, "t")])
    taken = _open_alert(conn, customer_id="c2", now=now + 12)
    _press(conn, taken, "alice", "claim", now + 13)
    today = dt.datetime.fromtimestamp(now).date()
    (row,) = views.missed_alerts(conn, today)
    assert (row["alert_id"], row["customer_name"], row["expired_at"]) == (
        missed, "Ada Lovelace", now + 11
    )  # fmt: skip
    assert views.missed_alerts(conn, today - dt.timedelta(days=1)) == []
