"""The numeric and date bounds of a POS receipt: one place, used by the CSV import and the
webhook alike (docs/pos.md, "Bounds").

Why bounds at all: a finite number is not yet a sane one. Measured before these existed: a
webhook quantity of 10^30 reached SQLite and came back as HTTP 500 (``OverflowError``: SQLite
integers are 64-bit), and a unit price of 1e308 times a quantity of 10 made a line total of
``inf``: "sale of inf imported", the customer became Gold with a 12-month spend of ``null``
(JSON has no infinity). Every limit below is far above any real till's receipt (the UCI
Online Retail set, a wholesaler's, peaks at 80,995 units on a line and 38,970 for a unit
price) and far below where floats lose cents or SQLite overflows, so totals stay exact to the
cent.

Each check raises :class:`OutOfBounds` (a ``ValueError``) whose message names the field: the
CSV import reports it with the file line number, the webhook's pydantic model turns it into a
422 whose ``loc`` is the field.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final

MAX_QUANTITY: Final = 1_000_000  # units on one line, either sign
MAX_UNIT_PRICE: Final = 1_000_000.0  # in the loyalty currency
MAX_LINE_TOTAL: Final = 10_000_000.0  # |quantity × unit price|
MAX_INVOICE_TOTAL: Final = 100_000_000.0  # |sum of the lines|
MAX_LINES: Final = 2000  # lines on one receipt
EARLIEST: Final = datetime(2000, 1, 1)  # older is a till with a flat clock battery
FUTURE_SLACK: Final = timedelta(days=2)  # beyond the hub's clock plus this: a wrong date
MAX_TEXT: Final = {"invoice_no": 64, "sku": 64, "description": 200, "country": 64}


class OutOfBounds(ValueError):
    """A value outside the bounds above; the message starts with the field's name."""


def quantity(q: int) -> int:
    """A non-zero whole number of units, at most ``MAX_QUANTITY`` either way."""
    if q == 0:
        raise OutOfBounds("quantity must not be 0")
    if abs(q) > MAX_QUANTITY:
        raise OutOfBounds(f"quantity {q} is out of range (at most {MAX_QUANTITY:,} either way)")
    return q


def unit_price(p: float) -> float:
    """A finite price from 0 (a free item) to ``MAX_UNIT_PRICE``."""
    if not math.isfinite(p) or p < 0 or p > MAX_UNIT_PRICE:
        raise OutOfBounds(
            f"unit_price {p!r} must be a finite number >= 0 and at most {MAX_UNIT_PRICE:,.0f}"
        )
    return p


def line_total(q: int, p: float) -> None:
    if abs(q * p) > MAX_LINE_TOTAL:
        raise OutOfBounds(
            f"line total (quantity {q} × unit_price {p}) is above {MAX_LINE_TOTAL:,.0f}"
        )


def invoice_total(amounts: list[float]) -> None:
    """``amounts``: the lines' quantity × unit price; also caps the number of lines."""
    if len(amounts) > MAX_LINES:
        raise OutOfBounds(f"lines: {len(amounts)} lines on one receipt, at most {MAX_LINES}")
    total = math.fsum(amounts)
    if abs(total) > MAX_INVOICE_TOTAL:
        raise OutOfBounds(f"invoice total {total:,.2f} is above {MAX_INVOICE_TOTAL:,.0f}")


def invoiced_at(dt: datetime, now: datetime | None = None) -> datetime:
    """The receipt's time as the store's local wall clock (an aware time is converted),
    whole seconds, from ``EARLIEST`` to the hub's clock plus ``FUTURE_SLACK``."""
    if not EARLIEST.year <= dt.year <= 9000:  # before converting: year 1 or 9999 ± offset overflows
        raise OutOfBounds(f"invoiced_at {dt.isoformat()} is out of range")
    if dt.tzinfo is not None:
        dt = dt.astimezone().replace(tzinfo=None)
    dt = dt.replace(microsecond=0)
    latest = (now or datetime.now()) + FUTURE_SLACK
    if not EARLIEST <= dt <= latest:
        raise OutOfBounds(
            f"invoiced_at {dt.isoformat(sep=' ')} is out of range "
            f"({EARLIEST:%Y-%m-%d} to {FUTURE_SLACK.days} days from now)"
        )
    return dt


def text(field: str, value: str) -> str:
    """A text field of the receipt within its ``MAX_TEXT`` length."""
    limit = MAX_TEXT[field]
    if len(value) > limit:
        raise OutOfBounds(f"{field} is {len(value)} characters long, at most {limit}")
    return value
