"""The customer card a salesperson's phone shows after claiming an alert.

``customer_card`` is the one call the phone app makes; ``CustomerCard`` is its contract
(pydantic, so it is also the OpenAPI schema). Everything comes from the hub database: the
name if the customer is enrolled (asked of the face room, ``hub.faces.profiles.customer_name``:
the shop does not read its tables), the imported purchases, the loyalty rules and the
precomputed suggestions. Reads only; a card is built in a few milliseconds
(docs/pos.md), so it needs no cache.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from hub.faces import profiles
from hub.shop import pos_store
from hub.shop.loyalty import ActiveBonus, LoyaltyStatus, loyalty_status
from hub.shop.suggest import last_build, lookup
from storesense.config import StoreConfig


class CustomerNotFound(KeyError):
    """Neither enrolled nor in the purchase history."""


class BasketLine(BaseModel):
    stock_code: str
    description: str
    category: str
    quantity: int
    unit_price: float
    amount: float


class Basket(BaseModel):
    invoice_no: str
    at: datetime
    total: float
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


class SuggestedItem(BaseModel):
    stock_code: str
    description: str
    category: str
    source: str = Field(description="repeat | repeat+als | als | popular")
    score: float


class CustomerCard(BaseModel):
    customer_id: str
    name: str | None
    enrolled: bool
    as_of: datetime
    currency: str
    totals: Totals
    recent_baskets: list[Basket]
    favourite_categories: list[CategoryShare]
    favourite_period: str = Field(description="'12m' or 'all' (no purchase in 12 months)")
    loyalty: LoyaltyStatus
    active_bonuses: list[ActiveBonus]
    usual_items: list[SuggestedItem]
    new_for_you: list[SuggestedItem]
    suggestions_built_at: datetime | None


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
    conn: sqlite3.Connection, cid: str, now: datetime, n: int, max_lines: int
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
                items=sum(ln["quantity"] for ln in lines),
                cancellation=bool(cancel),
                lines=[
                    BasketLine(
                        stock_code=ln["stock_code"],
                        description=ln["description"],
                        category=ln["category"],
                        quantity=ln["quantity"],
                        unit_price=ln["unit_price"],
                        amount=round(ln["quantity"] * ln["unit_price"], 2),
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


def _suggestions(
    conn: sqlite3.Connection, cid: str, k: int, built_cutoff: str | None
) -> tuple[list[SuggestedItem], list[SuggestedItem]]:
    usual, new = lookup(conn, cid, k)
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

    def item(s: object) -> SuggestedItem:
        desc, cat = info.get(s.stock_code, ("", "other"))  # type: ignore[attr-defined]
        return SuggestedItem(
            stock_code=s.stock_code,  # type: ignore[attr-defined]
            description=desc,
            category=cat,
            source=s.source,  # type: ignore[attr-defined]
            score=round(s.score, 4),  # type: ignore[attr-defined]
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
    return CustomerCard(
        customer_id=customer_id,
        name=name,
        enrolled=name is not None,
        as_of=now,
        currency=cfg.loyalty.currency,
        totals=_totals(conn, customer_id, now),
        recent_baskets=_baskets(conn, customer_id, now, baskets, lines_per_basket),
        favourite_categories=favourites,
        favourite_period=period,
        loyalty=loyalty,
        active_bonuses=loyalty.bonuses,
        usual_items=usual,
        new_for_you=new,
        suggestions_built_at=datetime.fromtimestamp(build["built_at"]) if build else None,
    )
