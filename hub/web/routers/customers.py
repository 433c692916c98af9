"""The customer view: only through an alert the viewer claimed, and every view is audited.

A salesperson may open a customer's profile only while they hold that customer's alert
(state ``claimed``, ``claimed_by`` = them); a manager may open it for review from any alert.
Each view writes an ``audit`` row: who, when, which customer and why (the alert).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel

from hub.privacy.audit import record_profile_view
from hub.shop.card import CustomerCard, CustomerNotFound, customer_card
from hub.web.accounts import Session
from hub.web.errors import SESSION, errors
from hub.web.security import Conn, current_session

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/customers", tags=["customers"])

Ident = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


def _may_view(conn: sqlite3.Connection, session: Session, customer_id: str, alert_id: str) -> str:
    """The audit reason if this session may see the customer through this alert; else 403."""
    row = conn.execute(
        "SELECT customer_id, state, claimed_by FROM alerts WHERE alert_id=?", (alert_id,)
    ).fetchone()
    if row is None or row["customer_id"] != customer_id:
        raise HTTPException(404, "no such alert for this customer")
    staff = session.staff
    if row["state"] == "claimed" and row["claimed_by"] == staff.staff_id:
        return f"claimed alert {alert_id}"
    if staff.role == "manager":
        return f"manager review of alert {alert_id}"
    raise HTTPException(403, "you can open a customer only from an alert you have claimed")


class CustomerView(BaseModel):
    alert_id: str
    card: CustomerCard


def _with_offset(value: Any) -> Any:
    """Naive datetimes (the card's store-local wall clock) made aware in the hub's zone.

    The schema promises ``date-time`` (RFC 3339), which needs an offset; without one a phone
    whose clock zone differs from the store's, or any strict client, reads another instant.
    """
    if isinstance(value, datetime):
        return value.astimezone() if value.tzinfo is None else value
    if isinstance(value, dict):
        return {k: _with_offset(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_offset(v) for v in value]
    return value


@router.get("/{customer_id}", response_model=CustomerView, responses=errors(*SESSION, 403, 404))
def customer_view(
    request: Request,
    conn: Conn,
    session: Annotated[Session, Depends(current_session)],
    customer_id: Annotated[str, Path(pattern=Ident)],
    alert_id: Annotated[str, Query(pattern=Ident)],
) -> CustomerView:
    reason = _may_view(conn, session, customer_id, alert_id)
    try:
        card = customer_card(conn, customer_id, request.app.state.cfg, datetime.now())
    except CustomerNotFound:  # erased since the alert (right to erasure): nothing to show
        raise HTTPException(404, "this customer's profile no longer exists") from None
    record_profile_view(conn, actor=session.staff.staff_id, customer_id=customer_id, reason=reason)
    card = CustomerCard.model_validate(_with_offset(card.model_dump()))
    return CustomerView(alert_id=alert_id, card=card)
