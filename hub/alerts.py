"""Visits, alerts and claim arbitration: the claim state machine on one table.

open → claimed → done, open → expired. Every transition is one conditional UPDATE inside a
``BEGIN IMMEDIATE`` transaction that also writes the messages announcing it to the outbox;
``hub.outbox`` publishes them only after the commit, so a phone never hears of a state the
database does not hold. Everything here is callable from any thread with its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass

from hub import db
from storesense.messages import Alert, ClaimRequest, ClaimResult, new_msg_id
from storesense.topics import Topics


@dataclass(frozen=True)
class MatchOutcome:
    visit_id: str
    alert_id: str | None  # None when the match joined a visit that already had its alert
    new_visit: bool


def remember_message(conn: sqlite3.Connection, msg_id: str, now: float) -> bool:
    """Inside a write transaction: True the first time a message id is seen, False after."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO seen_messages(msg_id, received_at) VALUES (?, ?)", (msg_id, now)
    )
    return cur.rowcount == 1


def _enqueue(
    conn: sqlite3.Connection, topic: str, payload: bytes, now: float, retain: bool
) -> None:
    conn.execute(
        "INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?,?,?,?)",
        (topic, payload, int(retain), now),
    )


def alert_message(conn: sqlite3.Connection, alert_id: str) -> Alert:
    row = conn.execute(
        "SELECT a.*, c.name AS customer_name FROM alerts a "
        "LEFT JOIN customers c USING (customer_id) WHERE a.alert_id=?",
        (alert_id,),
    ).fetchone()
    name = row["customer_name"] or "a returning customer"
    return Alert(
        alert_id=row["alert_id"],
        seq=row["seq"],
        state=row["state"],
        customer_id=row["customer_id"],
        customer_name=name,
        greeting=f"{name.split()[0]} has just walked in",
        camera_id=row["camera_id"],
        arrived_at=row["created_at"],
        expires_at=row["expires_at"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
    )


def _announce(conn: sqlite3.Connection, topics: Topics, alert_id: str, now: float) -> None:
    msg = alert_message(conn, alert_id)
    _enqueue(conn, topics.alert(alert_id), msg.to_bytes(), now, retain=True)


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
) -> MatchOutcome:
    """Inside a write transaction: join the customer's current visit or open a visit + alert.

    One alert per visit: a second camera, a repeated message or a re-entry inside the cooldown
    all join the visit instead of alerting again.
    """
    row = conn.execute(
        "SELECT visit_id, cameras FROM visits WHERE customer_id=? AND last_seen_at >= ? "
        "ORDER BY last_seen_at DESC LIMIT 1",
        (customer_id, now - cooldown_s),
    ).fetchone()
    if row is not None:
        cameras = set(json.loads(row["cameras"])) | {camera_id}
        conn.execute(
            "UPDATE visits SET last_seen_at=?, cameras=? WHERE visit_id=?",
            (now, json.dumps(sorted(cameras)), row["visit_id"]),
        )
        return MatchOutcome(row["visit_id"], None, new_visit=False)
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
    _announce(conn, topics, alert_id, now)
    return MatchOutcome(visit_id, alert_id, new_visit=True)


def _result(req: ClaimRequest, outcome: str, claimed_by: str | None, message: str) -> ClaimResult:
    return ClaimResult(
        msg_id=new_msg_id(),
        request_id=req.msg_id,
        alert_id=req.alert_id,
        staff_id=req.staff_id,
        outcome=outcome,  # type: ignore[arg-type]
        claimed_by=claimed_by,
        message=message,
    )


def handle_claim(
    conn: sqlite3.Connection, topics: Topics, req: ClaimRequest, now: float
) -> ClaimResult | None:
    """Apply a claim/done request atomically; None if this request id was already handled."""
    with db.write(conn):
        if not remember_message(conn, req.msg_id, now):
            return None
        result = _decide(conn, topics, req, now)
        _enqueue(conn, topics.claim_result(req.staff_id), result.to_bytes(), now, retain=False)
    return result


def _decide(conn: sqlite3.Connection, topics: Topics, req: ClaimRequest, now: float) -> ClaimResult:
    if req.action == "claim":
        conn.execute(
            "UPDATE alerts SET claim_attempts = claim_attempts + 1 WHERE alert_id=?",
            (req.alert_id,),
        )
        won = conn.execute(
            "UPDATE alerts SET state='claimed', claimed_by=?, claimed_at=?, seq=? "
            "WHERE alert_id=? AND state='open' AND expires_at > ?",
            (req.staff_id, now, db.next_counter(conn, "alert_seq"), req.alert_id, now),
        ).rowcount
        if won:
            conn.execute(
                "INSERT INTO audit(at, actor, action, customer_id, detail) "
                "SELECT ?, ?, 'claim', customer_id, 'claimed alert ' || alert_id "
                "FROM alerts WHERE alert_id=?",
                (now, req.staff_id, req.alert_id),
            )
            _announce(conn, topics, req.alert_id, now)
            return _result(req, "won", req.staff_id, "You have the customer.")
    row = conn.execute(
        "SELECT state, claimed_by, expires_at FROM alerts WHERE alert_id=?", (req.alert_id,)
    ).fetchone()
    if row is None:
        return _result(req, "unknown_alert", None, "No such alert.")
    state, claimed_by = row["state"], row["claimed_by"]
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
    if state in ("claimed", "done") and claimed_by == req.staff_id:
        return _result(req, "already_yours", claimed_by, "You already have this customer.")
    if state in ("claimed", "done"):
        return _result(req, "taken", claimed_by, f"Already claimed by {claimed_by}.")
    if state == "open":  # open but past its expiry: the expiry sweep has not run yet
        _expire(conn, topics, req.alert_id, now)
    return _result(req, "expired", None, "This alert has expired.")


def _expire(conn: sqlite3.Connection, topics: Topics, alert_id: str, now: float) -> bool:
    changed = conn.execute(
        "UPDATE alerts SET state='expired', closed_at=?, seq=? WHERE alert_id=? AND state='open'",
        (now, db.next_counter(conn, "alert_seq"), alert_id),
    ).rowcount
    if changed:
        _announce(conn, topics, alert_id, now)
    return bool(changed)


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
                "SELECT alert_id FROM alerts WHERE state IN ('claimed','done','expired') "
                "AND retained_cleared=0 AND coalesce(closed_at, claimed_at) <= ?",
                (now - retain_closed_s,),
            )
        ]
        for alert_id in old:
            _enqueue(conn, topics.alert(alert_id), b"", now, retain=True)
            conn.execute("UPDATE alerts SET retained_cleared=1 WHERE alert_id=?", (alert_id,))
        conn.execute("DELETE FROM seen_messages WHERE received_at < ?", (now - keep_ids_s,))
        conn.execute(
            "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?", (now - keep_ids_s,)
        )
    return len(old)
