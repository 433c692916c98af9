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

from hub.alerts import records as alert_records
from hub.chain import members as chain_members
from hub.faces import profiles
from hub.privacy import audit
from hub.shop import pos_store
from hub.store import db


def export_customer(
    conn: sqlite3.Connection, customer_id: str, *, actor: str, reason: str
) -> dict[str, Any] | None:
    """Everything about ``customer_id``, or None if the hub knows nothing of them.

    Each room says what it holds about the person (``customer_data``, the mirror of the
    ``forget_customer`` functions erasure calls); only the audit trail is privacy's own table.
    """
    if not reason.strip():
        raise ValueError("an export needs a reason (e.g. the customer's access request)")
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "exported_at": time.time(),
        **profiles.customer_data(conn, customer_id),
        **alert_records.customer_data(conn, customer_id),
        "audit": [
            dict(r)
            for r in conn.execute(
                "SELECT at, actor, action, detail FROM audit WHERE customer_id=? ORDER BY audit_id",
                (customer_id,),
            )
        ],
        **pos_store.customer_data(conn, customer_id),
        **chain_members.customer_data(conn, customer_id),  # chain-wide: from where, sent where
    }
    # After an erasure only the tombstone names them: that is not data to hand out, and
    # auditing an export of it would write their id into the log again.
    if not any(data[k] for k in ("profile", "visits", "alerts", "purchases", "birthday")):
        return None
    with db.write(conn) as c:
        audit.append(c, actor=actor, action="export", customer_id=customer_id, detail=reason)
    return data
