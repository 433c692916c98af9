"""Loyalty tier, points and active bonuses, computed from the imported purchase history.

Nothing is stored: the POS history is the ledger, so a re-import, a cancellation or a rule
change in the store YAML is reflected the next time a card is drawn, with no balance to
drift out of step. Rules (``LoyaltyConfig``):

* tier: the highest tier whose ``min_spend_12m`` the net spend (cancellations subtract) in the
  ``tier_window_days`` before *now* reaches;
* points: each invoice earns ``amount × points_per_unit × tier multiplier × promotion
  multiplier`` per line, truncated toward zero per invoice (a cancellation takes its points
  back), where the tier is the one the customer held just before that invoice; fees and
  postage earn nothing; points older than ``points_valid_days`` expire; the balance is never
  negative;
* birthday bonus: once a year, a purchase within ``birthday_window_days`` of the birthday
  earns ``birthday_bonus_points``.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel

from hub.shop.categories import NON_PRODUCT
from hub.shop.pos_store import TIME_FMT, get_birthday
from storesense.shop_config import LoyaltyConfig, LoyaltyTier, Promotion


class ActiveBonus(BaseModel):
    """A bonus the salesperson can mention now."""

    kind: str  # "birthday" | "promotion" | "birthday_earned"
    name: str
    detail: str
    until: date | None = None


class LoyaltyStatus(BaseModel):
    tier: str | None
    points_multiplier: float
    spend_12m: float
    points: int
    next_tier: str | None
    spend_to_next_tier: float | None
    currency: str
    bonuses: list[ActiveBonus]


@dataclass(frozen=True, slots=True)
class _Inv:
    at: datetime
    total: float
    cancellation: bool
    base: float  # sum over product lines of amount × promotion multiplier


def tier_for(tiers: list[LoyaltyTier], spend: float) -> LoyaltyTier | None:
    """The highest tier reached with this spend (``None`` below the first threshold)."""
    reached = [t for t in tiers if spend >= t.min_spend_12m]
    return reached[-1] if reached else None


def spend_in_window(conn: sqlite3.Connection, customer_id: str, now: datetime, days: int) -> float:
    row = conn.execute(
        "SELECT COALESCE(SUM(total), 0) FROM pos_invoices WHERE customer_id = ? "
        "AND invoiced_at > ? AND invoiced_at <= ?",
        (
            customer_id,
            (now - timedelta(days=days)).strftime(TIME_FMT),
            now.strftime(TIME_FMT),
        ),
    ).fetchone()
    return round(float(row[0]), 2)


def tier_name(
    conn: sqlite3.Connection, customer_id: str, cfg: LoyaltyConfig, now: datetime
) -> str | None:
    """The customer's tier now: one indexed query, cheap enough for the door alert."""
    tier = tier_for(cfg.tiers, spend_in_window(conn, customer_id, now, cfg.tier_window_days))
    return tier.name if tier else None


def _promo_multiplier(promos: list[Promotion], category: str, day: date) -> float:
    mult = 1.0
    for p in promos:
        if p.starts <= day <= p.ends and (p.category is None or p.category == category):
            mult = max(mult, p.multiplier)  # promotions do not stack: the best one applies
    return mult


def _history(
    conn: sqlite3.Connection, customer_id: str, cfg: LoyaltyConfig, since: datetime, now: datetime
) -> list[_Inv]:
    rows = conn.execute(
        "SELECT i.invoice_no, i.invoiced_at, i.total, i.cancellation, l.quantity, l.unit_price, "
        "COALESCE(p.category, 'other') FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "LEFT JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.customer_id = ? AND i.invoiced_at > ? AND i.invoiced_at <= ? "
        "ORDER BY i.invoiced_at, i.invoice_no",
        (customer_id, since.strftime(TIME_FMT), now.strftime(TIME_FMT)),
    ).fetchall()
    heads: dict[str, tuple[datetime, float, bool]] = {}
    base: dict[str, float] = {}
    for inv_no, at, total, cancel, qty, price, cat in rows:
        if inv_no not in heads:
            heads[inv_no] = (datetime.strptime(at, TIME_FMT), float(total), bool(cancel))
            base[inv_no] = 0.0
        if cat != NON_PRODUCT:
            day = heads[inv_no][0].date()
            base[inv_no] += qty * price * _promo_multiplier(cfg.promotions, cat, day)
    return [_Inv(*heads[no], base[no]) for no in heads]  # dicts keep the query's time order


def birthday_in(year: int, month: int, day: int) -> date:
    """This year's birthday; 29 February falls on 28 February in other years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, 28)


def _nearest_birthday(bday: tuple[int, int], today: date) -> date:
    """The birthday (last, this or next year's) closest to ``today``."""
    cands = [birthday_in(today.year + k, *bday) for k in (-1, 0, 1)]
    return min(cands, key=lambda d: abs((d - today).days))


def loyalty_status(
    conn: sqlite3.Connection, customer_id: str, cfg: LoyaltyConfig, now: datetime
) -> LoyaltyStatus:
    """Tier, points balance and the bonuses active at ``now`` (store-local naive time)."""
    valid_from = now - timedelta(days=cfg.points_valid_days)
    history = _history(
        conn, customer_id, cfg, valid_from - timedelta(days=cfg.tier_window_days), now
    )
    window = timedelta(days=cfg.tier_window_days)
    in_window: deque[_Inv] = deque()
    window_spend = 0.0
    points = 0
    for inv in history:
        while in_window and in_window[0].at <= inv.at - window:
            window_spend -= in_window.popleft().total
        if inv.at > valid_from:
            tier = tier_for(cfg.tiers, window_spend)
            mult = tier.points_multiplier if tier else 1.0
            points += int(inv.base * cfg.points_per_unit * mult)
        in_window.append(inv)
        window_spend += inv.total

    bonuses: list[ActiveBonus] = []
    bday = get_birthday(conn, customer_id)
    if bday is not None and cfg.birthday_bonus_points > 0:
        w = timedelta(days=cfg.birthday_window_days)
        earned_years: set[date] = set()
        for inv in history:
            if inv.cancellation or inv.at <= valid_from:
                continue
            b = _nearest_birthday(bday, inv.at.date())
            if abs(inv.at.date() - b) <= w:
                earned_years.add(b)
        points += cfg.birthday_bonus_points * len(earned_years)
        b = _nearest_birthday(bday, now.date())
        if abs(now.date() - b) <= w:
            if b in earned_years:
                bonuses.append(
                    ActiveBonus(
                        kind="birthday_earned",
                        name="Birthday bonus earned",
                        detail=f"+{cfg.birthday_bonus_points} points already added this year",
                    )
                )
            else:
                bonuses.append(
                    ActiveBonus(
                        kind="birthday",
                        name="Birthday bonus",
                        detail=f"+{cfg.birthday_bonus_points} points on a purchase "
                        f"until {(b + w).isoformat()}",
                        until=b + w,
                    )
                )
    today = now.date()
    for p in cfg.promotions:
        if p.starts <= today <= p.ends:
            on = f"{p.category} items" if p.category else "everything"
            bonuses.append(
                ActiveBonus(
                    kind="promotion",
                    name=p.name,
                    detail=f"×{p.multiplier:g} points on {on}",
                    until=p.ends,
                )
            )

    spend = spend_in_window(conn, customer_id, now, cfg.tier_window_days)
    tier = tier_for(cfg.tiers, spend)
    higher = [t for t in cfg.tiers if t.min_spend_12m > spend]
    return LoyaltyStatus(
        tier=tier.name if tier else None,
        points_multiplier=tier.points_multiplier if tier else 1.0,
        spend_12m=spend,
        points=max(0, points),
        next_tier=higher[0].name if higher else None,
        spend_to_next_tier=round(higher[0].min_spend_12m - spend, 2) if higher else None,
        currency=cfg.currency,
        bonuses=bonuses,
    )


def tier_lookup(
    cfg: LoyaltyConfig,
) -> Callable[[sqlite3.Connection, str, float], tuple[str | None, bool]]:
    """The standing callable the daemon hands to ``hub.alerts.claims.record_match`` (alerts
    ask the shop through it instead of importing the shop): (tier, new customer), new being
    no purchase on file at all, as the card's ``new_customer`` says (``hub.shop.card``)."""

    def tier(conn: sqlite3.Connection, customer_id: str, now: float) -> tuple[str | None, bool]:
        bought = conn.execute(
            "SELECT 1 FROM pos_invoices WHERE customer_id = ? LIMIT 1", (customer_id,)
        ).fetchone()
        if bought is None:
            return None, True
        when = datetime.fromtimestamp(now).replace(microsecond=0)
        return loyalty_status(conn, customer_id, cfg, when).tier, False

    return tier
