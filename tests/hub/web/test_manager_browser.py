"""The manager page in real Chromium at 390 px, through the real hub and Mosquitto.

Live: an arrival (a face track over MQTT) shows up without a reload; a missed customer
(expired unclaimed alert) is counted and listed; staff are listed and one is disabled from
the page (the hub writes it and ends their sessions); a new account is added; the floor
report section says there is none yet instead of showing a raw JSON error; nothing scrolls
sideways. The screenshot goes to test-artifacts/manager.png.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from hub.alerts import claims as alerts
from hub.alerts import views as alert_views
from hub.store import db
from storesense.config import StoreConfig, parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from tests.hub.conftest import unit
from tests.hub.web.conftest import ARTIFACTS, MANAGER, Stack, camera_sends, face_track
from tests.hub.web.test_phone_browser import _phone, browser, sync_api  # noqa: F401 (fixture)


@pytest.fixture
def cfg() -> StoreConfig:
    """Two doors with the names staff use for them (the page must show those, not ids)."""
    return parse_config(
        f"store_id: w{uuid.uuid4().hex[:10]}\nmqtt: {{port: 1883, keepalive_s: 5}}\n"
        "recognition: {threshold: 0.45, margin: 0.05, min_votes: 2, min_vote_share: 0.6}\n"
        "visits: {cooldown_s: 30, alert_ttl_s: 60}\n"
        "cameras: [{id: door-1, role: entrance, source: 0, display_name: Main door},\n"
        "          {id: door-2, role: entrance, source: 1, display_name: Garden entrance}]\n"
    )


def _clear_of_midnight(after_s: float, before_s: float) -> None:
    """Sleep out the minutes around local midnight where the page's "today" would split the
    test: the missed alert ``after_s`` back must fall today, and the test must end today.

    A CI run failed with the missed alert 700 s back and "Missed 0": most likely it started
    within 700 s after midnight, so the alert was yesterday's.
    """
    now = time.time()
    start, end = alert_views.day_bounds(dt.date.fromtimestamp(now))  # the page's own day
    since, until = now - start, end - now
    if since < after_s:
        time.sleep(after_s - since)
    elif until < before_s:
        time.sleep(until + after_s)


def _missed_alert(stack: Stack) -> None:
    """An alert for c1 that nobody accepted: expired by the claim machine, as at its TTL."""
    conn = db.connect(hub_db_path(stack.home))
    topics = Topics(stack.cfg.store_id)
    now = time.time() - 45  # past the visit cooldown (30 s): the next arrival alerts
    with db.write(conn):
        alerts.record_match(
            conn, topics, customer_id="c1", camera_id="door-2", first_usable_at=now,
            now=now, cooldown_s=0, alert_ttl_s=30,
        )  # fmt: skip
    assert alerts.expire_due(conn, topics, time.time()) == 1
    conn.close()


def test_manager_page_live_missed_staff_and_report_on_a_phone(
    browser,  # noqa: F811
    stack: Stack,
) -> None:
    expect = sync_api.expect
    _clear_of_midnight(after_s=50, before_s=180)
    _missed_alert(stack)
    context, page = _phone(browser, stack.web.url, MANAGER[0])
    try:
        page.goto(stack.web.url + "/manager")
        expect(page.locator("[data-testid=live]")).to_have_attribute("data-state", "online")
        expect(page.locator("[data-testid=n-missed]")).to_have_text("1")
        expect(page.locator("[data-testid=missed-list] li")).to_contain_text("Ada Lovelace")
        expect(page.locator("[data-testid=missed-list] li")).to_contain_text("Garden entrance")
        expect(page.locator("[data-testid=n-alerts]")).to_have_text("1")

        camera_sends(stack.cfg, face_track(unit(1)))  # live: no reload
        expect(page.locator("[data-testid=n-alerts]")).to_have_text("2", timeout=10_000)
        expect(page.locator("[data-testid=alerts-table] li").first).to_contain_text("open")
        expect(page.locator("[data-testid=alerts-table] li").first).to_contain_text("Main door")
        expect(page.locator("main")).not_to_contain_text("door-1")  # names, never camera ids
        expect(page.locator("main")).not_to_contain_text("door-2")

        staff = page.locator("[data-testid=staff-list] li")
        expect(staff).to_have_count(4)
        bob = page.locator("[data-testid=staff-list] li[data-staff-id=bob]")
        bob.locator("button.disable").click()
        expect(page.locator("[data-testid=staff-result]")).to_contain_text("Bob Brown disabled")
        expect(bob.locator(".state")).to_have_text("disabled")

        page.click("details.add-staff summary")
        page.fill("#new-id", "dana")
        page.fill("#new-name", "Dana Diaz")
        page.fill("#new-pw", "a long first password")
        page.click("#staff-form button[type=submit]")
        expect(page.locator("[data-testid=staff-result]")).to_contain_text("Added Dana Diaz")
        expect(staff).to_have_count(5)

        expect(page.locator("[data-testid=report-state]")).to_have_text(
            "No floor report yet: the hub writes one every night."
        )
        expect(page.locator("main")).not_to_contain_text("{")  # never a raw JSON error
        width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], width
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "manager.png"), full_page=True)

        # a nightly report appears: the page links it (and only it) and it opens as a page
        day = stack.home / "reports" / "2026-12-01"
        day.mkdir(parents=True)
        (day / "report.html").write_text("<!doctype html><h1>Floor report 2026-12-01</h1>")
        page.reload()
        expect(page.locator("[data-testid=report-link]")).to_be_visible()
        expect(page.locator("#report-week")).to_be_hidden()  # no weekly report yet: no link
        page.click("[data-testid=report-link]")
        expect(page.locator("h1")).to_have_text("Floor report 2026-12-01")
    finally:
        context.close()
    conn = db.connect(hub_db_path(stack.home))
    rows = {r[0]: r[1] for r in conn.execute("SELECT staff_id, active FROM staff")}
    assert rows["bob"] == 0 and rows["dana"] == 1
    assert conn.execute("SELECT count(*) FROM web_sessions WHERE staff_id='bob'").fetchone()[0] == 0
    actions = [
        (r[0], r[1])
        for r in conn.execute("SELECT actor, action FROM audit WHERE action LIKE 'staff_%'")
    ]
    assert ("maria", "staff_disable") in actions and ("maria", "staff_add") in actions
