"""A customer's own data, as JSON: the right of access (GDPR Art. 15, DPDP Act s. 11).

What the hub holds about the person, in words a person can read: the profile and consent
record, what templates exist (when, from which photo, how good) but not the vectors
themselves (128 numbers mean nothing to a person and are only useful to a face matcher, so
they stay encrypted on the hub), visits and alerts, who looked at their card and why, and
their purchases, loyalty birthday and suggestions. The export itself is audited.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from hub.privacy import audit
from hub.store import db


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sql, args)]


def export_customer(
    conn: sqlite3.Connection, customer_id: str, *, actor: str, reason: str
) -> dict[str, Any] | None:
    """Everything about ``customer_id``, or None if the hub knows nothing of them."""
    if not reason.strip():
        raise ValueError("an export needs a reason (e.g. the customer's access request)")
    cid = (customer_id,)
    profile = _rows(
        conn,
        "SELECT customer_id, name, consent_ref, consent_at, consent_notice, consent_method, "
        "consent_staff, created_at, last_visit_at FROM customers WHERE customer_id=?",
        cid,
    )
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "exported_at": time.time(),
        "profile": profile[0] if profile else None,
        "face_templates": _rows(
            conn,
            "SELECT template_id, created_at, quality, source FROM templates "
            "WHERE customer_id=? ORDER BY template_id",
            cid,
        ),
        "enrolment_photo_kept": bool(
            conn.execute("SELECT 1 FROM enrolment_photos WHERE customer_id=?", cid).fetchone()
        ),
        "visits": _rows(
            conn,
            "SELECT visit_id, started_at, last_seen_at, cameras FROM visits "
            "WHERE customer_id=? ORDER BY started_at",
            cid,
        ),
        "alerts": _rows(
            conn,
            "SELECT alert_id, camera_id, state, created_at, claimed_by, claimed_at, closed_at "
            "FROM alerts WHERE customer_id=? ORDER BY created_at",
            cid,
        ),
        "audit": _rows(
            conn,
            "SELECT at, actor, action, detail FROM audit WHERE customer_id=? ORDER BY audit_id",
            cid,
        ),
        "purchases": _rows(
            conn,
            "SELECT i.invoice_no, i.invoiced_at, i.country, i.cancellation, l.stock_code, "
            "l.description, l.quantity, l.unit_price FROM pos_invoices i "
            "JOIN pos_lines l USING (invoice_no) WHERE i.customer_id=? "
            "ORDER BY i.invoiced_at, i.invoice_no, l.line_no",
            cid,
        ),
        "birthday": _rows(conn, "SELECT month, day FROM pos_birthdays WHERE customer_id=?", cid),
        "suggestions": _rows(
            conn,
            "SELECT list, rank, stock_code FROM suggestions WHERE customer_id=? "
            "ORDER BY list, rank",
            cid,
        ),
    }
    # After an erasure only the tombstone names them: that is not data to hand out, and
    # auditing an export of it would write their id into the log again.
    if not any(data[k] for k in ("profile", "visits", "alerts", "purchases", "birthday")):
        return None
    with db.write(conn) as c:
        audit.append(c, actor=actor, action="export", customer_id=customer_id, detail=reason)
    return data
