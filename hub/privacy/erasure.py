"""Right to erasure across everything the hub keeps about one customer, in one transaction.

Face data goes entirely (profile, encrypted templates, visits, alerts, false-match reports
and the retained alert messages on the broker, which carry the name). Purchase history is
not deleted but unlinked: the store's sales figures (revenue per zone and day) must stay
right, so each of the customer's receipts gets a fresh random owner id that leads to nobody;
birthday and precomputed suggestions go. Earlier audit rows about the customer are redacted
(who did what and when stays, to whom goes; the keyed chain still verifies, see hub.privacy.audit),
and one erasure row stays as the tombstone: the record that the request was honoured.
The running hub stops matching the person at once: the gallery version bumps and its
matcher reloads before it handles the next message.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

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
    now = time.time()
    with db.write(conn) as c:
        profile = _erase_face_data(c, customer_id, now)
        receipts = pos_store.forget_customer_purchases(c, customer_id)
        redacted = audit.redact_customer(c, customer_id)
        report = ErasureReport(profile, receipts, redacted)
        audit.append(
            c, at=now, actor=actor, action="erase", customer_id=customer_id,
            detail=f"{reason}; receipts unlinked: {receipts}; audit rows redacted: {redacted}",
        )  # fmt: skip
        if profile:
            db.next_counter(c, "gallery_version")  # the live matcher reloads without them
    return report


def _erase_face_data(c: sqlite3.Connection, customer_id: str, now: float) -> bool:
    gone = c.execute("DELETE FROM customers WHERE customer_id=?", (customer_id,)).rowcount
    c.execute("DELETE FROM templates WHERE customer_id=?", (customer_id,))
    c.execute("DELETE FROM enrolment_photos WHERE customer_id=?", (customer_id,))
    # Retained alert messages on the broker carry the name: clear them (the hub
    # publishes these outbox rows), and drop the stored copies of what was sent.
    for (alert_id,) in c.execute(
        "SELECT alert_id FROM alerts WHERE customer_id=?", (customer_id,)
    ).fetchall():
        topics = [
            r[0]
            for r in c.execute(
                "SELECT DISTINCT topic FROM outbox WHERE topic LIKE ?",
                (f"%/alerts/{alert_id}",),
            )
        ]
        c.execute("DELETE FROM outbox WHERE topic LIKE ?", (f"%/alerts/{alert_id}",))
        c.executemany(
            "INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?, x'', 1, ?)",
            [(t, now) for t in topics],
        )
    c.execute("DELETE FROM alerts WHERE customer_id=?", (customer_id,))
    c.execute("DELETE FROM visits WHERE customer_id=?", (customer_id,))
    # "not this person" reports name the customer the stranger was mistaken for
    c.execute("DELETE FROM false_matches WHERE customer_id=?", (customer_id,))
    return bool(gone)
