"""Visits, alerts and claim arbitration: the claim state machine on one table.

open → claimed → done, open → expired, open/claimed → rejected ('Not this person': the
match was wrong; the alert closes and a ``false_matches`` row feeds the threshold review),
claimed → open ('hand over to a colleague': the claimer lets go and every phone is alerted
again, with a fresh expiry), claimed → done by the hub when a claim stays idle (no Accept or
"Yes, still with them" for ``claim_idle_s``, then ``claim_confirm_s`` unanswered): a claim is
never left standing by someone who walked away.
Every transition is one conditional UPDATE inside a
``BEGIN IMMEDIATE`` transaction that also writes the messages announcing it to the outbox;
``hub.bus.outbox`` publishes them only after the commit, so a phone never hears of a state the
database does not hold. Everything here is callable from any thread with its own connection.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from hub.bus import outbox, seen
from hub.bus.seen import remember as remember_message
from hub.faces import profiles
from hub.privacy import audit
from hub.store import db
from storesense.messages import Alert, ClaimRequest, ClaimResult, new_msg_id
from storesense.rpc import too_late
from storesense.topics import Topics

log = logging.getLogger(__name__)

# The customer's standing for the alert card: (connection, customer id, now) -> the tier name,
# or (tier, new customer) where the shop can tell a customer with no purchase on file yet
# (who gets "new customer" on the card, not the entry tier). Injected (the daemon wires
# hub.shop.loyalty.tier_lookup in) so alerts do not import the shop.
TierLookup = Callable[[sqlite3.Connection, str, float], str | tuple[str | None, bool] | None]

# ``alert_matches`` remembers the evidence behind each alert (which track, how close) so a
# false-match report can carry it; ``false_matches`` is the log reviewed when tuning the
# threshold (docs/calibration.md). Both are written here because a rejection writes both in
# one transaction; their schema is in hub/store/migrations.


@dataclass(frozen=True)
class MatchOutcome:
    visit_id: str
    alert_id: str | None  # None when the match joined a visit that already had its alert
    new_visit: bool


def _enqueue(
    conn: sqlite3.Connection, topic: str, payload: bytes, now: float, retain: bool
) -> None:
    outbox.enqueue(conn, topic, payload, retain, now=now)


def alert_message(conn: sqlite3.Connection, alert_id: str) -> Alert:
    row = conn.execute(
        "SELECT a.*, m.tier, m.new_customer FROM alerts a "
        "LEFT JOIN alert_matches m USING (alert_id) WHERE a.alert_id=?",
        (alert_id,),
    ).fetchone()
    # the name is the face room's (its tables are read through hub.faces.profiles)
    known = profiles.customer_name(conn, row["customer_id"])
    # an erased profile keeps its alert rows until they close: greet without a name then
    name = known or "a returning customer"
    greeting = f"{known.split()[0]} has just walked in" if known else "A returning customer is here"
    closed_by = None
    if row["state"] == "rejected":
        fm = conn.execute(
            "SELECT staff_id FROM false_matches WHERE alert_id=?", (alert_id,)
        ).fetchone()
        closed_by = fm["staff_id"] if fm is not None else None
    return Alert(
        alert_id=row["alert_id"],
        seq=row["seq"],
        state=row["state"],
        customer_id=row["customer_id"],
        customer_name=name,
        greeting=greeting,
        tier=row["tier"],
        new_customer=bool(row["new_customer"]),
        camera_id=row["camera_id"],
        arrived_at=row["created_at"],
        expires_at=row["expires_at"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        closed_by=closed_by,
    )


def _announce(conn: sqlite3.Connection, topics: Topics, alert_id: str, now: float) -> None:
    msg = alert_message(conn, alert_id)
    _enqueue(conn, topics.alert(alert_id), msg.to_bytes(), now, retain=True)


def reannounce(conn: sqlite3.Connection, topics: Topics, now: float, clears_since: float) -> int:
    """Inside a write transaction: the broker's retained alert messages made true again.

    On every connect the hub cannot know what the broker kept: a broker killed between two
    persistence saves comes back with older states (a claimed alert shown open on every
    phone that reconnects) and with messages cleared since (``outbox.resend_retained_clears``);
    a broker whose file was lost has none. So the current state of every alert still retained
    is published again, after the recent clears, from the table that owns it, in the topic's
    own outbox row (``outbox.republish``: the table does not grow per reconnect). A phone
    holding that state drops the copy (same ``seq``: storesense/alert_state.py). Returns the
    alerts announced."""
    outbox.resend_retained_clears(conn, topics.alert(""), clears_since)
    ids = [r[0] for r in conn.execute("SELECT alert_id FROM alerts WHERE retained_cleared=0")]
    for alert_id in ids:
        outbox.republish(conn, topics.alert(alert_id), alert_message(conn, alert_id), now)
    return len(ids)


def record_match(
    conn: sqlite3.Connection,
    topics: Topics,
    *,
    customer_id: str,
    camera_id: str,
    first_usable_at: float,
    now: float,
    cooldown_s: float,
    alert_ttl_s: float,
    track_id: str | None = None,
    best_distance: float | None = None,
    tier: TierLookup | None = None,
) -> MatchOutcome:
    """Inside a write transaction: join the customer's current visit or open a visit + alert.

    One alert per visit: a second camera, a repeated message or a re-entry inside the cooldown
    all join the visit instead of alerting again. ``track_id``/``best_distance`` are kept
    with the alert so a later 'Not this person' report carries the evidence; with ``tier``
    the customer's loyalty tier goes into the alert (the phones show it on the card).
    """
    visit_id = seen_again(conn, customer_id, camera_id, now, cooldown_s=cooldown_s)
    if visit_id is not None:
        return MatchOutcome(visit_id, None, new_visit=False)
    visit_id = uuid.uuid4().hex
    alert_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO visits(visit_id, customer_id, started_at, last_seen_at, cameras) "
        "VALUES (?,?,?,?,?)",
        (visit_id, customer_id, now, now, json.dumps([camera_id])),
    )
    conn.execute(
        "INSERT INTO alerts(alert_id, visit_id, customer_id, camera_id, state, seq, created_at, "
        "expires_at, first_usable_at) VALUES (?,?,?,?,'open',?,?,?,?)",
        (
            alert_id,
            visit_id,
            customer_id,
            camera_id,
            db.next_counter(conn, "alert_seq"),
            now,
            now + alert_ttl_s,
            first_usable_at,
        ),
    )
    conn.execute(
        "INSERT INTO alert_matches(alert_id, track_id, best_distance, tier, new_customer) "
        "VALUES (?,?,?,?,?)",
        (alert_id, track_id, best_distance, *_tier(conn, customer_id, tier, now)),
    )
    profiles.touch_last_visit(conn, customer_id, now)
    dist = "" if best_distance is None else f", distance {best_distance:.3f}"
    audit.append(
        conn, at=now, actor="hub", action="match", customer_id=customer_id,
        detail=f"camera {camera_id}, track {track_id}{dist}; alert {alert_id} opened",
    )  # fmt: skip
    _announce(conn, topics, alert_id, now)
    return MatchOutcome(visit_id, alert_id, new_visit=True)


def seen_again(
    conn: sqlite3.Connection, customer_id: str, camera_id: str, now: float, *, cooldown_s: float
) -> str | None:
    """Inside a write transaction: the customer is in view again (a new match, or a later
    message of a matched track); their current visit's "last seen" moves on, so the cooldown
    counts from here. Returns the visit, or None if the last one ended over ``cooldown_s`` ago.
    """
    row = conn.execute(
        "SELECT visit_id, cameras FROM visits WHERE customer_id=? AND last_seen_at >= ? "
        "ORDER BY last_seen_at DESC LIMIT 1",
        (customer_id, now - cooldown_s),
    ).fetchone()
    if row is None:
        return None
    cameras = set(json.loads(row["cameras"])) | {camera_id}
    conn.execute(
        "UPDATE visits SET last_seen_at=?, cameras=? WHERE visit_id=?",
        (now, json.dumps(sorted(cameras)), row["visit_id"]),
    )
    profiles.touch_last_visit(conn, customer_id, now)
    return str(row["visit_id"])


def _tier(
    conn: sqlite3.Connection, customer_id: str, tier: TierLookup | None, now: float
) -> tuple[str | None, bool]:
    """(loyalty tier, new customer) from the purchase history; an alert never fails on it.
    A new customer has no tier on the card: the entry tier is not something they earned."""
    if tier is None:
        return None, False
    try:
        got = tier(conn, customer_id, now)
    except (sqlite3.Error, ValueError):
        log.exception("no loyalty tier for %s: alerting without one", customer_id)
        return None, False
    if isinstance(got, tuple):
        name, new = got
        return (None, True) if new else (name, False)
    return got, False


def _alert_customer(conn: sqlite3.Connection, alert_id: str) -> str | None:
    row = conn.execute("SELECT customer_id FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()
    return row[0] if row else None


def _result(req: ClaimRequest, outcome: str, claimed_by: str | None, message: str) -> ClaimResult:
    return ClaimResult(
        msg_id=new_msg_id(),
        request_id=req.msg_id,
        alert_id=req.alert_id,
        staff_id=req.staff_id,
        outcome=outcome,
        claimed_by=claimed_by,
        message=message,
    )


def handle_claim(
    conn: sqlite3.Connection,
    topics: Topics,
    req: ClaimRequest,
    now: float,
    *,
    reopen_ttl_s: float = 120.0,
) -> ClaimResult | None:
    """Apply a claim/done/reject request atomically; None if this id was already handled or
    the request is past its ``deadline`` (the phone was told it failed: never apply it).
    ``reopen_ttl_s``: how long a handed-over alert stays open for the colleagues."""
    if req.deadline is not None and too_late(req.deadline, now):
        log.info("claim %s on %s refused: past its deadline", req.msg_id[:8], req.alert_id)
        return None
    waited_from = time.monotonic()
    with db.write(conn):
        # Once more inside the transaction: taking the write lock can wait (a CLI import holds
        # it), and a claim the phone was told failed must not win after its deadline.
        if req.deadline is not None and too_late(
            req.deadline, now + time.monotonic() - waited_from
        ):
            log.info("claim %s on %s refused: deadline passed waiting for the database",
                     req.msg_id[:8], req.alert_id)  # fmt: skip
            return None
        if not remember_message(conn, req.msg_id, now):
            return None
        result = _decide(conn, topics, req, now, reopen_ttl_s)
        _enqueue(conn, topics.claim_result(req.staff_id), result.to_bytes(), now, retain=False)
    return result


def _decide(
    conn: sqlite3.Connection, topics: Topics, req: ClaimRequest, now: float, reopen_ttl_s: float
) -> ClaimResult:
    if req.action == "claim":
        conn.execute(
            "UPDATE alerts SET claim_attempts = claim_attempts + 1 WHERE alert_id=?",
            (req.alert_id,),
        )
        won = conn.execute(
            "UPDATE alerts SET state='claimed', claimed_by=?, claimed_at=?, claim_active_at=?, "
            "seq=? WHERE alert_id=? AND state='open' AND expires_at > ?",
            (req.staff_id, now, now, db.next_counter(conn, "alert_seq"), req.alert_id, now),
        ).rowcount
        if won:
            audit.append(
                conn, at=now, actor=req.staff_id, action="claim",
                customer_id=_alert_customer(conn, req.alert_id),
                detail=f"claimed alert {req.alert_id}",
            )  # fmt: skip
            _announce(conn, topics, req.alert_id, now)
            return _result(req, "won", req.staff_id, "You have the customer.")
    row = conn.execute(
        "SELECT state, claimed_by, expires_at FROM alerts WHERE alert_id=?", (req.alert_id,)
    ).fetchone()
    if row is None:
        return _result(req, "unknown_alert", None, "No such alert.")
    state, claimed_by = row["state"], row["claimed_by"]
    if req.action == "reject":
        return _reject(conn, topics, req, now, state, claimed_by)
    if req.action == "done":
        if state == "claimed" and claimed_by == req.staff_id:
            conn.execute(
                "UPDATE alerts SET state='done', closed_at=?, seq=? "
                "WHERE alert_id=? AND state='claimed' AND claimed_by=?",
                (now, db.next_counter(conn, "alert_seq"), req.alert_id, req.staff_id),
            )
            _announce(conn, topics, req.alert_id, now)
            return _result(req, "done", claimed_by, "Service ended.")
        return _result(req, "not_yours", claimed_by, "Only the claimer can end this service.")
    if req.action == "handover":
        return _handover(conn, topics, req, now, reopen_ttl_s, state, claimed_by)
    if req.action == "keep":
        kept = conn.execute(
            "UPDATE alerts SET claim_active_at=? WHERE alert_id=? AND state='claimed' "
            "AND claimed_by=?",
            (now, req.alert_id, req.staff_id),
        ).rowcount
        if kept:
            return _result(req, "kept", claimed_by, "Still yours.")
        return _result(req, "not_yours", claimed_by, "This customer is no longer yours.")
    if state in ("claimed", "done") and claimed_by == req.staff_id:
        return _result(req, "already_yours", claimed_by, "You already have this customer.")
    if state in ("claimed", "done"):
        return _result(req, "taken", claimed_by, f"Already claimed by {claimed_by}.")
    if state == "open":  # open but past its expiry: the expiry sweep has not run yet
        _expire(conn, topics, req.alert_id, now)
    return _result(req, "expired", None, "This alert has expired.")


def _reject(
    conn: sqlite3.Connection,
    topics: Topics,
    req: ClaimRequest,
    now: float,
    state: str,
    claimed_by: str | None,
) -> ClaimResult:
    """'Not this person': anyone may reject an open alert, only the claimer a claimed one."""
    if state == "claimed" and claimed_by != req.staff_id:
        return _result(req, "not_yours", claimed_by, f"Already claimed by {claimed_by}.")
    if state == "rejected":
        return _result(req, "rejected", claimed_by, "Already marked as not this person.")
    if state in ("done", "expired"):
        return _result(
            req,
            "expired" if state == "expired" else "done",
            claimed_by,
            f"This alert is already {state}.",
        )
    changed = conn.execute(
        "UPDATE alerts SET state='rejected', closed_at=?, seq=? "
        "WHERE alert_id=? AND state IN ('open','claimed') AND coalesce(claimed_by, ?) = ?",
        (now, db.next_counter(conn, "alert_seq"), req.alert_id, req.staff_id, req.staff_id),
    ).rowcount
    if not changed:  # unreachable inside BEGIN IMMEDIATE, kept as a guard
        return _result(req, "not_yours", claimed_by, "The alert changed; try again.")
    conn.execute(
        "INSERT INTO false_matches(at, alert_id, customer_id, camera_id, staff_id, track_id, "
        "best_distance) SELECT ?, a.alert_id, a.customer_id, a.camera_id, ?, m.track_id, "
        "m.best_distance FROM alerts a LEFT JOIN alert_matches m USING (alert_id) "
        "WHERE a.alert_id=?",
        (now, req.staff_id, req.alert_id),
    )
    audit.append(
        conn, at=now, actor=req.staff_id, action="false_match",
        customer_id=_alert_customer(conn, req.alert_id),
        detail=f"not this person: alert {req.alert_id}",
    )  # fmt: skip
    _announce(conn, topics, req.alert_id, now)
    return _result(req, "rejected", None, "Marked as not this person. Thank you.")


def _handover(
    conn: sqlite3.Connection,
    topics: Topics,
    req: ClaimRequest,
    now: float,
    ttl_s: float,
    state: str,
    claimed_by: str | None,
) -> ClaimResult:
    """Only the claimer, only while claimed: the alert is open again and alerts every phone
    (a re-sent alert, same id: a phone's notification for it is replaced, not duplicated)."""
    if state != "claimed" or claimed_by != req.staff_id:
        return _result(req, "not_yours", claimed_by, "Only the claimer can hand this over.")
    changed = conn.execute(
        "UPDATE alerts SET state='open', claimed_by=NULL, claimed_at=NULL, expires_at=?, seq=? "
        "WHERE alert_id=? AND state='claimed' AND claimed_by=?",
        (now + ttl_s, db.next_counter(conn, "alert_seq"), req.alert_id, req.staff_id),
    ).rowcount
    if not changed:  # unreachable inside BEGIN IMMEDIATE, kept as a guard
        return _result(req, "not_yours", claimed_by, "The alert changed; try again.")
    audit.append(
        conn, at=now, actor=req.staff_id, action="handover",
        customer_id=_alert_customer(conn, req.alert_id),
        detail=f"handed over alert {req.alert_id}",
    )  # fmt: skip
    _announce(conn, topics, req.alert_id, now)
    return _result(req, "handed_over", None, "Handed over: your colleagues are alerted again.")


def _expire(conn: sqlite3.Connection, topics: Topics, alert_id: str, now: float) -> bool:
    changed = conn.execute(
        "UPDATE alerts SET state='expired', closed_at=?, seq=? WHERE alert_id=? AND state='open'",
        (now, db.next_counter(conn, "alert_seq"), alert_id),
    ).rowcount
    if changed:
        _announce(conn, topics, alert_id, now)
    return bool(changed)


def end_idle_claims(
    conn: sqlite3.Connection, topics: Topics, now: float, *, idle_s: float, confirm_s: float
) -> list[str]:
    """End every claim idle for ``idle_s + confirm_s`` (the phone asked at ``idle_s`` and
    nobody answered): claimed → done, audited, announced. Returns the alert ids ended."""
    with db.write(conn):
        due = [
            r[0]
            for r in conn.execute(
                "SELECT alert_id FROM alerts WHERE state='claimed' "
                "AND coalesce(claim_active_at, claimed_at) <= ?",
                (now - idle_s - confirm_s,),
            )
        ]
        ended = []
        for alert_id in due:
            changed = conn.execute(
                "UPDATE alerts SET state='done', closed_at=?, seq=? WHERE alert_id=? "
                "AND state='claimed' AND coalesce(claim_active_at, claimed_at) <= ?",
                (now, db.next_counter(conn, "alert_seq"), alert_id, now - idle_s - confirm_s),
            ).rowcount
            if changed:
                audit.append(
                    conn, at=now, actor="hub", action="claim_idle_end",
                    customer_id=_alert_customer(conn, alert_id),
                    detail=f"claim on alert {alert_id} ended: idle, the claimer did not answer",
                )  # fmt: skip
                _announce(conn, topics, alert_id, now)
                ended.append(alert_id)
        return ended


def expire_due(conn: sqlite3.Connection, topics: Topics, now: float) -> int:
    """Expire every open alert past its time; returns how many."""
    with db.write(conn):
        due = [
            r[0]
            for r in conn.execute(
                "SELECT alert_id FROM alerts WHERE state='open' AND expires_at <= ?", (now,)
            )
        ]
        return sum(_expire(conn, topics, alert_id, now) for alert_id in due)


def housekeeping(
    conn: sqlite3.Connection,
    topics: Topics,
    now: float,
    *,
    retain_closed_s: float = 3600.0,
    keep_ids_s: float = 7 * 86400.0,
) -> int:
    """Clear the retained message of long-closed alerts and forget old message ids.

    A closed alert stays retained for an hour so phones that were offline learn its fate;
    after that an empty retained payload removes it from the broker. Returns alerts cleared.
    """
    with db.write(conn):
        old = [
            r[0]
            for r in conn.execute(
                "SELECT alert_id FROM alerts WHERE state <> 'open' "
                "AND retained_cleared=0 AND coalesce(closed_at, claimed_at) <= ?",
                (now - retain_closed_s,),
            )
        ]
        for alert_id in old:
            _enqueue(conn, topics.alert(alert_id), b"", now, retain=True)
            conn.execute("UPDATE alerts SET retained_cleared=1 WHERE alert_id=?", (alert_id,))
        seen.forget_before(conn, now - keep_ids_s)
        outbox.purge_sent(conn, now - keep_ids_s)
    return len(old)
