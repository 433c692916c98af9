"""The shop's per-customer reads other rooms call: what the export gets, and who a card can be
opened for (POS customers plus the face room's enrolled ones)."""

from __future__ import annotations

from datetime import datetime

from hub.faces.gallery import Gallery
from hub.privacy import erasure
from hub.shop import pos_store
from hub.shop.suggest import SuggestParams, all_customers, build_suggestions
from hub.store import db
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice


def test_customer_data_is_their_lines_birthday_and_suggestions(gallery: Gallery) -> None:
    conn = gallery.conn
    add_invoice(conn, "I2", "c1", datetime(2026, 3, 2, 9), [("B1", "BAG", 1, 9.0)])
    add_invoice(
        conn, "I1", "c1", datetime(2026, 3, 1, 9), [("A1", "MUG", 2, 3.5), ("C1", "CUP", 1, 2.0)]
    )
    add_invoice(conn, "I3", "c2", datetime(2026, 3, 1, 10), [("A1", "MUG", 1, 3.5)])
    add_invoice(conn, "C4", "c1", datetime(2026, 3, 3, 9), [("B1", "BAG", -1, 9.0)])
    with db.write(conn):
        pos_store.set_birthday(conn, "c1", 2, 29)
    build_suggestions(conn, datetime(2026, 4, 1), SuggestParams(k=2))
    data = pos_store.customer_data(conn, "c1")
    assert set(data) == {"purchases", "birthday", "suggestions"}
    assert [(p["invoice_no"], p["stock_code"], p["quantity"]) for p in data["purchases"]] == [
        ("I1", "A1", 2),
        ("I1", "C1", 1),
        ("I2", "B1", 1),
        ("C4", "B1", -1),
    ]
    assert [p["cancellation"] for p in data["purchases"]] == [0, 0, 0, 1]
    assert data["birthday"] == [{"month": 2, "day": 29}]
    usual = [s for s in data["suggestions"] if s["list"] == "usual"]
    assert [s["rank"] for s in usual] == [0, 1]
    assert {s["stock_code"] for s in usual} <= {"A1", "B1", "C1"}
    assert pos_store.customer_data(conn, "c2")["birthday"] == []
    assert pos_store.customer_data(conn, "nobody") == {
        "purchases": [],
        "birthday": [],
        "suggestions": [],
    }


def test_all_customers_are_buyers_and_enrolled_once_sorted(gallery: Gallery) -> None:
    conn = gallery.conn
    gallery.enrol("E1", "Ena", consent("form-1"), [(unit(1), 0.9, "t")])  # enrolled, no receipt
    gallery.enrol("b2", "Bo", consent("form-2"), [(unit(2), 0.9, "t")])  # enrolled and a buyer
    add_invoice(conn, "I1", "b2", datetime(2026, 3, 1, 9), [("A1", "MUG", 1, 3.5)])
    add_invoice(conn, "I2", "a9", datetime(2026, 3, 1, 9), [("A1", "MUG", 1, 3.5)])
    add_invoice(conn, "I3", "a9", datetime(2026, 3, 2, 9), [("A1", "MUG", 1, 3.5)])
    add_invoice(conn, "I4", "gone", datetime(2026, 3, 2, 9), [("A1", "MUG", 1, 3.5)])
    erasure.erase_customer(conn, "gone", actor="dpo", reason="request")
    assert all_customers(conn) == ["E1", "a9", "b2"]
