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
from collections.abc import Callable
from dataclasses import dataclass

from hub.alerts import records as alert_records
from hub.chain import members as chain_members
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
    conn: sqlite3.Connection, customer_id: str, *, actor: str, reason: str,
    chain_origin: str | None = None,
    also: Callable[[sqlite3.Connection], object] | None = None,
) -> ErasureReport:  # fmt: skip
    """Each room forgets the customer through its own function, all in one transaction.

    A chain customer (docs/chain.md) erased here queues the request that erases them in every
    store; ``chain_origin`` names the store where the erasure was asked for when the central
    office ordered this one (no request goes back up, the audit names that store). ``also``
    runs inside the transaction (the downlink's message id is recorded as seen with it).
    """
    now = time.time()
    with db.write(conn) as c:
        chain = chain_members.forget_customer(c, customer_id, now, request_up=chain_origin is None)
        profile = profiles.forget_customer(c, customer_id)  # bumps the gallery version
        alert_records.forget_customer(c, customer_id, now)
        receipts = pos_store.forget_customer_purchases(c, customer_id)
        where = (
            f"; chain erasure asked for at store {chain_origin}" if chain_origin is not None
            else "; chain customer: erasure requested in every store" if chain else ""
        )  # fmt: skip
        redacted = audit.record_erasure(
            c, customer_id, actor=actor, at=now,
            detail=f"{reason}; receipts unlinked: {receipts}{where}",
        )  # fmt: skip
        if also is not None:
            also(c)
    return ErasureReport(profile, receipts, redacted)
