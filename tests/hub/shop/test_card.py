"""The customer card on a real SQLite file: enrolled and POS-only customers, baskets, totals,
favourite categories, loyalty, bonuses and both suggestion lists."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from hub.faces.gallery import Gallery
from hub.shop.card import CustomerCard, CustomerNotFound, customer_card
from hub.shop.pos_store import set_birthday
from hub.shop.suggest import SuggestParams, build_suggestions
from storesense.config import StoreConfig
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice

CFG = StoreConfig(store_id="s1")
NOW = datetime(2024, 6, 1, 12)
MUG, LAMP, BAG = ("M1", "RED MUG"), ("L1", "DESK LAMP"), ("B1", "JUMBO BAG RED")


@pytest.fixture
def conn(gallery: Gallery) -> sqlite3.Connection:
    gallery.enrol("C1001", "Ada Lovelace", consent("DEMO-DATA-1"), [(unit(1), 0.9, "test")])
    c = gallery.conn
    add_invoice(c, "1", "C1001", NOW - timedelta(days=40), [(*MUG, 2, 5.0), (*LAMP, 1, 30.0)])
    add_invoice(c, "2", "C1001", NOW - timedelta(days=20), [(*BAG, 3, 2.0), (*MUG, 1, 5.0)])
    add_invoice(c, "C3", "C1001", NOW - timedelta(days=10), [(*LAMP, -1, 30.0)])
    post = ("POST", "POSTAGE", 1, 4.0)
    add_invoice(c, "4", "P77", NOW - timedelta(days=5), [(*BAG, 1, 2.0), post])
    return c


def test_enrolled_customer_with_history(conn: sqlite3.Connection) -> None:
    card = customer_card(conn, "C1001", CFG, NOW)
    assert (card.name, card.enrolled, card.currency) == ("Ada Lovelace", True, "GBP")
    t = card.totals
    assert (t.lifetime_spend, t.spend_12m, t.baskets, t.cancellations) == (21.0, 21.0, 2, 1)
    assert t.average_basket == pytest.approx((40.0 + 11.0) / 2)
    assert t.first_purchase == NOW - timedelta(days=40)
    assert t.last_purchase == NOW - timedelta(days=20)
    assert [b.invoice_no for b in card.recent_baskets] == ["C3", "2", "1"]
    assert card.recent_baskets[0].cancellation and card.recent_baskets[0].total == -30.0
    assert card.recent_baskets[1].items == 4
    # net spend per category: kitchen 15, bags 6, lighting 30 - 30 = 0 (not a favourite)
    fav = [(f.category, f.spend, f.share) for f in card.favourite_categories]
    assert fav == [("kitchen", 15.0, round(15 / 21, 3)), ("bags", 6.0, round(6 / 21, 3))]
    assert card.favourite_period == "12m"
    assert card.loyalty.tier == "Bronze" and card.loyalty.points == 40 + 11 - 30
    assert card.usual_items == [] and card.suggestions_built_at is None


def test_limits_as_of_and_timezone(conn: sqlite3.Connection) -> None:
    card = customer_card(conn, "C1001", CFG, NOW, baskets=1, lines_per_basket=1)
    assert len(card.recent_baskets) == 1 and card.recent_baskets[0].invoice_no == "C3"
    older = customer_card(conn, "C1001", CFG, NOW - timedelta(days=30), lines_per_basket=1)
    assert [b.invoice_no for b in older.recent_baskets] == ["1"]
    assert older.recent_baskets[0].more_lines == 1 and older.totals.lifetime_spend == 40.0
    aware = customer_card(conn, "C1001", CFG, NOW.astimezone(UTC))
    assert aware.as_of == NOW


def test_pos_only_and_unknown(conn: sqlite3.Connection) -> None:
    card = customer_card(conn, "P77", CFG, NOW)
    assert (card.name, card.enrolled, card.totals.lifetime_spend) == (None, False, 6.0)
    assert [f.category for f in card.favourite_categories] == ["bags"]  # postage excluded
    with pytest.raises(CustomerNotFound):
        customer_card(conn, "nobody", CFG, NOW)


def test_enrolled_without_purchases(gallery: Gallery) -> None:
    gallery.enrol("C2", "Grace Hopper", consent("DEMO-DATA-2"), [(unit(2), 0.9, "test")])
    card = customer_card(gallery.conn, "C2", CFG, NOW)
    assert card.name == "Grace Hopper" and card.recent_baskets == []
    assert card.totals.baskets == 0 and card.totals.average_basket is None
    assert card.favourite_categories == [] and card.loyalty.points == 0


def test_suggestions_bonuses_and_json_contract(conn: sqlite3.Connection) -> None:
    set_birthday(conn, "C1001", 6, 3)
    build_suggestions(conn, cutoff=NOW - timedelta(days=15), params=SuggestParams(factors=4))
    card = customer_card(conn, "C1001", CFG, NOW)
    assert [(s.stock_code, s.description, s.category) for s in card.usual_items][:1] == [
        ("M1", "RED MUG", "kitchen")
    ]
    assert {s.stock_code for s in card.usual_items} == {"M1", "L1", "B1"}
    # P77 bought B1 after the build: B1 was "new for you" at build time, not any more
    p77 = customer_card(conn, "P77", CFG, NOW)
    assert p77.usual_items == []
    assert "B1" not in {s.stock_code for s in p77.new_for_you}
    assert {s.stock_code for s in p77.new_for_you} == {"M1", "L1"}
    assert [b.kind for b in card.active_bonuses] == ["birthday"]
    assert card.active_bonuses == card.loyalty.bonuses
    assert CustomerCard.model_validate_json(card.model_dump_json()) == card
