import threading
import time
from pathlib import Path

from hub.alerts import claims as alerts
from hub.faces.gallery import Gallery
from hub.store import db
from storesense import messages as m
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit

TOPICS = Topics("s1")


def _open_alert(
    conn, customer_id: str = "c1", now: float | None = None, ttl: float = 60.0, **evidence
) -> str:
    """Record a match that opens an alert; ``evidence`` goes to ``record_match`` as is."""
    now = time.time() if now is None else now
    with db.write(conn):
        out = alerts.record_match(
            conn,
            TOPICS,
            customer_id=customer_id,
            camera_id="door-1",
            first_usable_at=now,
            now=now,
            cooldown_s=600,
            alert_ttl_s=ttl,
            **evidence,
        )
    assert out.alert_id is not None
    return out.alert_id


def _outbox(conn, topic_part: str) -> list:
    rows = conn.execute("SELECT topic, payload FROM outbox ORDER BY outbox_id").fetchall()
    return [m.decode(bytes(r["payload"])) for r in rows if topic_part in r["topic"]]


def test_twenty_concurrent_claimers_exactly_one_wins(gallery: Gallery, db_path: Path) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    alert_id = _open_alert(gallery.conn)
    barrier = threading.Barrier(20)
    results: dict[str, m.ClaimResult] = {}

    def claimer(i: int) -> None:
        conn = db.connect(db_path)  # each claimer is its own connection, as separate processes
        req = m.ClaimRequest(alert_id=alert_id, staff_id=f"staff{i}")
        barrier.wait()
        res = alerts.handle_claim(conn, TOPICS, req, time.time())
        assert res is not None
        results[req.staff_id] = res
        conn.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [s for s, r in results.items() if r.outcome == "won"]
    assert len(winners) == 1
    losers = {s: r for s, r in results.items() if s != winners[0]}
    assert len(losers) == 19
    assert all(r.outcome == "taken" and r.claimed_by == winners[0] for r in losers.values())
    assert all(f"Already claimed by {winners[0]}" in r.message for r in losers.values())
    row = gallery.conn.execute("SELECT state, claimed_by, claim_attempts FROM alerts").fetchone()
    assert (row["state"], row["claimed_by"], row["claim_attempts"]) == ("claimed", winners[0], 20)
    # every claimer got its own answer, and the new state went out once, retained, to all
    assert len(_outbox(gallery.conn, "/staff/")) == 20
    states = [a.state for a in _outbox(gallery.conn, "/alerts/")]
    assert states == ["open", "claimed"]


def test_a_deadline_that_passes_while_waiting_for_the_write_lock_is_not_applied(
    gallery: Gallery, db_path: Path
) -> None:
    """The deadline is checked again once the write lock is held: another writer (a CLI
    import) holding the lock past the deadline must not let a claim win afterwards."""
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    alert_id = _open_alert(gallery.conn)
    blocker = db.connect(db_path)
    blocker.execute("BEGIN IMMEDIATE")
    req = m.ClaimRequest(alert_id=alert_id, staff_id="alice", deadline=time.time() + 0.3)
    out: list[m.ClaimResult | None] = []
    worker = threading.Thread(
        target=lambda: out.append(alerts.handle_claim(gallery.conn, TOPICS, req, time.time()))
    )
    worker.start()
    time.sleep(0.8)  # the lock is held well past the deadline
    blocker.execute("COMMIT")
    worker.join(timeout=30)
    blocker.close()
    assert out == [None]
    row = gallery.conn.execute("SELECT state, claimed_by FROM alerts").fetchone()
    assert (row["state"], row["claimed_by"]) == ("open", None)
    # the same request with time to spare wins
    ok = m.ClaimRequest(alert_id=alert_id, staff_id="alice", deadline=time.time() + 30)
    assert alerts.handle_claim(gallery.conn, TOPICS, ok, time.time()).outcome == "won"


def test_repeat_claim_by_winner_is_idempotent_and_late_claim_told(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    alert_id = _open_alert(conn)
    first = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="alice"), time.time()
    )
    again = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="alice"), time.time()
    )
    late = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="bob"), time.time()
    )
    assert (first.outcome, again.outcome, late.outcome) == ("won", "already_yours", "taken")
    assert late.message == "Already claimed by alice."


def test_duplicate_request_id_has_one_effect(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    alert_id = _open_alert(gallery.conn)
    req = m.ClaimRequest(alert_id=alert_id, staff_id="alice")
    assert alerts.handle_claim(gallery.conn, TOPICS, req, time.time()).outcome == "won"
    assert alerts.handle_claim(gallery.conn, TOPICS, req, time.time()) is None
    assert len(_outbox(gallery.conn, "/staff/")) == 1


def test_unclaimed_alerts_expire_and_late_claims_hear_it(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    t0 = time.time()
    alert_id = _open_alert(conn, now=t0, ttl=5)
    assert alerts.expire_due(conn, TOPICS, t0 + 1) == 0
    assert alerts.expire_due(conn, TOPICS, t0 + 6) == 1
    res = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="bob"), t0 + 7
    )
    assert res.outcome == "expired"
    assert [a.state for a in _outbox(conn, "/alerts/")] == ["open", "expired"]


def test_claim_past_expiry_before_the_sweep_is_refused(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    t0 = time.time()
    alert_id = _open_alert(gallery.conn, now=t0, ttl=5)
    res = alerts.handle_claim(
        gallery.conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="bob"), t0 + 9
    )
    assert res.outcome == "expired"


def test_done_only_by_the_claimer(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    alert_id = _open_alert(conn)
    now = time.time()
    alerts.handle_claim(conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="alice"), now)
    other = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="bob", action="done"), now
    )
    mine = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="alice", action="done"), now
    )
    assert (other.outcome, mine.outcome) == ("not_yours", "done")
    assert conn.execute("SELECT state FROM alerts").fetchone()[0] == "done"


def test_one_alert_per_visit_second_camera_joins(gallery: Gallery) -> None:
    conn = gallery.conn
    now = time.time()
    with db.write(conn):
        first = alerts.record_match(
            conn,
            TOPICS,
            customer_id="c1",
            camera_id="door-1",
            first_usable_at=now,
            now=now,
            cooldown_s=600,
            alert_ttl_s=60,
        )
        second = alerts.record_match(
            conn,
            TOPICS,
            customer_id="c1",
            camera_id="door-2",
            first_usable_at=now,
            now=now + 5,
            cooldown_s=600,
            alert_ttl_s=60,
        )
        after = alerts.record_match(
            conn,
            TOPICS,
            customer_id="c1",
            camera_id="door-1",
            first_usable_at=now,
            now=now + 700,
            cooldown_s=600,
            alert_ttl_s=60,
        )
    assert first.alert_id and second.alert_id is None and second.visit_id == first.visit_id
    assert after.alert_id and after.visit_id != first.visit_id  # cooldown over: a new visit
    cams = conn.execute("SELECT cameras FROM visits WHERE visit_id=?", (first.visit_id,)).fetchone()
    assert cams[0] == '["door-1", "door-2"]'


def test_housekeeping_clears_long_closed_alerts_and_old_ids(gallery: Gallery) -> None:
    conn = gallery.conn
    t0 = time.time()
    alert_id = _open_alert(conn, now=t0, ttl=5)
    alerts.expire_due(conn, TOPICS, t0 + 6)
    with db.write(conn):
        alerts.remember_message(conn, "f" * 32, t0)
    assert alerts.housekeeping(conn, TOPICS, t0 + 60) == 0  # closed recently: stays retained
    assert alerts.housekeeping(conn, TOPICS, t0 + 8 * 86400) == 1
    last = conn.execute(
        "SELECT topic, payload, retain FROM outbox ORDER BY outbox_id DESC"
    ).fetchone()
    assert (last["topic"], bytes(last["payload"]), last["retain"]) == (
        TOPICS.alert(alert_id),
        b"",
        1,
    )
    assert conn.execute("SELECT count(*) FROM seen_messages").fetchone()[0] == 0
    assert alerts.housekeeping(conn, TOPICS, t0 + 9 * 86400) == 0  # cleared once


def _reject(conn, alert_id: str, staff_id: str, now: float) -> m.ClaimResult:
    req = m.ClaimRequest(alert_id=alert_id, staff_id=staff_id, action="reject")
    res = alerts.handle_claim(conn, TOPICS, req, now)
    assert res is not None
    return res


def test_not_this_person_closes_the_alert_and_logs_the_evidence(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    now = time.time()
    alert_id = _open_alert(conn, now=now, track_id="a" * 32, best_distance=0.41)
    res = _reject(conn, alert_id, "alice", now + 1)
    assert (res.outcome, res.message) == ("rejected", "Marked as not this person. Thank you.")
    row = conn.execute("SELECT * FROM false_matches").fetchone()
    assert (row["alert_id"], row["customer_id"], row["camera_id"], row["staff_id"]) == (
        alert_id,
        "c1",
        "door-1",
        "alice",
    )
    assert (row["track_id"], row["best_distance"]) == ("a" * 32, 0.41)
    states = _outbox(conn, "/alerts/")
    assert [(a.state, a.closed_by) for a in states] == [("open", None), ("rejected", "alice")]
    assert states[1].seq > states[0].seq  # phones drop it by the seq rule
    audit = conn.execute(
        "SELECT actor, action, customer_id FROM audit WHERE action NOT IN ('enrol', 'match')"
    ).fetchall()
    assert [tuple(r) for r in audit] == [("alice", "false_match", "c1")]
    # the alert is closed for everyone: a claim after the rejection does not win
    late = alerts.handle_claim(
        conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="bob"), now + 2
    )
    assert late.outcome == "expired"
    assert _reject(conn, alert_id, "bob", now + 3).outcome == "rejected"  # no second row
    assert conn.execute("SELECT count(*) FROM false_matches").fetchone()[0] == 1


def test_reject_of_a_claimed_alert_only_by_its_claimer(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    alert_id = _open_alert(conn)  # no track evidence given: logged with NULLs
    now = time.time()
    alerts.handle_claim(conn, TOPICS, m.ClaimRequest(alert_id=alert_id, staff_id="alice"), now)
    assert _reject(conn, alert_id, "bob", now).outcome == "not_yours"
    assert conn.execute("SELECT state FROM alerts").fetchone()[0] == "claimed"
    assert _reject(conn, alert_id, "alice", now).outcome == "rejected"
    row = conn.execute("SELECT state, claimed_by FROM alerts").fetchone()
    assert tuple(row) == ("rejected", "alice")
    fm = conn.execute("SELECT staff_id, track_id, best_distance FROM false_matches").fetchone()
    assert tuple(fm) == ("alice", None, None)


def test_reject_of_finished_or_unknown_alerts_changes_nothing(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    t0 = time.time()
    alert_id = _open_alert(conn, now=t0, ttl=5)
    alerts.expire_due(conn, TOPICS, t0 + 6)
    assert _reject(conn, alert_id, "alice", t0 + 7).outcome == "expired"
    assert _reject(conn, "nosuchalert", "alice", t0 + 7).outcome == "unknown_alert"
    assert conn.execute("SELECT count(*) FROM false_matches").fetchone()[0] == 0


def test_alert_carries_the_loyalty_tier_when_asked(gallery: Gallery) -> None:
    from hub.shop.loyalty import tier_lookup
    from storesense.shop_config import LoyaltyConfig, LoyaltyTier

    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    conn = gallery.conn
    tiers = [LoyaltyTier(name="Member", min_spend_12m=0), LoyaltyTier(name="VIP", min_spend_12m=1)]
    _open_alert(conn, tier=tier_lookup(LoyaltyConfig(tiers=tiers)))
    (alert,) = _outbox(conn, "/alerts/")
    # no purchases yet: a new customer, not the entry tier as if they had earned it
    assert alert.tier is None and alert.new_customer is True
    gallery.enrol("c2", "Bea", consent("consent-2"), [(unit(2), 0.9, "t")])
    with db.write(conn):
        for customer in ("c1", "c2"):  # a purchase (years ago) for each, after c1's match
            conn.execute(
                "INSERT INTO pos_invoices(invoice_no, customer_id, invoiced_at, day, "
                "cancellation, total, n_lines, content_hash, source, imported_at) "
                "VALUES (?, ?, '2020-01-01 10:00:00', '2020-01-01', 0, 5.0, 1, 'h', 't', 0)",
                (f"i-{customer}", customer),
            )
    again = alerts.alert_message(conn, alert.alert_id)  # every later state says the same
    assert again.new_customer is True and again.tier is None
    conn.execute("DELETE FROM outbox")
    _open_alert(conn, tier=tier_lookup(LoyaltyConfig(tiers=tiers)), customer_id="c2")
    (second,) = _outbox(conn, "/alerts/")
    assert second.new_customer is False and second.tier == "Member"


def test_the_cooldown_runs_from_when_the_customer_was_last_seen(gallery: Gallery) -> None:
    """A walker recognised at t=0, still in view at t=2.5 (later messages of the same track),
    whose face is found again as a new track at t=5: with a 3 s cooldown that is the same
    visit. Without the sighting at 2.5 the same match opens a second alert."""
    conn = gallery.conn
    gallery.enrol("c1", "Ada", consent(), [(unit(1), 0.9, "t")])

    def match(t: float) -> alerts.MatchOutcome:
        with db.write(conn):
            return alerts.record_match(
                conn,
                TOPICS,
                customer_id="c1",
                camera_id="door-1",
                first_usable_at=t,
                now=t,
                cooldown_s=3,
                alert_ttl_s=60,
            )

    t0 = 1000.0
    first = match(t0)
    with db.write(conn):
        assert alerts.seen_again(conn, "c1", "door-1", t0 + 2.5, cooldown_s=3) == first.visit_id
    again = match(t0 + 5)
    assert (again.visit_id, again.alert_id) == (first.visit_id, None)
    row = conn.execute("SELECT last_seen_at FROM visits").fetchone()
    assert row[0] == t0 + 5
    # and a sighting after the visit ended extends nothing; the next match is a new visit
    with db.write(conn):
        assert alerts.seen_again(conn, "c1", "door-1", t0 + 20, cooldown_s=3) is None
    later = match(t0 + 21)
    assert later.alert_id is not None and later.visit_id != first.visit_id
