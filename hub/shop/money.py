"""Money as a person reads it: the store's currency in the store's locale (CLDR through babel).

One helper for every place the hub writes an amount for people: the customer card on the staff
phones (``hub.shop.card``) and the manager's floor report (``hub.floor``). The store YAML's
``loyalty.currency`` (ISO 4217) and ``loyalty.locale`` (CLDR) choose it: ``£1,234.50`` for
GBP/en_GB, ``1.234,50 €`` for EUR/de_DE.
"""

from __future__ import annotations

from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency


@lru_cache(maxsize=16)
def _locale(name: str) -> Locale:
    """The store's locale; an unknown one (a typo in the YAML) falls back to en_GB rather
    than failing every card or report of the day."""
    try:
        return Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en_GB")


def money_text(amount: float, currency: str, locale: str) -> str:
    """``132.0, "GBP", "en_GB"`` → ``"£132.00"``; ``"EUR", "de_DE"`` → ``"132,00 €"``."""
    return str(format_currency(amount, currency, locale=_locale(locale)))
