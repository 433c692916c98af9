"""Consent withdrawn at the counter: the manager erases the customer on the web, the refusals
are clear, and the running hub stops recognising the person without a restart."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hub.privacy import audit
from hub.store import db
from storesense.paths import hub_db_path
from tests.hub.conftest import unit
from tests.hub.web.conftest import ARTIFACTS, MANAGER, Stack, camera_sends, face_track, login
from tests.hub.web.phone_client import ScriptedPhone
from tests.hub.web.test_phone_browser import _phone, browser, sync_api  # noqa: F401 (fixture)
from tests.waiting import wait_for

FORGET = "/api/manager/customers/c1/forget"


def _count(home: Path, sql: str) -> int:
    return int(db.connect(hub_db_path(home)).execute(sql).fetchone()[0])


def test_a_manager_erases_a_customer_and_the_tombstone_names_them(
    client: TestClient, home: Path
) -> None:
    csrf = login(client, MANAGER[0])
    res = client.post(
        FORGET, json={"reason": "withdrew at the till"}, headers={"X-CSRF-Token": csrf}
    )
    assert res.status_code == 200, res.text
    assert res.json() == {
        "customer_id": "c1",
        "profile_deleted": True,
        "receipts_unlinked": 0,
        "audit_rows_redacted": 1,
    }
    assert _count(home, "SELECT count(*) FROM templates WHERE customer_id='c1'") == 0
    conn = db.connect(hub_db_path(home))
    row = conn.execute(
        "SELECT actor, action, customer_id, detail FROM audit ORDER BY audit_id DESC"
    ).fetchone()
    assert tuple(row)[:3] == (MANAGER[0], "erase", "c1")
    assert "manager page: withdrew at the till" in row[3]
    assert audit.verify(conn).ok
    again = client.post(FORGET, json={"reason": "twice"}, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 404


def test_forget_refuses_salespeople_missing_csrf_bad_ids_and_bad_bodies(
    client: TestClient, home: Path
) -> None:
    assert client.post(FORGET, json={"reason": "x" * 10}).status_code == 401
    csrf = login(client, "alice")
    res = client.post(FORGET, json={"reason": "x" * 10}, headers={"X-CSRF-Token": csrf})
    assert res.status_code == 403 and "managers only" in res.json()["detail"]
    csrf = login(client, MANAGER[0])
    assert client.post(FORGET, json={"reason": "x" * 10}).status_code == 403  # no CSRF token
    h = {"X-CSRF-Token": csrf}
    assert client.post(
        "/api/manager/customers/..%2Fx/forget", json={"reason": "abc"}, headers=h
    ).status_code in (404, 422)
    assert (
        client.post(
            "/api/manager/customers/a%20b/forget", json={"reason": "abc"}, headers=h
        ).status_code
        == 422
    )
    assert client.post(FORGET, json={"reason": ""}, headers=h).status_code == 422
    assert client.post(FORGET, json={"why": "abc"}, headers=h).status_code == 422
    assert _count(home, "SELECT count(*) FROM templates WHERE customer_id='c1'") == 1


def test_erased_on_the_manager_page_the_running_hub_stops_matching(browser, stack: Stack) -> None:  # noqa: F811
    expect = sync_api.expect
    hub = stack.hub
    camera_sends(stack.cfg, face_track(unit(1)))
    assert wait_for(lambda: hub.stats.alerts == 1), "the enrolled customer was not recognised"

    ARTIFACTS.mkdir(exist_ok=True)
    context, page = _phone(browser, stack.web.url, MANAGER[0])  # logged in and online
    try:
        # The manager presses Erase while the page is still asking who they are (CI once
        # clicked before that answer, the browser's own GET submit reloaded the page and the
        # erasure never ran): hold /api/me until after the click.
        held: list = []
        page.route("**/api/me", lambda route: held.append(route))
        page.goto(stack.web.url + "/manager")
        for _ in range(200):  # the sync API delivers the route only inside a Playwright call
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the manager page never asked /api/me"
        page.fill("#forget-id", "c1")
        page.on("dialog", lambda d: d.accept())
        page.click("[data-testid=forget-button]")
        held[0].continue_()
        page.unroute("**/api/me")
        expect(page.locator("[data-testid=forget-result]")).to_contain_text(
            "Erased c1: face profile deleted"
        )
        page.screenshot(path=str(ARTIFACTS / "manager-forget.png"), full_page=True)
    finally:
        context.close()

    unknown = hub.stats.unknown_visitors
    track = face_track(unit(1))
    track = track.model_copy(update={"final": True})
    camera_sends(stack.cfg, track)  # the same face walks in again, same hub process
    assert wait_for(lambda: hub.stats.unknown_visitors > unknown), "track was not decided"
    assert hub.stats.alerts == 1  # no new alert: not recognised any more


def test_an_erasure_leaves_no_trace_in_the_web_gateway_or_on_the_phones(stack: Stack) -> None:
    """Her alert is on alice's phone and in the gateway's copy (the name with it); the manager
    erases her: the retraction removes it from the gateway's memory, every open phone is told
    "gone", and a phone connecting afterwards is sent nothing of hers."""
    alice = ScriptedPhone(stack.web.url, "alice").open_socket()
    maria = ScriptedPhone(stack.web.url, MANAGER[0])
    try:
        camera_sends(stack.cfg, face_track(unit(1)))
        assert alice.wait(lambda p: len(p.open_ids()) == 1, 30)
        (alert_id,) = alice.open_ids()
        book = stack.app.state.gateway.book
        assert [a.customer_name for a in book.alerts.values()] == ["Ada Lovelace"]
        res = maria.http.post(
            FORGET, json={"reason": "asked at the till"}, headers={"X-CSRF-Token": maria.csrf}
        )
        assert res.status_code == 200, res.text
        assert alice.wait(lambda p: alert_id in p.gone, 30), "alice's phone still shows her"
        assert alice.alerts == {}
        assert wait_for(lambda: not book.alerts, 10), book.alerts
        later = ScriptedPhone(stack.web.url, "bob").open_socket()
        try:
            assert later.wait(lambda p: len(p.snapshots) == 1, 20)
            snap = later.snapshots[0]
            assert (snap["alerts"], snap["open_ids"]) == ([], []) and "Ada" not in str(snap)
        finally:
            later.close()
    finally:
        alice.close()
        maria.close()
