"""What the OpenAPI fuzz run (test_openapi_fuzz.py) found, pinned down one case each.

- The customer card's times were naive ("2026-11-16T06:20:11") while the schema promises
  RFC 3339 ``date-time``, which needs an offset.
- Refusals (401, 403, 404, 429, a body that is not JSON: 400) were real 4xx but missing from
  the schema, and its 422 described pydantic's error list where the app sends one line.

Self-contained (staff, receipts and an alert written through the product's own functions),
FastAPI's TestClient on the real app, and the real hub daemon behind it on Mosquitto (the web
app asks the hub for everything).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.service import HubService
from hub.shop.suggest import build_suggestions
from hub.staff.accounts import add_staff
from hub.store import db
from hub.web.app import create_app
from storesense.config import parse_config
from storesense.paths import hub_db_path
from tests.hub.pos_fixtures import add_invoice
from tests.hub.web.conftest import PASSWORD, _clear_retained, claimed_alert, login, mosquitto_up
from tests.waiting import wait_for

STORE = f"contract{uuid.uuid4().hex[:8]}"  # unique on the shared Mosquitto


@pytest.fixture
def hub_home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def client(hub_home: Path) -> Iterator[TestClient]:
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    tmp_path = hub_home
    conn = db.migrate_db(hub_db_path(tmp_path))
    add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD)
    t0 = datetime.now().replace(microsecond=0) - timedelta(days=30)
    for i in range(4):
        lines = [("85123A", "WHITE HANGING HEART", 2, 2.55), (f"2272{i}", "MUG", 1, 1.25)]
        add_invoice(conn, f"inv-{i}", "c1", t0 + timedelta(days=7 * i), lines)
    build_suggestions(conn)
    conn.close()
    cfg = parse_config(f"store_id: {STORE}\nmqtt: {{port: 1883}}\n")
    hub = HubService(cfg, tmp_path, client_id=f"hub-{STORE}").start()
    app = create_app(cfg)
    try:
        with TestClient(app, base_url="http://testserver") as c:
            assert wait_for(lambda: app.state.gateway.connected)
            yield c
    finally:
        hub.stop()
        _clear_retained(cfg, tmp_path)


def _times(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (field, value) of the card's JSON whose field name says it is a date-time."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _times(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _times(v, key)
    elif isinstance(value, str) and key in {
        "as_of", "at", "first_purchase", "last_purchase", "suggestions_built_at"
    }:  # fmt: skip
        yield key, value


def test_card_times_carry_an_offset(client: TestClient, hub_home: Path) -> None:
    home = hub_home
    alert_id = claimed_alert(home, STORE, "alice")
    login(client, "alice")
    res = client.get(f"/api/customers/c1?alert_id={alert_id}")
    assert res.status_code == 200, res.text
    times = list(_times(res.json()["card"]))
    assert {k for k, _ in times} == {
        "as_of", "at", "first_purchase", "last_purchase", "suggestions_built_at"
    }  # fmt: skip
    for key, text in times:
        parsed = datetime.fromisoformat(text)
        assert parsed.tzinfo is not None, (key, text)
    card = res.json()["card"]
    # the same instant as the store-local wall clock the card is computed in
    last = datetime.fromisoformat(card["totals"]["last_purchase"])
    assert last.astimezone().replace(tzinfo=None) == datetime.fromisoformat(
        card["recent_baskets"][0]["at"]
    ).astimezone().replace(tzinfo=None)


def test_unreadable_json_body_is_a_documented_400(client: TestClient) -> None:
    res = client.post(
        "/api/login", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 400 and isinstance(res.json()["detail"], str)
    documented = client.get("/openapi.json").json()["paths"]["/api/login"]["post"]["responses"]
    assert "400" in documented


def test_every_refusal_is_in_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    want = {
        ("post", "/api/login"): {"200", "400", "401", "403", "413", "422", "429"},
        ("get", "/api/me"): {"200", "401"},
        ("post", "/api/logout"): {"204", "401", "403", "413"},
        ("get", "/api/alerts"): {"200", "401", "422"},
        ("post", "/api/alerts/{alert_id}/{action}"): {
            "200", "400", "401", "403", "404", "413", "422", "503"
        },
        ("get", "/api/customers/{customer_id}"): {"200", "401", "403", "404", "422"},
        ("get", "/api/manager/day"): {"200", "401", "403", "422"},
        ("post", "/api/pos/transactions"): {
            "200", "201", "202", "400", "401", "409", "413", "422", "503"
        },
        ("get", "/reports/latest"): {"200", "401", "403", "404"},
        ("get", "/reports/{day}/{name}"): {"200", "401", "403", "404", "422"},
    }  # fmt: skip
    for (method, path), codes in want.items():
        assert set(paths[path][method]["responses"]) == codes, (method, path)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # the app never sends pydantic's list
    res = client.post("/api/login", json={"staff_id": "alice"})
    assert res.status_code == 422 and isinstance(res.json()["detail"], str)
    assert "text/csv" in paths["/reports/{day}/{name}"]["get"]["responses"]["200"]["content"]


def test_days_are_iso_dates_not_unix_times(client: TestClient, hub_home: Path) -> None:
    """``?date=0.0`` used to give the manager report of 1970-01-01 (a number read as a Unix
    time); a day is YYYY-MM-DD, as the schema says."""
    conn = db.connect(hub_db_path(hub_home))
    add_staff(conn, "maria", "Maria Manager", "manager", PASSWORD)
    conn.close()
    login(client, "maria")
    for bad in ("0.0", "0", "1764547200", "2026-1-5", "2026-02-30", "20261201"):
        res = client.get("/api/manager/day", params={"date": bad})
        assert res.status_code == 422, (bad, res.text)
        assert res.json()["detail"].startswith("query.date:")
        assert client.get(f"/reports/{bad}/zones.csv").status_code == 422, bad
    res = client.get("/api/manager/day", params={"date": "2026-11-30"})
    assert res.status_code == 200 and res.json()["date"] == "2026-11-30"
    assert client.get("/api/manager/day").json()["date"] == datetime.now().date().isoformat()
    assert client.get("/reports/2026-11-30/zones.csv").status_code == 404  # no report that day
