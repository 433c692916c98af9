"""The customer card and "who to greet" in real Chromium at 390 px, through the real hub.

Ada (c1) has bought things (product names in the till's capitals, as in the UCI data) and
agreed to her photo being shown at arrival: the alert card shows her enrolment photo (the
hub decrypts it for this alert, audits the display, answers ``no-store``); Accept opens her
card with readable names, money in the store's format, next tier and spend to reach it.
Once Done, the photo is refused. A customer with no purchase gets a first-visit card.
Screenshots go to test-artifacts/ for people to look at.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.faces.gallery import Consent, Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.shop.suggest import SuggestParams, build_suggestions
from hub.store import db
from storesense.paths import hub_db_path, template_key_path
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice
from tests.hub.web.conftest import ARTIFACTS, Stack, camera_sends, face_track
from tests.hub.web.test_phone_browser import _phone, browser, sync_api  # noqa: F401 (fixture)
from tests.waiting import wait_for

PHOTO = Path("/work/shared/data/faces/deepface/img4.jpg")
HEART = ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER")
BAG = ("85099B", "JUMBO BAG RED RETROSPOT")
TINS = ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN ")


@pytest.fixture
def home(home_template: Path, tmp_path: Path, shared_data: Path, request) -> Path:
    """Ada re-enrolled with the photo consent and a kept photo, and three baskets."""
    home = Path(shutil.copytree(home_template, tmp_path / "home"))
    if "new_customer" in request.node.name:
        return home
    conn = db.connect(hub_db_path(home))
    gallery = Gallery(conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    consent = Consent("consent-ref-1", "tester", "test-notice", photo_shown=True)
    photo = (shared_data / "faces" / "deepface" / "img4.jpg").read_bytes()
    gallery.enrol("c1", "Ada Lovelace", consent, [(unit(1), 0.9, "t")],
                  photo=(photo, "image/jpeg"))  # fmt: skip
    now = datetime.now().replace(microsecond=0)
    add_invoice(conn, "536365", "c1", now - timedelta(days=60),
                [(*HEART, 6, 2.55), (*BAG, 10, 1.95)])  # fmt: skip
    add_invoice(conn, "537001", "c1", now - timedelta(days=12),
                [(*TINS, 2, 4.95), (*HEART, 2, 2.95), ("POST", "POSTAGE", 1, 18.0)])  # fmt: skip
    mat, chain = ("48187", "DOORMAT NEW ENGLAND"), ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS ")
    add_invoice(conn, "537100", "p9", now - timedelta(days=5),
                [(*mat, 1, 7.95), (*chain, 3, 2.95), (*BAG, 2, 1.95)])  # fmt: skip
    build_suggestions(conn, cutoff=now, params=SuggestParams(factors=4))
    conn.close()
    return home


def _audit(home: Path, action: str) -> list[tuple[str, str]]:
    conn = db.connect(hub_db_path(home))
    rows = conn.execute(
        "SELECT actor, customer_id FROM audit WHERE action=? ORDER BY audit_id", (action,)
    ).fetchall()
    conn.close()
    return [tuple(r) for r in rows]


def test_photo_on_the_alert_then_a_readable_card(browser, stack: Stack) -> None:  # noqa: F811
    expect = sync_api.expect
    context, page = _phone(browser, stack.web.url, "alice")
    try:
        camera_sends(stack.cfg, face_track(unit(1)))
        card = page.locator("[data-testid=alert-card]")
        expect(card).to_have_count(1, timeout=10_000)
        img = card.locator("[data-testid=arrival-photo]")
        expect(img).to_be_visible()
        assert wait_for(lambda: img.evaluate("i => i.complete && i.naturalWidth > 0"))
        assert wait_for(lambda: _audit(stack.home, "show_photo") == [("alice", "c1")])
        src = img.get_attribute("src")
        res = page.request.get(stack.web.url + src)
        assert res.status == 200 and res.headers["cache-control"] == "no-store"
        assert res.headers["content-type"] == "image/jpeg" and res.body() == PHOTO.read_bytes()
        ARTIFACTS.mkdir(exist_ok=True)
        expect(card.locator(".tier")).to_have_text("Bronze")  # bought twice: a real tier
        card.screenshot(path=str(ARTIFACTS / "alert-card-photo.png"))

        card.locator("button.accept").click()
        view = page.locator("[data-testid=customer-view]")
        expect(view).to_be_visible()
        expect(page.locator("#cust-tier")).to_have_text("Bronze")
        expect(page.locator("#cust-spend")).to_have_text("£68.60")  # 34.80 + 33.80 (postage counts)
        expect(page.locator("[data-testid=card-summary]")).to_contain_text(
            "£431.40 more to reach Silver"
        )
        baskets = page.locator("#cust-baskets li")
        expect(baskets).to_have_count(2)
        expect(baskets.first).to_contain_text("2 × Set of 3 Cake Tins Pantry Design")
        expect(baskets.first).to_contain_text("£33.80")
        expect(baskets.nth(1)).to_contain_text("6 × White Hanging Heart T-Light Holder")
        usual = page.locator("[data-testid=usual-items] li")
        expect(usual.first).to_contain_text("White Hanging Heart T-Light Holder")
        expect(usual).to_have_count(3)
        new = page.locator("[data-testid=new-for-you] li")
        expect(new).to_have_count(2)  # Ada has the bag already: only what she never bought
        expect(page.locator("[data-testid=new-for-you]")).to_contain_text("Doormat New England")
        expect(page.locator("[data-testid=new-for-you]")).to_contain_text(
            "Paper Chain Kit 50's Christmas"
        )
        expect(view).not_to_contain_text("—")  # no wall of dashes
        expect(view).not_to_contain_text("HANGING HEART")  # no shouting capitals
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        page.screenshot(path=str(ARTIFACTS / "customer-card.png"), full_page=True)

        page.click("#done")
        expect(view).to_be_hidden()
        after = page.request.get(stack.web.url + src)
        assert after.status == 404 and "ended" in after.json()["detail"]
    finally:
        context.close()
    assert _audit(stack.home, "show_photo") == [("alice", "c1")] * 2  # the page, the check


def test_new_customer_gets_a_first_visit_card(browser, stack: Stack) -> None:  # noqa: F811
    expect = sync_api.expect
    context, page = _phone(browser, stack.web.url, "alice")
    try:
        camera_sends(stack.cfg, face_track(unit(1)))
        card = page.locator("[data-testid=alert-card]")
        expect(card).to_have_count(1, timeout=10_000)
        expect(card.locator("[data-testid=arrival-photo]")).to_have_count(0)  # no consent
        expect(card.locator(".tier")).to_have_text("New customer")  # not an unearned tier
        page.screenshot(path=str(ARTIFACTS / "alert-card-new-customer.png"), full_page=True)
        card.locator("button.accept").click()
        view = page.locator("[data-testid=customer-view]")
        expect(view).to_be_visible()
        expect(page.locator("#cust-meta")).to_contain_text("no purchases yet")
        expect(page.locator("[data-testid=card-summary]")).to_contain_text(
            "New customer: welcome them"
        )
        expect(page.locator("#cust-tier")).to_be_hidden()  # no unearned "Bronze"
        expect(page.locator("#cust-baskets")).to_be_hidden()
        expect(view).not_to_contain_text("—")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "customer-card-new.png"), full_page=True)
    finally:
        context.close()
    assert _audit(stack.home, "show_photo") == []
