"""A complete consent record for tests that enrol synthetic customers."""

from __future__ import annotations

from pathlib import Path

from hub.faces.gallery import Consent
from hub.staff.accounts import add_staff
from hub.store import db


def consent(reference: str = "consent-1", staff_id: str = "tester") -> Consent:
    return Consent(reference, staff_id=staff_id, notice_version="test-notice", method="written")


def consent_taker(db_path: Path, staff_id: str = "bob", *, role: str = "salesperson") -> None:
    """An active staff account for ``staff_id``: enrolment records only an existing, active
    staff member as the one who took the consent (issue 13)."""
    conn = db.connect(db_path)
    try:
        add_staff(conn, staff_id, staff_id.title(), role, "correct horse battery", replace=True)
    finally:
        conn.close()
