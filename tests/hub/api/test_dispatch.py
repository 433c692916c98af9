"""``hub.api.dispatch.Api`` on a real hub database: deadlines, sessions, roles, the till token.

The op table is called as the hub's worker calls it (bytes in, a reply out); the MQTT leg is
tests/hub/api/test_rpc_over_mqtt.py and the whole chain tests/hub/web/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.alerts import claims as alerts
from hub.api.dispatch import Api
from hub.api.pos_token import ensure_token
from hub.staff.accounts import add_staff
from hub.store import db
from storesense import rpc
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from tests.hub.api.helpers import enrol_c1

PASSWORD = "correct horse battery"
TOPICS = Topics("api1")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api-home")
    conn = db.migrate_db(hub_db_path(home))
    add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD)
    add_staff(conn, "maria", "Maria Manager", "manager", PASSWORD)
    enrol_c1(conn, home)
    conn.close()
    return home


@pytest.fixture
def api(template: Path, tmp_path: Path) -> Iterator[Api]:
    import shutil

    home = Path(shutil.copytree(template, tmp_path / "home"))
    conn = db.connect(hub_db_path(home))
    yield Api(conn, parse_config("store_id: api1\n"), home, TOPICS)
    conn.close()


def call(api: Api, op: rpc.Op, args: dict, *, deadline: float | None = None) -> rpc.Reply:
    now = time.time()
    req = rpc.Request(op=op, args=args, deadline=now + 5 if deadline is None else deadline)
    reply = api.handle(req.to_bytes(), now)
    assert reply is not None and reply.request_id == req.request_id
    return reply


def login(api: Api, staff_id: str) -> rpc.LoginResult:
    reply = call(api, "login", {"staff_id": staff_id, "password": PASSWORD, "client": "t"})
    assert reply.ok, reply
    return rpc.LoginResult.model_validate(reply.result)


def open_alert(api: Api) -> str:
    now = time.time()
    with db.write(api.conn):
        out = alerts.record_match(
            api.conn, TOPICS, customer_id="c1", camera_id="door-1", first_usable_at=now,
            now=now, cooldown_s=0, alert_ttl_s=60,
        )  # fmt: skip
    assert out.alert_id is not None
    return out.alert_id


def _state(api: Api, alert_id: str) -> tuple[str, str | None]:
    row = api.conn.execute(
        "SELECT state, claimed_by FROM alerts WHERE alert_id=?", (alert_id,)
    ).fetchone()
    return row["state"], row["claimed_by"]


def test_a_request_past_its_deadline_is_refused_and_changes_nothing(api: Api) -> None:
    me = login(api, "alice")
    alert_id = open_alert(api)
    args = {"token": me.token, "csrf": me.session.csrf_token, "alert_id": alert_id,
            "action": "claim"}  # fmt: skip
    late = call(api, "claim", args, deadline=time.time() - 0.01)
    assert (late.status, late.detail) == (504, "past its deadline: not applied")
    assert _state(api, alert_id) == ("open", None)
    assert api.stats["past_deadline"] == 1
    seen = api.conn.execute("SELECT count(*) FROM seen_messages").fetchone()[0]
    ok = call(api, "claim", args)  # the same press, in time, from a fresh request
    assert ok.ok and ok.result["outcome"] == "won" and ok.result["customer_id"] == "c1"
    assert api.conn.execute("SELECT count(*) FROM seen_messages").fetchone()[0] == seen + 1
    assert _state(api, alert_id) == ("claimed", "alice")


def test_a_deadline_far_ahead_is_refused(api: Api) -> None:
    reply = call(api, "staff_names", {}, deadline=time.time() + rpc.MAX_HORIZON_S + 60)
    assert reply.status == 400


def test_a_redelivered_claim_is_not_a_second_claim(api: Api) -> None:
    me = login(api, "alice")
    alert_id = open_alert(api)
    args = {"token": me.token, "csrf": me.session.csrf_token, "alert_id": alert_id,
            "action": "claim"}  # fmt: skip
    req = rpc.Request(op="claim", args=args, deadline=time.time() + 5)
    first = api.handle(req.to_bytes(), time.time())
    again = api.handle(req.to_bytes(), time.time())
    assert first is not None and first.result["outcome"] == "won"
    assert again is not None and again.status == 409
    attempts = api.conn.execute(
        "SELECT claim_attempts FROM alerts WHERE alert_id=?", (alert_id,)
    ).fetchone()[0]
    assert attempts == 1


def test_sessions_csrf_and_roles_are_the_hubs_decision(api: Api) -> None:
    me = login(api, "alice")
    alert_id = open_alert(api)
    base = {"token": me.token, "alert_id": alert_id, "action": "claim"}
    assert call(api, "claim", {**base, "csrf": "forged"}).status == 403
    assert call(api, "claim", {**base, "token": "forged", "csrf": "x"}).status == 401
    assert _state(api, alert_id) == ("open", None)
    assert call(api, "manager_day", {"token": me.token}).status == 403
    boss = login(api, "maria")
    day = call(api, "manager_day", {"token": boss.token})
    assert day.ok and day.result["summary"]["alerts"] == 1
    info = call(api, "session", {"token": me.token})
    assert info.ok and info.result["name"] == "Alice Adams"
    assert "password_hash" not in str(info.result)
    assert call(api, "logout", {"token": me.token}).ok
    assert call(api, "session", {"token": me.token}).status == 401
    assert call(api, "session", {"token": "x", "extra": 1}).status == 422


def test_login_throttle_lives_in_the_hub(api: Api) -> None:
    bad = {"staff_id": "alice", "password": "not it at all", "client": "10.0.0.9"}
    for _ in range(10):
        assert call(api, "login", bad).status == 401
    good = {**bad, "password": PASSWORD}
    assert call(api, "login", good).status == 429
    assert call(api, "login", {**good, "staff_id": "maria", "client": "10.0.0.8"}).ok


def test_pos_token_is_checked_by_the_hub_before_the_body(api: Api) -> None:
    body = {"authorization": None, "idempotency_key": "k1", "body": "{not json"}
    assert call(api, "pos_transaction", body).status == 503  # no token configured
    token = ensure_token(api.home)
    assert call(api, "pos_transaction", body).status == 401
    ok = {**body, "authorization": f"Bearer {token}"}
    assert call(api, "pos_transaction", ok).status == 422
    assert call(api, "pos_transaction", {**ok, "idempotency_key": None}).status == 400


def test_report_files_only_the_four_names_for_managers(api: Api) -> None:
    boss = login(api, "maria")
    day = api.home / "reports" / "2026-11-30"
    day.mkdir(parents=True)
    (day / "zones.csv").write_text("zone,visits\n")
    (api.home / "reports" / "secret.txt").write_text("no")
    got = call(api, "report_file", {"token": boss.token, "day": "2026-11-30", "name": "zones.csv"})
    assert got.ok and rpc.FileAnswer.model_validate(got.result).media_type.startswith("text/csv")
    for name in ("../secret.txt", "store.yaml"):
        bad = call(api, "report_file", {"token": boss.token, "day": "2026-11-30", "name": name})
        assert bad.status == 404
    assert call(api, "report_file", {"token": boss.token, "day": "..", "name": "x"}).status == 422


def test_broken_payloads_get_no_reply(api: Api) -> None:
    assert api.handle(b"{not json", time.time()) is None
    assert api.handle(b'{"v": 1, "kind": "rpc_request", "op": "drop_tables"}', time.time()) is None
