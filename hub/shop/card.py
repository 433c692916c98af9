"""The customer card a salesperson's phone shows after claiming an alert.

``customer_card`` is the one call the phone app makes; ``CustomerCard`` is its contract
(pydantic, so it is also the OpenAPI schema). Everything comes from the hub database: the
name if the customer is enrolled (asked of the face room, ``hub.faces.profiles.customer_name``:
the shop does not read its tables), the imported purchases, the loyalty rules and the
precomputed suggestions. Reads only; a card is built in a few milliseconds
(docs/pos.md), so it needs no cache.

What the salesperson reads is decided here, not in the phone's JavaScript: product names
made readable (POS exports such as the UCI data write them in capitals), every amount also
as text in the store's currency and locale (``loyalty.currency``/``loyalty.locale``, CLDR
rules through ``babel``: ``£1,234.50``, ``1.234,50 €``), and ``new_customer`` for someone
with no purchase yet, so the phone shows "first visit" instead of zeros and a tier the
customer never earned.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from hub.alerts import records
from hub.faces import profiles
from hub.shop import pos_store
from hub.shop.loyalty import ActiveBonus, LoyaltyStatus, loyalty_status
from hub.shop.money import money_text  # the one money format (the floor report uses it too)
from hub.shop.suggest import Suggestion, last_build, lookup
from storesense.config import StoreConfig
from storesense.ids import CustomerId


class CustomerNotFound(KeyError):
    """Neither enrolled nor in the purchase history."""


class BasketLine(BaseModel):
    stock_code: str
    description: str = Field(description="as the till wrote it")
    name: str = Field(description="the description made readable for the phone")
    category: str
    quantity: int
    unit_price: float
    amount: float
    amount_text: str = Field(description="amount in the store's currency format")


class Basket(BaseModel):
    invoice_no: str
    at: datetime
    total: float
    total_text: str = Field(description="total in the store's currency format")
    items: int = Field(description="units bought (negative for a cancellation)")
    cancellation: bool
    lines: list[BasketLine]
    more_lines: int = Field(0, description="lines not shown")


class Totals(BaseModel):
    lifetime_spend: float
    spend_12m: float
    baskets: int
    baskets_12m: int
    cancellations: int
    average_basket: float | None
    first_purchase: datetime | None
    last_purchase: datetime | None


class CategoryShare(BaseModel):
    category: str
    spend: float
    share: float = Field(description="of the customer's product spend in the period, 0..1")


class MoneyText(BaseModel):
    """The card's amounts as the store writes them (currency symbol, separators, order)."""

    lifetime_spend: str
    spend_12m: str
    average_basket: str | None
    spend_to_next_tier: str | None


class SuggestedItem(BaseModel):
    stock_code: str
    description: str
    name: str = Field(description="the description made readable for the phone")
    category: str
    source: str = Field(description="repeat | repeat+als | als | popular")
    score: float


class CustomerCard(BaseModel):
    customer_id: CustomerId  # the one customer-id rule, storesense/ids.py
    name: str | None
    enrolled: bool
    as_of: datetime
    currency: str
    locale: str = Field(description="CLDR locale the *_text amounts are written in")
    new_customer: bool = Field(
        description="no purchase on file: the phone shows a first-visit card, not zeros and "
        "a tier the customer never earned"
    )
    last_visit: datetime | None = Field(
        description="the visit before this one (hub.alerts.records.previous_visit)"
    )
    totals: Totals
    money: MoneyText
    recent_baskets: list[Basket]
    favourite_categories: list[CategoryShare]
    favourite_period: str = Field(description="'12m' or 'all' (no purchase in 12 months)")
    loyalty: LoyaltyStatus
    active_bonuses: list[ActiveBonus]
    usual_items: list[SuggestedItem]
    new_for_you: list[SuggestedItem]
    suggestions_built_at: datetime | None


# Words kept in capitals (units, sizes, abbreviations a till uses) and words kept small
# inside a name; everything else in an all-capitals description becomes Title Case.
_KEEP_UPPER = frozenset({"UK", "USA", "LED", "DIY", "XL", "XXL", "S/M", "M/L", "A4", "A5", "A6"})
_SMALL = frozenset({"of", "and", "the", "in", "with", "for", "a", "an", "on", "to", "or", "n"})
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def readable_name(description: str) -> str:
    """``"SET OF 3 CAKE TINS PANTRY DESIGN "`` → ``"Set of 3 Cake Tins Pantry Design"``.

    Only a description with no lower-case letter is changed (a till that already writes
    "Desk lamp" is left alone); spaces are collapsed, the first word is always capitalised.
    """
    text = " ".join(description.split())
    if not text or any(ch.islower() for ch in text):
        return text
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        if word in _KEEP_UPPER:
            out.append(word)
            continue

        def cap(m: re.Match[str], first: bool = i == 0, word: str = word) -> str:
            w = m.group(0).lower()
            if m.start() > 0 and word[m.start() - 1] == "'":  # 50'S -> 50's
                return w
            if not first and m.start() == 0 and w in _SMALL:
                return w
            return w[:1].upper() + w[1:]

        out.append(_WORD.sub(cap, word))
    return " ".join(out)


def _ts(text: str | None) -> datetime | None:
    return datetime.strptime(text, pos_store.TIME_FMT) if text else None


def _totals(conn: sqlite3.Connection, cid: str, now: datetime) -> Totals:
    t_now = now.strftime(pos_store.TIME_FMT)
    t_12m = (now - timedelta(days=365)).strftime(pos_store.TIME_FMT)
    r = conn.execute(
        "SELECT COALESCE(SUM(total), 0), SUM(cancellation = 0), SUM(cancellation), "
        "MIN(CASE WHEN cancellation = 0 THEN invoiced_at END), "
        "MAX(CASE WHEN cancellation = 0 THEN invoiced_at END), "
        "COALESCE(SUM(CASE WHEN invoiced_at > ? THEN total END), 0), "
        "SUM(cancellation = 0 AND invoiced_at > ?), "
        "AVG(CASE WHEN cancellation = 0 THEN total END) "
        "FROM pos_invoices WHERE customer_id = ? AND invoiced_at <= ?",
        (t_12m, t_12m, cid, t_now),
    ).fetchone()
    return Totals(
        lifetime_spend=round(r[0], 2),
        baskets=r[1] or 0,
        cancellations=r[2] or 0,
        first_purchase=_ts(r[3]),
        last_purchase=_ts(r[4]),
        spend_12m=round(r[5], 2),
        baskets_12m=r[6] or 0,
        average_basket=round(r[7], 2) if r[7] is not None else None,
    )


def _baskets(
    conn: sqlite3.Connection,
    cid: str,
    now: datetime,
    n: int,
    max_lines: int,
    money: Callable[[float], str],
) -> list[Basket]:
    rows = conn.execute(
        "SELECT invoice_no, invoiced_at, total, cancellation FROM pos_invoices "
        "WHERE customer_id = ? AND invoiced_at <= ? ORDER BY invoiced_at DESC, invoice_no DESC "
        "LIMIT ?",
        (cid, now.strftime(pos_store.TIME_FMT), n),
    ).fetchall()
    out = []
    for inv_no, at, total, cancel in rows:
        lines = pos_store.invoice_lines(conn, inv_no)
        out.append(
            Basket(
                invoice_no=inv_no,
                at=_ts(at),
                total=round(total, 2),
                total_text=money(round(total, 2)),
                items=sum(ln["quantity"] for ln in lines),
                cancellation=bool(cancel),
                lines=[
                    BasketLine(
                        stock_code=ln["stock_code"],
                        description=ln["description"],
                        name=readable_name(ln["description"]),
                        category=ln["category"],
                        quantity=ln["quantity"],
                        unit_price=ln["unit_price"],
                        amount=round(ln["quantity"] * ln["unit_price"], 2),
                        amount_text=money(round(ln["quantity"] * ln["unit_price"], 2)),
                    )
                    for ln in lines[:max_lines]
                ],
                more_lines=max(0, len(lines) - max_lines),
            )
        )
    return out


def _favourites(
    conn: sqlite3.Connection, cid: str, now: datetime, top: int
) -> tuple[list[CategoryShare], str]:
    until = now + timedelta(seconds=1)
    spend, period = pos_store.category_spend(conn, cid, now - timedelta(days=365), until), "12m"
    if not any(v > 0 for v in spend.values()):
        spend, period = pos_store.category_spend(conn, cid, datetime(1970, 1, 1), until), "all"
    positive = {c: v for c, v in spend.items() if v > 0}
    total = sum(positive.values())
    ranked = sorted(positive.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [
        CategoryShare(category=c, spend=v, share=round(v / total, 3)) for c, v in ranked
    ], period


def _once(items: list[Suggestion], skip: set[str]) -> list[Suggestion]:
    """Items in order, each stock code once, none of ``skip``."""
    seen = set(skip)
    out = []
    for s in items:
        if s.stock_code not in seen:
            seen.add(s.stock_code)
            out.append(s)
    return out


def _suggestions(
    conn: sqlite3.Connection, cid: str, k: int, built_cutoff: str | None
) -> tuple[list[SuggestedItem], list[SuggestedItem]]:
    """Both lists, each item at most once, and nothing in "new for you" that is on the
    customer's own usual list or was bought since the build (the build filters too; this is
    the phone's guarantee whatever a stored build holds)."""
    stored_usual, stored_new = lookup(conn, cid, k)
    usual = _once(stored_usual, set())
    new = _once(stored_new, {s.stock_code for s in usual})
    if built_cutoff:  # bought since the last build: no longer "new for you"
        since = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT l.stock_code FROM pos_invoices i JOIN pos_lines l "
                "ON l.invoice_no = i.invoice_no WHERE i.customer_id = ? AND i.invoiced_at >= ?",
                (cid, built_cutoff),
            )
        }
        new = [s for s in new if s.stock_code not in since]
    info = pos_store.product_info(conn, [s.stock_code for s in usual + new])

    def item(s: Suggestion) -> SuggestedItem:
        desc, cat = info.get(s.stock_code, ("", "other"))
        return SuggestedItem(
            stock_code=s.stock_code,
            description=desc,
            name=readable_name(desc),
            category=cat,
            source=s.source,
            score=round(s.score, 4),
        )

    return [item(s) for s in usual], [item(s) for s in new]


def customer_card(
    conn: sqlite3.Connection,
    customer_id: str,
    cfg: StoreConfig,
    now: datetime,
    *,
    baskets: int = 5,
    lines_per_basket: int = 20,
    top_categories: int = 3,
    k: int = 10,
) -> CustomerCard:
    """Everything the phone shows about one customer at ``now`` (store-local time; an aware
    datetime is converted). Raises ``CustomerNotFound`` for an id known nowhere."""
    if now.tzinfo is not None:
        now = now.astimezone().replace(tzinfo=None)
    now = now.replace(microsecond=0)
    name = profiles.customer_name(conn, customer_id)  # None: not enrolled (no face)
    has_pos = conn.execute(
        "SELECT 1 FROM pos_invoices WHERE customer_id = ? LIMIT 1", (customer_id,)
    ).fetchone()
    if name is None and has_pos is None:
        raise CustomerNotFound(customer_id)
    build = last_build(conn)
    usual, new = _suggestions(conn, customer_id, k, build["cutoff"] if build else None)
    favourites, period = _favourites(conn, customer_id, now, top_categories)
    loyalty = loyalty_status(conn, customer_id, cfg.loyalty, now)
    currency, locale = cfg.loyalty.currency, cfg.loyalty.locale

    def money(v: float) -> str:
        return money_text(v, currency, locale)

    totals = _totals(conn, customer_id, now)
    last_visit = records.previous_visit(conn, customer_id, now.timestamp())
    return CustomerCard(
        customer_id=customer_id,
        name=name,
        enrolled=name is not None,
        as_of=now,
        currency=currency,
        locale=locale,
        new_customer=has_pos is None,
        last_visit=datetime.fromtimestamp(last_visit).replace(microsecond=0)
        if last_visit is not None
        else None,
        totals=totals,
        money=MoneyText(
            lifetime_spend=money(totals.lifetime_spend),
            spend_12m=money(totals.spend_12m),
            average_basket=None if totals.average_basket is None else money(totals.average_basket),
            spend_to_next_tier=None
            if loyalty.spend_to_next_tier is None
            else money(loyalty.spend_to_next_tier),
        ),
        recent_baskets=_baskets(conn, customer_id, now, baskets, lines_per_basket, money),
        favourite_categories=favourites,
        favourite_period=period,
        loyalty=loyalty,
        active_bonuses=loyalty.bonuses,
        usual_items=usual,
        new_for_you=new,
        suggestions_built_at=datetime.fromtimestamp(build["built_at"]) if build else None,
    )
