"""Loyalty rules on a real SQLite purchase history: tiers, tier multipliers, cancellations,
expiry, fees, birthday bonus (incl. 29 February), promotions, and the YAML section."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.shop.loyalty import birthday_in, loyalty_status, tier_name
from hub.shop.pos_store import set_birthday
from hub.store import db
from storesense.config import ConfigError, load_config
from storesense.shop_config import LoyaltyConfig, LoyaltyTier, Promotion
from tests.hub.pos_fixtures import add_invoice

MUG = ("22970", "LONDON BUS COFFEE MUG")
BAUBLE = ("23000", "CHRISTMAS BAUBLE GOLD")
POST = ("POST", "POSTAGE")


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


@pytest.fixture
def history(conn: sqlite3.Connection) -> sqlite3.Connection:
    add_invoice(conn, "1", "A", datetime(2024, 1, 10, 10), [(*MUG, 1, 500.0)])
    add_invoice(conn, "2", "A", datetime(2024, 2, 10, 10), [(*MUG, 1, 100.0)])
    add_invoice(conn, "3", "A", datetime(2024, 2, 11, 10), [(*POST, 1, 20.0)])
    return conn


def test_tier_points_and_multiplier(history: sqlite3.Connection) -> None:
    cfg = LoyaltyConfig()
    st = loyalty_status(history, "A", cfg, datetime(2024, 3, 1))
    assert (st.tier, st.points_multiplier, st.spend_12m) == ("Silver", 1.25, 620.0)
    # 500 earned at Bronze (×1), then 100 at Silver (×1.25); postage earns nothing
    assert st.points == 500 + 125
    assert (st.next_tier, st.spend_to_next_tier) == ("Gold", 1380.0)
    assert tier_name(history, "A", cfg, datetime(2024, 3, 1)) == "Silver"
    # as of a day before the second invoice, it does not exist yet
    assert loyalty_status(history, "A", cfg, datetime(2024, 2, 9)).points == 500


def test_cancellation_takes_points_back(history: sqlite3.Connection) -> None:
    add_invoice(history, "C4", "A", datetime(2024, 2, 20, 10), [(*MUG, -1, 100.0)])
    st = loyalty_status(history, "A", LoyaltyConfig(), datetime(2024, 3, 1))
    assert st.spend_12m == 520.0 and st.tier == "Silver"
    assert st.points == 500 + 125 - 125


def test_points_expire_and_tier_drops(history: sqlite3.Connection) -> None:
    st = loyalty_status(history, "A", LoyaltyConfig(), datetime(2025, 1, 15))
    assert st.points == 125  # the January 2024 invoice is older than 365 days
    assert (st.tier, st.spend_12m) == ("Bronze", 120.0)
    assert loyalty_status(history, "A", LoyaltyConfig(), datetime(2026, 1, 1)).points == 0


def test_below_first_tier_and_points_never_negative(conn: sqlite3.Connection) -> None:
    cfg = LoyaltyConfig(tiers=[LoyaltyTier(name="Club", min_spend_12m=100)])
    add_invoice(conn, "C9", "Z", datetime(2024, 1, 2), [(*MUG, -3, 10.0)])
    st = loyalty_status(conn, "Z", cfg, datetime(2024, 2, 1))
    assert (st.tier, st.points, st.next_tier, st.spend_to_next_tier) == (None, 0, "Club", 130.0)


def test_birthday_bonus(conn: sqlite3.Connection) -> None:
    cfg = LoyaltyConfig()
    set_birthday(conn, "B", 3, 3)
    before = loyalty_status(conn, "B", cfg, datetime(2024, 2, 26))
    assert [(b.kind, b.until) for b in before.bonuses] == [("birthday", date(2024, 3, 10))]
    add_invoice(conn, "10", "B", datetime(2024, 3, 1, 12), [(*MUG, 1, 10.0)])
    after = loyalty_status(conn, "B", cfg, datetime(2024, 3, 2))
    assert after.points == 10 + 200
    assert [b.kind for b in after.bonuses] == ["birthday_earned"]
    later = loyalty_status(conn, "B", cfg, datetime(2024, 6, 1))
    assert later.points == 210 and later.bonuses == []
    add_invoice(conn, "11", "B", datetime(2024, 3, 5, 12), [(*MUG, 1, 10.0)])
    assert loyalty_status(conn, "B", cfg, datetime(2024, 6, 1)).points == 220  # once a year


def test_leap_day_birthday(conn: sqlite3.Connection) -> None:
    assert birthday_in(2025, 2, 29) == date(2025, 2, 28)
    set_birthday(conn, "L", 2, 29)
    st = loyalty_status(conn, "L", LoyaltyConfig(), datetime(2025, 3, 3))
    assert [(b.kind, b.until) for b in st.bonuses] == [("birthday", date(2025, 3, 7))]
    with pytest.raises(ValueError):
        set_birthday(conn, "L", 4, 31)


def test_category_promotion(conn: sqlite3.Connection) -> None:
    promo = Promotion(
        name="Christmas double",
        category="christmas",
        multiplier=2,
        starts=date(2024, 11, 1),
        ends=date(2024, 12, 24),
    )
    cfg = LoyaltyConfig(promotions=[promo])
    lines = [(*BAUBLE, 10, 1.0), (*MUG, 1, 10.0)]
    add_invoice(conn, "20", "P", datetime(2024, 11, 10, 12), lines)
    st = loyalty_status(conn, "P", cfg, datetime(2024, 11, 15))
    assert st.points == 20 + 10
    assert [(b.kind, b.name, b.until) for b in st.bonuses] == [
        ("promotion", "Christmas double", date(2024, 12, 24))
    ]
    add_invoice(conn, "21", "P", datetime(2024, 12, 30, 12), lines)
    st = loyalty_status(conn, "P", cfg, datetime(2025, 1, 2))
    assert st.points == 30 + 20 and st.bonuses == []


def test_config_rules_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="strictly increasing"):
        LoyaltyConfig(
            tiers=[
                LoyaltyTier(name="Silver", min_spend_12m=500),
                LoyaltyTier(name="Bronze", min_spend_12m=0),
            ]
        )
    with pytest.raises(ValidationError, match="ends before it starts"):
        Promotion(name="x", starts=date(2024, 2, 1), ends=date(2024, 1, 1))
    good = tmp_path / "store.yaml"
    good.write_text(
        "store_id: s1\n"
        "loyalty:\n"
        "  points_per_unit: 2\n"
        "  tiers: [{name: Member, min_spend_12m: 0}, {name: VIP, min_spend_12m: 1000,"
        " points_multiplier: 2}]\n"
        "  promotions:\n"
        "    - {name: Spring, category: garden, multiplier: 3, starts: 2024-03-01,"
        " ends: 2024-03-31}\n"
    )
    cfg = load_config(good).loyalty
    assert cfg.tiers[1].points_multiplier == 2 and cfg.promotions[0].ends == date(2024, 3, 31)
    bad = tmp_path / "bad.yaml"
    bad.write_text("store_id: s1\nloyalty:\n  birthday_bonus: 5\n")
    with pytest.raises(ConfigError, match="birthday_bonus"):
        load_config(bad)
