"""The demo's shop data and customer cards.

``seed_purchases`` writes clearly fictitious receipts (invoice numbers ``DEMO-…``, customers
``demo-…``) through the product's own POS write path (``hub.shop.pos_store.insert_invoices``), gives
the demo customer a birthday next week and builds the suggestions, so the card of the winning
phone has history, a tier, points, bonuses, usual items and new-for-you. ``CardDesk`` plays the
phone app's customer view: when a phone wins a claim it builds the card with
``hub.shop.card.customer_card`` and records the view with ``hub.privacy.audit.record_profile_view``
(who, when, which customer, why) exactly as the hub does for the phones (``hub/api/dispatch.py``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.privacy.audit import record_profile_view
from hub.shop import pos_store
from hub.shop.card import CustomerNotFound, customer_card
from hub.shop.categories import default_rules
from hub.shop.suggest import build_suggestions
from hub.store import db
from storesense.config import StoreConfig
from storesense.paths import hub_db_path
from storesense_tools.sim_phone import Phone

# code → (description, unit price); descriptions fall into config/categories.yaml categories.
PRODUCTS: dict[str, tuple[str, float]] = {
    "DM001": ("WHITE CERAMIC TEAPOT", 24.00),
    "DM002": ("STONEWARE COFFEE MUG", 6.50),
    "DM003": ("SERVING BOWL LARGE", 18.00),
    "DM004": ("CAKESTAND THREE TIER", 29.00),
    "DM005": ("CUPCAKE CASES PACK", 3.50),
    "DM006": ("TEA LIGHT HOLDER GLASS", 4.25),
    "DM007": ("SCENTED CANDLE JAR", 12.00),
    "DM008": ("DINNER PLATE SET", 42.00),
    "DM009": ("BAKING TIN ROUND", 9.00),
    "DM010": ("LANTERN WHITE METAL", 21.00),
    "DM011": ("MILK JUG SMALL", 8.00),
    "DM012": ("COOKIE CUTTER SET", 5.50),
}
DEMO_PROMOTION = "Double points on baking"

# (customer, days ago, [(code, qty)]): the demo customer buys kitchen things again and again.
_RECEIPTS: list[tuple[str, int, list[tuple[str, int]]]] = [
    ("demo-0001", 300, [("DM001", 1), ("DM002", 4), ("DM008", 2)]),
    ("demo-0001", 190, [("DM002", 2), ("DM003", 2), ("DM011", 1)]),
    ("demo-0001", 120, [("DM008", 3), ("DM002", 2), ("DM006", 6)]),
    ("demo-0001", 60, [("DM001", 1), ("DM003", 1), ("DM008", 2)]),
    ("demo-0001", 21, [("DM002", 4), ("DM011", 2), ("DM003", 2)]),
    ("demo-0002", 200, [("DM002", 2), ("DM004", 1), ("DM005", 4), ("DM009", 1)]),
    ("demo-0002", 40, [("DM004", 1), ("DM012", 2), ("DM008", 1)]),
    ("demo-0003", 150, [("DM001", 1), ("DM004", 1), ("DM009", 2)]),
    ("demo-0003", 30, [("DM002", 2), ("DM005", 6), ("DM012", 1)]),
    ("demo-0004", 90, [("DM006", 8), ("DM007", 2), ("DM010", 1)]),
    ("demo-0004", 12, [("DM007", 1), ("DM010", 1), ("DM003", 1)]),
    ("demo-0005", 75, [("DM008", 2), ("DM003", 2), ("DM004", 1), ("DM009", 1)]),
    ("demo-0005", 8, [("DM011", 1), ("DM005", 3), ("DM012", 2)]),
    ("demo-0006", 45, [("DM001", 1), ("DM011", 1), ("DM004", 1)]),
]
# Sold earlier today, so the floor report can put sales next to zone visits.
_TODAY: list[tuple[str, list[tuple[str, int]]]] = [
    ("demo-0002", [("DM004", 1), ("DM005", 2)]),
    ("demo-0004", [("DM010", 1), ("DM007", 1)]),
    ("demo-0006", [("DM002", 4), ("DM003", 1)]),
]


def _invoice(no: int, cid: str, at: dt.datetime, items: list[tuple[str, int]]) -> pos_store.Invoice:
    lines = [pos_store.Line(c, PRODUCTS[c][0], q, PRODUCTS[c][1]) for c, q in items]
    return pos_store.Invoice(f"DEMO-{no:04d}", cid, at, "United Kingdom", False, lines)


def seed_purchases(home: Path, cfg: StoreConfig, now: dt.datetime) -> dict[str, Any]:
    """Write the fictitious receipts, the demo customer's birthday, and the suggestions."""
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier_today = now - (now - today_start) / 2  # always today, always in the past
    invoices = [
        _invoice(i, cid, (now - dt.timedelta(days=ago)).replace(microsecond=0), items)
        for i, (cid, ago, items) in enumerate(_RECEIPTS, 1)
    ]
    invoices += [
        _invoice(100 + i, cid, earlier_today.replace(microsecond=0), items)
        for i, (cid, items) in enumerate(_TODAY)
    ]
    conn = db.open_db(hub_db_path(home))
    try:
        with db.write(conn):
            lines = pos_store.insert_invoices(conn, invoices, default_rules(), "demo")
        soon = (now + dt.timedelta(days=3)).date()
        with db.write(conn):
            pos_store.set_birthday(conn, "demo-0001", soon.month, soon.day)
        build = build_suggestions(conn, cutoff=now.replace(microsecond=0))
    finally:
        conn.close()
    return {
        "invoices": len(invoices),
        "lines": lines,
        "customers": len({i.customer_id for i in invoices}),
        "suggestions_s": build.seconds_total,
    }


def promotion_yaml(today: dt.date) -> str:
    """A promotion running this week, so the card lists an active bonus."""
    start, end = today - dt.timedelta(days=3), today + dt.timedelta(days=4)
    return (
        f"loyalty:\n  promotions:\n    - {{name: {DEMO_PROMOTION}, category: baking, "
        f"multiplier: 2, starts: {start}, ends: {end}}}\n"
    )


class CardDesk:
    """Watches the phones; for each claim won, opens the customer card as the app would."""

    def __init__(
        self,
        home: Path,
        cfg: StoreConfig,
        phones: list[Phone],
        narrate: Callable[[str, str], None],
    ) -> None:
        self.cfg = cfg
        self.phones = phones
        self.narrate = narrate
        self.cards: dict[str, dict[str, Any]] = {}  # alert_id → card JSON
        self.errors: list[str] = []
        self._db_path = hub_db_path(home)
        self._conn: sqlite3.Connection | None = None  # opened on the desk's own thread
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-cards", daemon=True)

    def start(self) -> CardDesk:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _loop(self) -> None:
        self._conn = db.open_db(self._db_path)
        try:
            while not self._stop.wait(0.1):
                self._poll()
            self._poll()  # a claim won in the last moments still gets its card
        finally:
            self._conn.close()

    def _poll(self) -> None:
        for phone in self.phones:
            for res in list(phone.results):
                if res.outcome == "won" and res.alert_id not in self._done:
                    self._done.add(res.alert_id)
                    self.open_card(phone.staff_id, res.alert_id)

    def open_card(self, staff_id: str, alert_id: str) -> None:
        """The phone app's customer view for the alert this salesperson claimed."""
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT customer_id, state, claimed_by FROM alerts WHERE alert_id = ?", (alert_id,)
        ).fetchone()
        if row is None or row["state"] != "claimed" or row["claimed_by"] != staff_id:
            self.errors.append(f"{alert_id}: not claimed by {staff_id}")  # the app says 403
            return
        cid = row["customer_id"]
        try:
            card = customer_card(self._conn, cid, self.cfg, dt.datetime.now())
        except CustomerNotFound:
            self.errors.append(f"{alert_id}: customer {cid} unknown")
            return
        record_profile_view(
            self._conn, actor=staff_id, customer_id=cid, reason=f"claimed alert {alert_id}"
        )
        self.cards[alert_id] = card.model_dump(mode="json")
        lo = card.loyalty
        usual = card.usual_items[0].description if card.usual_items else "-"
        new = card.new_for_you[0].description if card.new_for_you else "-"
        self.narrate(
            staff_id,
            f"card: {card.name or cid} · {lo.tier} · {lo.points} pts · "
            f"{card.totals.baskets} baskets · usual {usual} · new for you {new}",
        )
