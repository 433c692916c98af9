"""Withdrawing the "photo shown to staff at arrival" consent (issue 17, "who to greet").

A separate consent item from the biometric enrolment: withdrawing it stops the photo being
shown on the door alert at once (the next ``arrival_photo`` request is refused) and is
audited; the face profile and its templates are untouched (withdrawing the enrolment consent
itself is erasure, ``hub.privacy.erasure``). Called by the CLI (``storesense customer
withdraw-photo``) and the manager page (rpc op ``withdraw_photo_consent``).

Also who may take a consent: ``consent_taker_problem`` (enrolment asks it before any photo).
"""

from __future__ import annotations

import sqlite3

from hub.faces import profiles
from hub.privacy import audit
from hub.staff import accounts
from hub.store import db


def withdraw_photo_consent(
    conn: sqlite3.Connection, customer_id: str, *, actor: str, reason: str
) -> bool:
    """True if the consent was in force and is now withdrawn; False if there was none (an
    unknown customer, never given, or already withdrawn: nothing is written then)."""
    if not reason.strip():
        raise ValueError("a withdrawal needs a reason (it is written to the audit log)")
    with db.write(conn) as c:
        done = profiles.withdraw_photo_consent(c, customer_id)
        if done:
            audit.append(
                c, actor=actor, action=audit.WITHDRAW_PHOTO_CONSENT, customer_id=customer_id,
                detail=f"photo no longer shown to staff at arrival: {reason.strip()}",
            )  # fmt: skip
    return done


def consent_taker_problem(conn: sqlite3.Connection, staff_id: str) -> str | None:
    """Why ``staff_id`` cannot be recorded as the one who took a biometric consent; None if
    it can: an existing, active staff account (issue 13: ``enroll --staff nobody`` was
    accepted, so the audit said consent was taken by nobody anyone could ask)."""
    sid = staff_id.strip()
    if not sid:
        return "no staff member recorded as taking the consent"
    known = {str(s["staff_id"]): bool(s["active"]) for s in accounts.list_staff(conn)}
    if sid not in known:
        return (
            f"consent taker {sid!r} is not a staff account: the staff member who took the "
            "consent must have one (storesense staff add)"
        )
    if not known[sid]:
        return f"consent taker {sid!r} is a disabled staff account"
    return None
