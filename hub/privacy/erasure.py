"""Right to erasure across everything the hub keeps about one customer, in one transaction.

Face data goes entirely (profile, encrypted templates, visits, alerts, false-match reports
and the retained alert messages on the broker, which carry the name). Purchase history is
not deleted but unlinked: the store's sales figures (revenue per zone and day) must stay
right, so each of the customer's receipts gets a fresh random owner id that leads to nobody;
birthday and precomputed suggestions go. Earlier audit rows about the customer are redacted
(who did what and when stays, to whom goes; the keyed chain still verifies, and each redaction
is sealed under the audit key naming the erasure row, see hub.privacy.audit),
and one erasure row stays as the tombstone: the record that the request was honoured.
The running hub stops matching the person at once: the gallery version bumps and its
matcher reloads before it handles the next message.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from hub.alerts import records as alert_records
from hub.faces import profiles
from hub.privacy import audit
from hub.shop import pos_store
from hub.store import db


@dataclass(frozen=True)
class ErasureReport:
    profile: bool  # an enrolled profile (and its templates) was deleted
    receipts_unlinked: int
    audit_rows_redacted: int = 0

    @property
    def anything(self) -> bool:
        return self.profile or self.receipts_unlinked > 0


def erase_customer(
    conn: sqlite3.Connection, customer_id: str, *, actor: str, reason: str
) -> ErasureReport:
    """Each room forgets the customer through its own function, all in one transaction."""
    now = time.time()
    with db.write(conn) as c:
        profile = profiles.forget_customer(c, customer_id)  # bumps the gallery version
        alert_records.forget_customer(c, customer_id, now)
        receipts = pos_store.forget_customer_purchases(c, customer_id)
        redacted = audit.record_erasure(
            c, customer_id, actor=actor, at=now, detail=f"{reason}; receipts unlinked: {receipts}"
        )
    return ErasureReport(profile, receipts, redacted)
