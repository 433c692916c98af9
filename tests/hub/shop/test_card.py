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
from hub.store import db
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


def test_readable_names_and_money_in_the_store_format(conn: sqlite3.Connection) -> None:
    card = customer_card(conn, "C1001", CFG, NOW)
    basket = card.recent_baskets[1]  # invoice 2: 3 × JUMBO BAG RED, 1 × RED MUG
    assert [(ln.description, ln.name) for ln in basket.lines] == [
        ("JUMBO BAG RED", "Jumbo Bag Red"),
        ("RED MUG", "Red Mug"),
    ]
    assert basket.total_text == "£11.00" and basket.lines[0].amount_text == "£6.00"
    assert card.recent_baskets[0].total_text == "-£30.00"  # the cancellation
    assert (card.currency, card.locale) == ("GBP", "en_GB")
    assert card.money.lifetime_spend == "£21.00" and card.money.average_basket == "£25.50"
    # next tier and what it takes, in the same format
    assert (card.loyalty.next_tier, card.money.spend_to_next_tier) == ("Silver", "£479.00")
    de = StoreConfig.model_validate(
        {"store_id": "s1", "loyalty": {"currency": "EUR", "locale": "de_DE"}}
    )
    de_card = customer_card(conn, "C1001", de, NOW)
    assert de_card.money.spend_to_next_tier == "479,00\xa0€"
    assert de_card.recent_baskets[1].total_text == "11,00\xa0€"


def test_readable_name_rules() -> None:
    from hub.shop.card import readable_name

    assert readable_name("SET OF 3 CAKE TINS PANTRY DESIGN ") == "Set of 3 Cake Tins Pantry Design"
    assert (
        readable_name("WHITE HANGING HEART T-LIGHT HOLDER") == "White Hanging Heart T-Light Holder"
    )
    assert readable_name("PACK OF 12 LED  FAIRY LIGHTS") == "Pack of 12 LED Fairy Lights"
    assert readable_name("Desk lamp, brass") == "Desk lamp, brass"  # already readable: kept
    assert readable_name("OF MICE AND MEN") == "Of Mice and Men"
    assert readable_name("PAPER CHAIN KIT 50'S CHRISTMAS ") == "Paper Chain Kit 50's Christmas"


def test_new_customer_state(gallery: Gallery) -> None:
    """Enrolled, never bought: a first-visit card, not a wall of zeros and an unearned tier."""
    gallery.enrol("C2", "Grace Hopper", consent("DEMO-DATA-2"), [(unit(2), 0.9, "test")])
    card = customer_card(gallery.conn, "C2", CFG, NOW)
    assert card.new_customer and card.last_visit is None
    assert card.money.spend_12m == "£0.00" and card.money.average_basket is None
    # the lowest tier starts at 0: the phone words it as "first purchase makes them Bronze"
    assert card.loyalty.next_tier == "Silver" and card.money.spend_to_next_tier == "£500.00"


def test_previous_visit_skips_the_visit_in_progress(conn: sqlite3.Connection) -> None:
    from hub.alerts import claims
    from storesense.topics import Topics

    topics = Topics("s1")
    now = NOW.timestamp()
    for at in (now - 3 * 86400, now - 60):  # three days ago, and this arrival
        with db.write(conn):
            claims.record_match(
                conn, topics, customer_id="C1001", camera_id="door-1", first_usable_at=at,
                now=at, cooldown_s=0, alert_ttl_s=60,
            )  # fmt: skip
    card = customer_card(conn, "C1001", CFG, NOW)
    assert card.last_visit == NOW - timedelta(days=3)
    assert not card.new_customer


def test_new_for_you_never_repeats_or_lists_a_usual_item(conn: sqlite3.Connection) -> None:
    """Whatever a stored build holds (an older build, a bug), the card lists each item once
    and nothing of the customer's own usual list."""
    build_suggestions(conn, cutoff=NOW, params=SuggestParams(factors=4))
    with db.write(conn):
        conn.execute("DELETE FROM suggestions WHERE customer_id='C1001' AND list='new'")
        conn.executemany(
            "INSERT INTO suggestions VALUES ('C1001','new',?,?,1.0,'als')",
            [(0, "M1"), (1, "P1"), (2, "P1"), (3, "M1")],
        )
    card = customer_card(conn, "C1001", CFG, NOW)
    usual = [s.stock_code for s in card.usual_items]
    assert len(usual) == len(set(usual)) and "M1" in usual
    assert [s.stock_code for s in card.new_for_you] == ["P1"]
