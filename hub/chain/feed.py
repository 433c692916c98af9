"""The store's side of the chain: what ``chain.send`` allows, written into the hub's outbox.

Each tick turns what changed since the last one into ``storesense.chain_messages`` and
enqueues them (``hub.bus.outbox``) in ONE transaction with the cursor that says how far it got
(``meta`` keys ``chain_alert_seq`` and ``chain_floor_until``): a crash before the commit makes
the next tick do it again, a crash after it finds the messages in the outbox, which publishes
them QoS 1 to the store broker; its bridge forwards them to the central broker. Message ids
are derived from the fact (``chain_msg_id``), so a message made twice (a restored backup
re-reads its alerts) is the same message and the central office drops the copy.

Nothing here reads another room's tables: alerts come from ``hub.alerts.views``, zone
figures from ``hub.floor.intervals``, camera states from ``hub.alerts.node_health``, a settled
day's report figures from ``hub.floor.analysis`` (``hub.chain.daily``).
The summaries leave out the customer's id and name: chain-wide customers have their own
consent and their own messages (``hub.chain.customers``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.alerts import node_health
from hub.alerts import views as alert_views
from hub.bus import outbox
from hub.chain import daily
from hub.chain.customers import ChainCustomers
from hub.floor import intervals
from hub.store import db
from storesense import chain_messages as cm
from storesense.config import StoreConfig
from storesense.topics import Topics

log = logging.getLogger(__name__)

ALERT_CURSOR = "chain_alert_seq"
FLOOR_CURSOR = "chain_floor_until"
DAILY_CURSOR = "chain_daily_next"  # the next store-local day (ISO date) to sum up
DAILY_RETRY_S = 600.0
# After a long outage the hub catches up on at most this many floor intervals per tick, so
# one tick never holds the write lock for long (a week of 15-min intervals: 672 ticks).
MAX_INTERVALS_PER_TICK = 4
# Zones of this kind are where staff rest: their visits are staff's, and stay in the store.
PRIVATE_ZONE_KINDS = frozenset({"staff"})


@dataclass(frozen=True)
class HealthFacts:
    """What the daemon knows about itself, for the health message."""

    outbox_unsent: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class ChainFeed:
    """Owned by the hub worker (its connection); ``tick`` is cheap when nothing changed."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        cfg: StoreConfig,
        topics: Topics,
        *,
        health: Callable[[], HealthFacts] = HealthFacts,
        customers: ChainCustomers | None = None,
    ) -> None:
        """``customers``: the chain-wide customers (``chain.send`` has ``customers``; it
        needs the hub's home for the keys, so the daemon makes it)."""
        self.conn = conn
        self.cfg = cfg
        self.chain = cfg.chain
        self.topics = topics
        self._health = health
        self.customers = customers
        self._next_health = 0.0
        self.enqueued = 0  # messages written to the outbox since start (status, tests)
        self._daily_retry_at = 0.0
        self.daily_errors = 0  # days whose summary failed (retried after DAILY_RETRY_S)

    @property
    def enabled(self) -> bool:
        return bool(self.chain.send)

    def tick(self, now: float) -> int:
        """Enqueue what is due; returns how many messages were enqueued."""
        if not self.enabled:
            return 0
        n = 0
        if self.chain.sends("alert_summaries") or self.chain.sends("claims"):
            n += self._alerts(now)
        if self.chain.sends("floor_aggregates"):
            n += self._floor(now)
        if self.chain.sends("daily_summaries"):
            n += self._daily(now)
        if self.chain.sends("health") and now >= self._next_health:
            self._next_health = now + self.chain.health_interval_s
            n += self._health_message(now)
        if self.customers is not None and self.chain.sends("customers"):
            n += self.customers.tick(now)
        self.enqueued += n
        return n

    def _put(self, message: cm.ChainMessage, now: float) -> None:
        outbox.enqueue(self.conn, self.topics.chain(message.kind), message, False, now=now)

    # -- alerts and claims -------------------------------------------------------------------
    def _alerts(self, now: float) -> int:
        since = int(db.get_meta(self.conn, ALERT_CURSOR) or 0)
        if db.counter(self.conn, "alert_seq") <= since:
            return 0  # one SELECT of a counter when nothing changed
        store = self.cfg.store_id
        with db.write(self.conn):
            changed = alert_views.alert_states_since(self.conn, since)
            n = 0
            for a in changed:
                if self.chain.sends("alert_summaries"):
                    summary = cm.AlertSummary(
                        msg_id=cm.chain_msg_id(store, "alert_summary", a.alert_id, a.seq),
                        store_id=store, alert_id=a.alert_id, seq=a.seq, state=a.state,
                        camera_id=a.camera_id, arrived_at=a.arrived_at, expires_at=a.expires_at,
                        claimed_by=a.claimed_by, claimed_at=a.claimed_at, tier=a.tier,
                        new_customer=a.new_customer, sent_at=now,
                    )  # fmt: skip
                    self._put(summary, now)
                    n += 1
                # a claim is its (alert, salesperson, moment): seen again on the alert's later
                # changes, it gets the same id, and the central office keeps one
                if self.chain.sends("claims") and a.claimed_by and a.claimed_at is not None:
                    claim = cm.Claim(
                        msg_id=cm.chain_msg_id(
                            store, "claim", a.alert_id, a.claimed_by, a.claimed_at
                        ),
                        store_id=store, alert_id=a.alert_id, staff_id=a.claimed_by,
                        camera_id=a.camera_id, arrived_at=a.arrived_at,
                        claimed_at=a.claimed_at, sent_at=now,
                    )  # fmt: skip
                    self._put(claim, now)
                    n += 1
            if changed:
                db.put_meta(self.conn, ALERT_CURSOR, str(max(a.seq for a in changed)))
        return n

    # -- floor aggregates --------------------------------------------------------------------
    def _floor(self, now: float) -> int:
        step = self.chain.floor_interval_s
        raw = db.get_meta(self.conn, FLOOR_CURSOR)
        # first time on: start with the interval now running (no back-fill of history)
        until = float(raw) if raw is not None else math.floor(now / step) * step
        if raw is not None and until + step + self.chain.floor_settle_s > now:
            return 0  # nothing due: no write transaction (this runs every tick)
        zones = [z for z in self.cfg.zones if z.kind not in PRIVATE_ZONE_KINDS]
        n = 0
        with db.write(self.conn):
            for _ in range(MAX_INTERVALS_PER_TICK):
                if until + step + self.chain.floor_settle_s > now:
                    break
                totals = intervals.zone_totals(self.conn, until, until + step)
                for zone in zones:
                    visits, dwell = totals.get(zone.name, (0, 0.0))
                    msg = cm.ZoneInterval(
                        msg_id=cm.chain_msg_id(
                            self.cfg.store_id, "zone_interval", zone.name, until, step, 0
                        ),
                        store_id=self.cfg.store_id, zone=zone.name, interval_start=until,
                        interval_s=step, visits=visits, dwell_s=round(dwell, 3), sent_at=now,
                    )  # fmt: skip
                    self._put(msg, now)
                    n += 1
                until += step
            db.put_meta(self.conn, FLOOR_CURSOR, repr(until))
        return n

    # -- daily summaries --------------------------------------------------------------------
    def _daily(self, now: float) -> int:
        """At most one settled day per tick: the day's floor report as ``daily_summary``.

        A day is settled ``daily_settle_s`` after the store's local midnight ending it. First
        time on, the cursor starts at today (no back-fill); after an outage the missed days
        follow one a tick. The analysis reads outside the write lock (it takes a while); the
        message and the cursor then commit together.
        """
        raw = db.get_meta(self.conn, DAILY_CURSOR)
        day = dt.date.fromisoformat(raw) if raw else dt.date.fromtimestamp(now)
        if raw is None:
            with db.write(self.conn):
                db.put_meta(self.conn, DAILY_CURSOR, day.isoformat())
        next_midnight = time.mktime((day + dt.timedelta(days=1)).timetuple())
        if now < next_midnight + self.chain.daily_settle_s or now < self._daily_retry_at:
            return 0
        try:
            msg = daily.daily_summary(self.conn, self.cfg, day, now)
        except Exception:  # a report that cannot be made must not stop alerts: retry later
            log.exception("chain: could not sum up %s; trying again in %d s", day, DAILY_RETRY_S)
            self._daily_retry_at = now + DAILY_RETRY_S
            self.daily_errors += 1
            return 0
        with db.write(self.conn):
            self._put(msg, now)
            db.put_meta(self.conn, DAILY_CURSOR, (day + dt.timedelta(days=1)).isoformat())
        return 1

    # -- health ------------------------------------------------------------------------------
    def _health_message(self, now: float) -> int:
        facts = self._health()
        cameras = {str(r["camera_id"]): r["state"] for r in node_health.node_rows(self.conn)}
        msg = cm.StoreHealth(
            store_id=self.cfg.store_id, cameras=cameras, outbox_unsent=facts.outbox_unsent,
            rejected=dict(facts.rejected), errors=dict(facts.errors), sent_at=now,
        )  # fmt: skip
        with db.write(self.conn):
            self._put(msg, now)
        return 1


def resend_since(conn: sqlite3.Connection, topics: Topics, since: float) -> int:
    """Send the chain messages made since ``since`` again (``storesense chain resend``).

    For the window a crashed central broker may have lost (it acknowledges before its next
    persistence save): the central office drops what it already has by id, so a resend is
    harmless. The outbox keeps sent rows 7 days (``hub.alerts.claims.housekeeping``).
    """
    with db.write(conn):
        return outbox.resend(conn, topics.chain_prefix, since)
