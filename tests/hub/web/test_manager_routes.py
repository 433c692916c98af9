"""The manager page's staff and consent routes over real HTTP → MQTT → hub: roles, CSRF, the
password reset ending sessions, no self-disable; and `storesense staff list|disable|enable`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from storesense_tools.cli import main
from tests.hub.web.conftest import MANAGER, PASSWORD, login


def test_staff_admin_needs_a_manager_and_the_csrf_token(client: TestClient) -> None:
    login(client, "alice")
    assert client.get("/api/manager/staff").status_code == 403
    csrf = login(client, MANAGER[0])
    listed = client.get("/api/manager/staff")
    assert listed.status_code == 200
    assert [s["staff_id"] for s in listed.json()] == ["alice", "bob", "carol", "maria"]
    assert listed.headers["cache-control"] == "no-store"
    body = {"active": False}
    assert client.post("/api/manager/staff/bob/active", json=body).status_code == 403  # no CSRF
    h = {"X-CSRF-Token": csrf}
    assert client.post("/api/manager/staff/bob/active", json=body, headers=h).json() == {
        "staff_id": "bob", "active": False,
    }  # fmt: skip
    assert client.post("/api/manager/staff/maria/active", json=body, headers=h).status_code == 409
    assert client.post("/api/manager/staff/nobody/active", json=body, headers=h).status_code == 404
    new = {"staff_id": "dana", "name": "Dana", "role": "salesperson", "password": "short"}
    assert client.post("/api/manager/staff", json=new, headers=h).status_code == 422
    new["password"] = "long enough pw"
    assert client.post("/api/manager/staff", json=new, headers=h).status_code == 200
    assert client.post("/api/manager/staff", json=new, headers=h).status_code == 409


def test_password_reset_ends_sessions(client: TestClient) -> None:
    login(client, "alice")
    alice = client.cookies.get("ss_session")
    csrf = login(client, MANAGER[0])
    res = client.post(
        "/api/manager/staff/alice/password",
        json={"password": "a new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert res.status_code == 200, res.text
    client.cookies.clear()
    client.cookies.set("ss_session", alice)
    assert client.get("/api/me").status_code == 401  # her phone is logged out
    bad = client.post("/api/login", json={"staff_id": "alice", "password": PASSWORD})
    assert bad.status_code == 401
    login(client, "alice", "a new password")


def test_withdraw_photo_route_is_for_managers(client: TestClient) -> None:
    csrf = login(client, "alice")
    path = "/api/manager/customers/c1/withdraw-photo"
    body = {"reason": "asked at the till"}
    assert client.post(path, json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
    csrf = login(client, MANAGER[0])
    res = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    assert res.status_code == 404  # c1 never gave the photo consent
    assert "no photo consent" in res.json()["detail"]


def test_cli_staff_list_disable_enable(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "staff", "list"]) == 0
    out = capsys.readouterr().out
    assert "Alice Adams" in out and "DISABLED" not in out
    assert main(["--home", str(home), "staff", "disable", "bob"]) == 0
    assert "bob disabled" in capsys.readouterr().out
    assert main(["--home", str(home), "staff", "list"]) == 0
    assert "DISABLED" in capsys.readouterr().out
    assert main(["--home", str(home), "staff", "enable", "bob"]) == 0
    assert main(["--home", str(home), "staff", "disable", "nobody"]) == 2
    assert "no staff account 'nobody'" in capsys.readouterr().err
