"""Hostile HTTP against the web app: every refusal is a clear 4xx, never a crash.

FastAPI's TestClient drives the real app against the real hub (``hub`` fixture: HubService on
Mosquitto with real SQLite, argon2 and sessions): the web app itself holds no database.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from hub.api.pos_token import ensure_token
from hub.shop.pos_webhook import ingest_webhook
from hub.staff import accounts
from hub.store import db
from storesense.paths import hub_db_path
from tests.hub.web.conftest import PASSWORD, claimed_alert, login

TX = {
    "invoice_no": "T1001",
    "customer_id": "c1",
    "invoiced_at": "2026-11-20T10:15:00",
    "lines": [
        {
            "sku": "85123A",
            "description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "quantity": 2,
            "unit_price": 2.55,
        }
    ],
}
FOREIGN = {"Origin": "http://evil.example"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/me"),
        ("GET", "/api/alerts"),
        ("POST", "/api/alerts/abc/claim"),
        ("POST", "/api/logout"),
        ("GET", "/api/customers/c1?alert_id=abc"),
        ("GET", "/api/manager/day"),
    ],
)
def test_no_session_is_401(client: TestClient, method: str, path: str) -> None:
    res = client.request(method, path)
    assert res.status_code == 401
    assert "log in" in res.json()["detail"]
    client.cookies.set("ss_session", "forged-or-expired-token")
    assert client.request(method, path).status_code == 401


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(client: TestClient) -> None:
    res = client.post("/api/login", json={"staff_id": "alice", "password": PASSWORD})
    assert res.status_code == 200
    assert res.json()["role"] == "salesperson" and res.json()["name"] == "Alice Adams"
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    csrf = res.json()["csrf_token"]
    assert client.get("/api/me").json()["csrf_token"] == csrf
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/me").status_code == 401


def test_wrong_password_unknown_id_and_throttling(client: TestClient) -> None:
    bad = {"staff_id": "bob", "password": "not the password"}
    assert client.post("/api/login", json=bad).status_code == 401
    unknown = {"staff_id": "mallory", "password": PASSWORD}
    assert client.post("/api/login", json=unknown).json()["detail"] == (
        "wrong staff id or password"
    )
    for _ in range(9):
        client.post("/api/login", json=bad)
    res = client.post("/api/login", json={"staff_id": "bob", "password": PASSWORD})
    assert res.status_code == 429  # even the right password, until the window passes


@pytest.mark.parametrize(
    "body",
    [
        {"staff_id": "alice"},
        {"staff_id": "alice", "password": PASSWORD, "role": "manager"},
        {"staff_id": ["alice"], "password": PASSWORD},
        {"staff_id": "alice", "password": "x" * 300},
    ],
)
def test_malformed_login_bodies_are_422(client: TestClient, body: dict) -> None:
    res = client.post("/api/login", json=body)
    assert res.status_code == 422
    assert isinstance(res.json()["detail"], str)


def test_login_from_a_foreign_origin_is_refused(client: TestClient) -> None:
    res = client.post(
        "/api/login", json={"staff_id": "alice", "password": PASSWORD}, headers=FOREIGN
    )
    assert res.status_code == 403


def test_csrf_missing_wrong_or_cross_site_is_403(client: TestClient) -> None:
    csrf = login(client, "alice")
    assert client.post("/api/alerts/abc/claim").status_code == 403
    assert client.post("/api/alerts/abc/claim", headers={"X-CSRF-Token": "nope"}).status_code == 403
    res = client.post("/api/alerts/abc/claim", headers={"X-CSRF-Token": csrf, **FOREIGN})
    assert res.status_code == 403
    # with the token the request gets through the guards to a real answer (unknown alert)
    assert client.post("/api/alerts/abc/claim", headers={"X-CSRF-Token": csrf}).status_code == 404


def test_bad_path_parameters_are_422(client: TestClient) -> None:
    csrf = {"X-CSRF-Token": login(client, "alice")}
    assert client.post("/api/alerts/abc/steal", headers=csrf).status_code == 422
    assert client.post("/api/alerts/..%2Fetc/claim", headers=csrf).status_code in (404, 422)
    assert client.get("/api/alerts?since=-1").status_code == 422
    assert client.get("/api/customers/c1?alert_id=bad%20id").status_code == 422


def test_oversized_bodies_are_413(client: TestClient) -> None:
    big = b'{"staff_id": "alice", "password": "' + b"x" * 70_000 + b'"}'
    res = client.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(20):
            yield b"y" * 8192

    res = client.post("/api/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    res = client.post("/api/login", content=b"{}", headers={"Content-Length": "abc"})
    assert res.status_code in (400, 413)


def test_salesperson_is_not_a_manager(client: TestClient) -> None:
    login(client, "alice")
    assert client.get("/api/manager/day").status_code == 403


def test_manager_day_report(client: TestClient, cfg, home: Path) -> None:
    alert_id = claimed_alert(home, cfg.store_id, "bob")
    login(client, "maria")
    res = client.get("/api/manager/day")
    assert res.status_code == 200
    day = res.json()
    assert day["summary"]["alerts"] == 1 and day["summary"]["by_state"] == {"claimed": 1}
    row = day["alerts"][0]
    assert (row["alert_id"], row["claimed_by_name"], row["customer_name"]) == (
        alert_id,
        "Bob Brown",
        "Ada Lovelace",
    )
    assert 0 <= row["seconds_to_claim"] < 5
    assert day["staff"][0]["staff_id"] == "bob" and day["staff"][0]["claimed"] == 1
    assert client.get("/api/manager/day?date=2011-13-45").status_code == 422


def test_customer_view_needs_the_claimed_alert_and_is_audited(
    client: TestClient, cfg, home: Path
) -> None:
    alert_id = claimed_alert(home, cfg.store_id, "bob")
    conn = db.connect(hub_db_path(home))
    assert ingest_webhook(conn, TX, "k-view").status == "imported"  # one basket for c1
    conn.close()
    login(client, "alice")  # not the claimer
    assert client.get(f"/api/customers/c1?alert_id={alert_id}").status_code == 403
    login(client, "bob")
    assert client.get(f"/api/customers/c2?alert_id={alert_id}").status_code == 404
    assert client.get("/api/customers/c1?alert_id=nosuchalert").status_code == 404
    res = client.get(f"/api/customers/c1?alert_id={alert_id}")
    assert res.status_code == 200
    card = res.json()["card"]
    assert (card["customer_id"], card["name"]) == ("c1", "Ada Lovelace")
    assert [b["invoice_no"] for b in card["recent_baskets"]] == ["T1001"]
    assert card["totals"]["lifetime_spend"] == 5.1
    assert res.headers["cache-control"] == "no-store"
    conn = db.connect(hub_db_path(home))
    rows = conn.execute(
        "SELECT actor, customer_id, detail FROM audit WHERE action='view_profile'"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("bob", "c1", f"claimed alert {alert_id}")]


def test_pos_webhook_token_and_idempotency_key(client: TestClient, home: Path) -> None:
    url = "/api/pos/transactions"
    assert client.post(url, json=TX).status_code == 503  # no token configured yet
    token = ensure_token(home)  # the hub reads the token file at each request: no restart
    assert client.post(url, json=TX).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * len(token)}
    assert client.post(url, json=TX, headers=wrong).status_code == 401
    assert client.post(url, json=TX, headers={"Authorization": f"Basic {token}"}).status_code == 401
    ok = {"Authorization": f"Bearer {token}"}
    res = client.post(url, json=TX, headers=ok)
    assert res.status_code == 400 and "Idempotency-Key" in res.json()["detail"]
    key = {**ok, "Idempotency-Key": "till-1:0001"}
    first = client.post(url, json=TX, headers=key)
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["lines"]) == ("imported", 1)
    again = client.post(url, json=TX, headers=key)  # the till retried
    assert again.status_code == 201 and again.json()["replayed"] is True  # same answer
    other = client.post(url, json={**TX, "invoice_no": "T1002"}, headers=key)
    assert other.status_code == 422 and "different body" in other.text
    bad = client.post(url, json={**TX, "lines": []}, headers=key)
    assert bad.status_code == 422
    big = b"[" + b"1," * 40_000 + b"1]"
    assert client.post(url, content=big, headers=key).status_code == 413
    assert client.post(url, content=b"{not json", headers=key).status_code == 422


def test_websocket_needs_a_session_and_our_origin(client: TestClient) -> None:
    # the handshake says what every route says: 401 without a session, 403 cross-site
    with pytest.raises(WebSocketDenialResponse) as no_session, client.websocket_connect("/ws"):
        pass
    assert no_session.value.status_code == 401
    assert "not logged in" in no_session.value.json()["detail"]
    login(client, "alice")
    with (
        pytest.raises(WebSocketDenialResponse) as foreign,
        client.websocket_connect("/ws", headers=FOREIGN),
    ):
        pass
    assert foreign.value.status_code == 403
    csrf = login(client, "alice")
    cookie = client.cookies["ss_session"]
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.set("ss_session", cookie)  # the ended session's cookie, sent again
    with pytest.raises(WebSocketDenialResponse) as ended, client.websocket_connect("/ws"):
        pass
    assert ended.value.status_code == 401  # an ended session is unauthenticated, not forbidden
    client.cookies.clear()
    login(client, "alice")
    with client.websocket_connect("/ws?since=0") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and snap["open_ids"] == []
        ws.send_text("ping")
        assert ws.receive_json() == {"type": "pong"}
        ws.send_bytes(b"\x00" * 10)  # phones only send text: the server closes, no crash
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_replacing_a_password_ends_sessions(client: TestClient, home: Path) -> None:
    login(client, "carol")
    conn = db.connect(hub_db_path(home))
    accounts.add_staff(conn, "carol", "Carol Chen", "salesperson", "a new password!", replace=True)
    conn.close()
    assert client.get("/api/me").status_code == 401


def test_security_headers_and_pages(client: TestClient) -> None:
    for path in ("/", "/manager", "/sw.js", "/manifest.webmanifest", "/static/app.js"):
        res = client.get(path)
        assert res.status_code == 200, path
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff"
    png = client.get("/icons/icon-192.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/icons/icon-100.png").status_code == 404
    assert client.get("/static/../hub.sqlite3").status_code == 404


def test_sixteen_concurrent_bad_logins_verify_at_most_ten_passwords(stack) -> None:
    """Through uvicorn, the gateway and the real hub: the throttle reserves each attempt
    before argon2 runs, so a burst verifies at most 10 and the rest get 429 at no cost."""
    import threading

    import httpx

    before = stack.hub.api.stats["password_verifications"]
    codes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def attempt() -> None:
        with httpx.Client(base_url=stack.web.url, timeout=30) as http:
            start.wait()
            res = http.post("/api/login", json={"staff_id": "bob", "password": "wrong pw!!"})
        with lock:
            codes.append(res.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    verified = stack.hub.api.stats["password_verifications"] - before
    seen = Counter(codes)
    # the worker reserves every attempt at once (argon2 runs beside it, hub.staff.verifier),
    # so the six beyond the budget are refused before any check, however loaded the machine
    assert verified <= 10 and seen[429] == 16 - verified, seen
    # each checked one is a 401, or, on a machine too loaded to finish the check within the
    # request deadline, a 503 "nothing changed" (the hub refuses it past the deadline)
    assert seen[401] + seen[503] == verified and seen[401] >= 1, seen
    assert stack.hub.api.verifier is not None
    assert stack.hub.api.verifier.peak_pending <= 10
    # bob himself, from his own phone, waits at most the per-account cap, never 5 minutes
    res = httpx.post(f"{stack.web.url}/api/login", json={"staff_id": "bob", "password": PASSWORD})
    assert res.status_code in (200, 429)
    if res.status_code == 429:
        assert "try again in" in res.json()["detail"]


def test_no_store_on_reports_and_pages_but_not_on_static_files(client: TestClient) -> None:
    for path in ("/", "/manager", "/reports/latest", "/api/me", "/onboarding"):
        assert client.get(path).headers.get("cache-control") == "no-store", path
    assert client.get("/static/app.js").headers.get("cache-control") != "no-store"
    assert "strict-transport-security" not in client.get("/").headers  # plain test server


def test_forwarded_headers_are_ignored_unless_from_a_configured_proxy(stack) -> None:
    """uvicorn trusts X-Forwarded-* from 127.0.0.1 by default; here nobody is configured, so a
    client on the hub cannot pose as another address (the throttle's client key)."""
    import httpx

    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    res = httpx.get(f"{stack.web.url}/", headers=headers)
    assert "strict-transport-security" not in res.headers  # the scheme stayed http
