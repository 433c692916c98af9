"""A complete consent record for tests that enrol synthetic customers."""

from __future__ import annotations

from hub.faces.gallery import Consent


def consent(reference: str = "consent-1", staff_id: str = "tester") -> Consent:
    return Consent(reference, staff_id=staff_id, notice_version="test-notice", method="written")
