"""Apply one chain message to PostgreSQL, exactly once by its id.

QoS 1 and the bridge deliver at least once (a broker restart or a lost PUBACK re-sends), so
every message is applied in ONE transaction with its row in ``ingested``: the INSERT of that
row is ``ON CONFLICT DO NOTHING RETURNING``, and a second delivery gets no row back and changes
nothing. The row's key includes the fact's day (from the payload), which every copy shares.

A payload that cannot be applied is a counted, logged rejection (``rejections`` table and
``Ingest.rejected``), never an exception out of here: a bad message must not stop the feed.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from typing import Literal

import psycopg
from psycopg.types.json import Jsonb

from central import db, downlink, pos
from storesense import chain_messages as cm
from storesense.messages import PayloadError
from storesense.topics import ChainTopics

log = logging.getLogger(__name__)

Outcome = Literal["applied", "duplicate", "rejected"]


def _ts(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _alert(conn: psycopg.Connection, day: dt.date, m: cm.AlertSummary) -> None:
    conn.execute(
        "INSERT INTO alert_summaries(day, store_id, alert_id, seq, state, camera_id, arrived_at, "
        "expires_at, claimed_by, claimed_at, tier, new_customer) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (store_id, day, alert_id) DO UPDATE SET seq=excluded.seq, "
        "state=excluded.state, expires_at=excluded.expires_at, claimed_by=excluded.claimed_by, "
        "claimed_at=excluded.claimed_at, tier=excluded.tier, new_customer=excluded.new_customer, "
        "updated_at=now() WHERE alert_summaries.seq < excluded.seq",  # the store's seq rule
        (
            day, m.store_id, m.alert_id, m.seq, m.state, m.camera_id, _ts(m.arrived_at),
            _ts(m.expires_at), m.claimed_by,
            None if m.claimed_at is None else _ts(m.claimed_at), m.tier, m.new_customer,
        ),
    )  # fmt: skip


def _claim(conn: psycopg.Connection, day: dt.date, m: cm.Claim) -> None:
    conn.execute(
        "INSERT INTO claims(day, store_id, alert_id, staff_id, camera_id, arrived_at, claimed_at) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
        (day, m.store_id, m.alert_id, m.staff_id, m.camera_id, _ts(m.arrived_at),
         _ts(m.claimed_at)),
    )  # fmt: skip


def _zone(conn: psycopg.Connection, day: dt.date, m: cm.ZoneInterval) -> None:
    conn.execute(
        "INSERT INTO zone_intervals(day, store_id, zone, interval_start, interval_s, visits, "
        "dwell_s, revision) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (store_id, day, zone, interval_start, interval_s) DO UPDATE SET "
        "visits=excluded.visits, dwell_s=excluded.dwell_s, revision=excluded.revision "
        "WHERE zone_intervals.revision < excluded.revision",
        (day, m.store_id, m.zone, _ts(m.interval_start), m.interval_s, m.visits, m.dwell_s,
         m.revision),
    )  # fmt: skip


def _health(conn: psycopg.Connection, day: dt.date, m: cm.StoreHealth) -> None:
    conn.execute(
        "INSERT INTO store_health(day, store_id, msg_id, at, cameras, outbox_unsent, rejected, "
        "errors) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
        (day, m.store_id, m.msg_id, _ts(m.sent_at), Jsonb(m.cameras), m.outbox_unsent,
         Jsonb(m.rejected), Jsonb(m.errors)),
    )  # fmt: skip
    conn.execute(
        "UPDATE stores SET last_health_at=greatest(coalesce(last_health_at, %s), %s) "
        "WHERE store_id=%s",
        (_ts(m.sent_at), _ts(m.sent_at), m.store_id),
    )


def _daily(conn: psycopg.Connection, day: dt.date, m: cm.DailySummary) -> None:
    """A store's day: a later revision replaces it, an older or equal one changes nothing."""
    png = None if m.heatmap_png is None else base64.b64decode(m.heatmap_png)
    advice = [a.model_dump() for a in m.advice]
    conn.execute(
        "INSERT INTO daily_summaries(day, store_id, revision, observed_s, footfall, people_seen, "
        "visits, selling_visits, sales, receipts, currency, conversion, provisional, advice, "
        "heatmap_png) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (store_id, day) DO UPDATE SET revision=excluded.revision, "
        "observed_s=excluded.observed_s, footfall=excluded.footfall, "
        "people_seen=excluded.people_seen, visits=excluded.visits, "
        "selling_visits=excluded.selling_visits, sales=excluded.sales, "
        "receipts=excluded.receipts, currency=excluded.currency, "
        "conversion=excluded.conversion, provisional=excluded.provisional, "
        "advice=excluded.advice, heatmap_png=excluded.heatmap_png, received_at=now() "
        "WHERE daily_summaries.revision < excluded.revision",
        (day, m.store_id, m.revision, m.observed_s, m.footfall, m.people_seen, m.visits,
         m.selling_visits, m.sales, m.receipts, m.currency, m.conversion, m.provisional,
         Jsonb(advice), png),
    )  # fmt: skip


# -- chain-wide customers: the office relays, never opens (docs/chain.md) -------------------


def _store_key(conn: psycopg.Connection, day: dt.date, m: cm.StoreKey) -> None:
    """A store's key, then the whole directory to every store (a new store's key reaches the
    others, which then seal their chain customers for it)."""
    conn.execute(
        "INSERT INTO store_keys(store_id, public_key) VALUES (%s,%s) ON CONFLICT (store_id) "
        "DO UPDATE SET public_key=excluded.public_key, registered_at=now()",
        (m.store_id, m.public_key),
    )
    rows = conn.execute("SELECT store_id, public_key FROM store_keys ORDER BY 1").fetchall()
    keys = {str(r[0]): str(r[1]) for r in rows}
    for store in keys:
        directory = cm.KeyDirectory(
            msg_id=cm.chain_msg_id(store, "key_directory", sorted(keys.items())),
            store_id=store, keys=keys,
        )  # fmt: skip
        downlink.queue(conn, directory)


def _template(conn: psycopg.Connection, day: dt.date, m: cm.ChainTemplate) -> None:
    """Keep the ciphertext (for the record and a later resend) and relay it to its store."""
    ref = (m.chain_ref,)
    if conn.execute("SELECT 1 FROM chain_tombstones WHERE chain_ref=%s", ref).fetchone():
        raise PayloadError("erased_customer", f"chain customer {m.chain_ref} was erased")
    if (
        m.target_store == m.store_id
        or not conn.execute(
            "SELECT 1 FROM store_keys WHERE store_id=%s", (m.target_store,)
        ).fetchone()
    ):
        raise PayloadError("unknown_store", f"no key registered for {m.target_store!r}")
    origin = conn.execute(
        "INSERT INTO chain_customers(chain_ref, origin_store, model, revision) "
        "VALUES (%s,%s,%s,%s) ON CONFLICT (chain_ref) DO UPDATE SET "
        "model=excluded.model, revision=greatest(chain_customers.revision, excluded.revision), "
        "updated_at=now() RETURNING origin_store",
        (m.chain_ref, m.store_id, m.model, m.revision),
    ).fetchone()
    if origin is None or origin[0] != m.store_id:
        raise PayloadError("origin_conflict", f"{m.chain_ref} is another store's chain customer")
    conn.execute(
        "INSERT INTO chain_templates(chain_ref, target_store, origin_store, model, revision, "
        "sealed) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (chain_ref, target_store) DO UPDATE "
        "SET model=excluded.model, revision=excluded.revision, sealed=excluded.sealed, "
        "received_at=now() WHERE chain_templates.revision <= excluded.revision",
        (m.chain_ref, m.target_store, m.store_id, m.model, m.revision,
         base64.b64decode(m.sealed)),
    )  # fmt: skip
    delivery = cm.TemplateDelivery(
        msg_id=cm.chain_msg_id(m.target_store, "template_delivery", m.msg_id),
        store_id=m.target_store, chain_ref=m.chain_ref, origin_store=m.store_id,
        model=m.model, revision=m.revision, sealed=m.sealed,
    )  # fmt: skip
    downlink.queue(conn, delivery, chain_ref=m.chain_ref)


def _member(conn: psycopg.Connection, day: dt.date, m: cm.ChainMember) -> None:
    """A store holds a chain customer under this loyalty id: send it their purchases."""
    ref = (m.chain_ref,)
    if conn.execute("SELECT 1 FROM chain_tombstones WHERE chain_ref=%s", ref).fetchone():
        raise PayloadError("erased_customer", f"chain customer {m.chain_ref} was erased")
    conn.execute(
        "INSERT INTO chain_members(chain_ref, store_id, customer_id) VALUES (%s,%s,%s) "
        "ON CONFLICT (chain_ref, store_id) DO UPDATE SET customer_id=excluded.customer_id",
        (m.chain_ref, m.store_id, m.customer_id),
    )
    pos.queue_history(conn, m.chain_ref, m.store_id, m.customer_id)


def _erasure(conn: psycopg.Connection, day: dt.date, m: cm.ChainErasure) -> None:
    """Erase everywhere: the office's rows go (a tombstone stays), undelivered deliveries are
    withdrawn, and every other store that holds the customer gets an order."""
    ref = m.chain_ref
    holders = {
        str(r[0])
        for r in conn.execute(
            "SELECT origin_store FROM chain_customers WHERE chain_ref=%s UNION "
            "SELECT target_store FROM chain_templates WHERE chain_ref=%s UNION "
            "SELECT store_id FROM chain_members WHERE chain_ref=%s",
            (ref, ref, ref),
        )
    } - {m.store_id}
    conn.execute("DELETE FROM downlink WHERE chain_ref=%s", (ref,))  # deliveries, purchases
    pos.forget_customer(conn, ref)  # membership rows; their invoices unlinked
    conn.execute("DELETE FROM chain_customers WHERE chain_ref=%s", (ref,))  # cascades
    conn.execute(
        "INSERT INTO chain_tombstones(chain_ref, origin_store, erased_at, stores_ordered) "
        "VALUES (%s,%s,%s,%s) ON CONFLICT (chain_ref) DO UPDATE SET "
        "stores_ordered=chain_tombstones.stores_ordered || excluded.stores_ordered",
        (ref, m.store_id, _ts(m.erased_at), sorted(holders)),
    )
    for store in sorted(holders):
        order = cm.ErasureOrder(
            msg_id=cm.chain_msg_id(store, "erasure_order", m.msg_id), store_id=store,
            chain_ref=ref, origin_store=m.store_id, erased_at=m.erased_at,
        )  # fmt: skip
        downlink.queue(conn, order)


_APPLY: dict[type[cm._ChainMessage], Callable[..., None]] = {
    cm.AlertSummary: _alert,
    cm.Claim: _claim,
    cm.ZoneInterval: _zone,
    cm.StoreHealth: _health,
    cm.DailySummary: _daily,
    cm.StoreKey: _store_key,
    cm.ChainTemplate: _template,
    cm.ChainErasure: _erasure,
    cm.ChainMember: _member,
}


class Ingest:
    """Owned by one thread (its connection). Counts what it applied, dropped and refused."""

    def __init__(self, conn: psycopg.Connection, *, max_age_days: int = 35) -> None:
        self.conn = conn
        self.max_age = dt.timedelta(days=max_age_days)
        self.applied: Counter[str] = Counter()
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()
        self._days: set[dt.date] = set()  # partitions known to exist

    def handle(self, topic: str, payload: bytes, now: float) -> Outcome:
        """Apply or drop one message; a bad one is counted, logged and stored as a rejection.

        Database errors other than a refused value (connection lost, …) propagate: the caller
        must not acknowledge the message, and retries it.
        """
        where = ChainTopics.parse(topic)
        try:
            if where is None:
                raise PayloadError("bad_topic", f"{topic!r} is not chain/v1/<store>/<kind>")
            msg = cm.decode_for(where[0], where[1], payload)
            day = self._day_of(msg.event_at, now)
        except PayloadError as exc:
            self._reject(where[0] if where else "", exc, now)
            return "rejected"
        if day not in self._days:
            db.ensure_partitions(self.conn, day)
            self._days.add(day)
        try:
            with self.conn.transaction():
                self.conn.execute(
                    "INSERT INTO stores(store_id) VALUES (%s) ON CONFLICT DO NOTHING",
                    (msg.store_id,),
                )
                first = self.conn.execute(
                    "INSERT INTO ingested(day, store_id, msg_id, kind) VALUES (%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    (day, msg.store_id, msg.msg_id, msg.kind),
                ).fetchone()
                if first is None:
                    self.duplicates += 1
                    return "duplicate"
                _APPLY[type(msg)](self.conn, day, msg)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            # the schema refused a value the message model let through (a count past 2^31, a
            # day whose partition retention dropped): this message can never be applied, so it
            # is a rejection, not a retry that would hold up every store's messages behind it
            self._days.discard(day)
            self._reject(msg.store_id, PayloadError("db_refused", str(exc).splitlines()[0]), now)
            return "rejected"
        except PayloadError as exc:  # a chain customer's message the office's state refuses
            self._reject(msg.store_id, exc, now)  # (rolled back: its ``ingested`` row too)
            return "rejected"
        self.applied[msg.kind] += 1
        return "applied"

    def _day_of(self, event_at: float, now: float) -> dt.date:
        at, current = _ts(event_at), _ts(now)
        if not current - self.max_age <= at <= current + dt.timedelta(days=1):
            raise PayloadError(
                "bad_time", f"fact time {at.isoformat()} is outside the accepted window"
            )
        return at.date()

    def _reject(self, store_id: str, exc: PayloadError, now: float) -> None:
        self.rejected[exc.reason] += 1
        log.warning("rejected chain message from %r (%s): %s", store_id, exc.reason, exc.detail)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO rejections(day, store_id, reason, count, last_detail, last_at) "
                "VALUES (%s,%s,%s,1,%s,%s) ON CONFLICT (day, store_id, reason) DO UPDATE SET "
                "count=rejections.count + 1, last_detail=excluded.last_detail, "
                "last_at=excluded.last_at",
                (_ts(now).date(), store_id, exc.reason, exc.detail[:500], _ts(now)),
            )
