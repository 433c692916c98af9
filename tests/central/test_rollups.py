"""Roll-ups over real stores' daily summaries on a real PostgreSQL: who sees what, weekly
sums against hand-computed figures, duplicates not doubled, hostile summaries refused."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from central import db, rollups, users
from central.ingest import Ingest
from central.web import COOKIE, create_app
from storesense import chain_messages as cm
from storesense.topics import ChainTopics
from tests.central.chain_week import NAMES, REGIONS, last_full_week, plan, week_of_summaries

PASSWORD = "head office 2026"
MONDAY = last_full_week()


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[cm.DailySummary]]:
    return week_of_summaries(tmp_path_factory.mktemp("stores"), MONDAY)


@pytest.fixture
def office(pg_dsn: str, week: dict[str, list[cm.DailySummary]]) -> Iterator[Ingest]:
    """The central database with the week ingested, the stores' regions and two users."""
    conn = db.connect(pg_dsn)
    db.migrate(conn)
    ingest = Ingest(conn)
    for msgs in week.values():
        for m in msgs:
            assert _send(ingest, m) == "applied"
    for store, region in REGIONS.items():
        users.set_store(conn, store, region=region, name=NAMES[store])
    users.add_user(conn, "nora", PASSWORD, role="region", name="Nora North", regions=["north"])
    users.add_user(conn, "chris", PASSWORD, role="chain", name="Chris Chain")
    yield ingest
    conn.close()


def _send(ingest: Ingest, msg: cm.ChainMessage | bytes, store: str = "s1") -> str:
    if isinstance(msg, bytes):
        return ingest.handle(ChainTopics.of(store, "daily_summary"), msg, time.time())
    return ingest.handle(ChainTopics.of(msg.store_id, msg.kind), msg.to_bytes(), time.time())


def _expected_week(stores: list[str]) -> dict[str, object]:
    """The week's figures by hand from the plan: sums, and conversion from the sums."""
    days = [plan(s, i) for s in stores for i in range(7)]
    sales = sum((Decimal(str(x)) for d in days for x in d.sales), Decimal(0))
    shoppers = sum(d.shoppers for d in days)
    return {
        "footfall": sum(d.people for d in days),
        "sales": {"GBP": float(sales)},
        "receipts": sum(len(d.sales) for d in days),
        "selling_visits": shoppers,
        "conversion": float((sales / shoppers).quantize(Decimal("0.01"), ROUND_HALF_UP)),
        "days_with_data": 7 * len(stores),
    }


def _user(conn: psycopg.Connection, user_id: str) -> users.OfficeUser:
    token = users.login(conn, user_id, PASSWORD)
    user = users.session_user(conn, token)
    assert user is not None
    return user


def test_a_region_manager_sees_their_stores_and_the_chain_user_all(office: Ingest) -> None:
    conn = office.conn
    nora, chris = _user(conn, "nora"), _user(conn, "chris")
    assert [s[0] for s in users.visible_stores(conn, nora)] == ["s1", "s2"]
    assert [s[0] for s in users.visible_stores(conn, chris)] == ["s1", "s2", "s3"]
    for user, stores in ((nora, ["s1", "s2"]), (chris, ["s1", "s2", "s3"])):
        r = rollups.rollup(conn, users.visible_stores(conn, user), "week", MONDAY + dt.timedelta(3))
        assert (r.start, r.end) == (MONDAY, MONDAY + dt.timedelta(6))
        got = r.as_json()
        want = _expected_week(stores)
        assert {k: got["total"][k] for k in want} == want
        for s in got["stores"]:
            mine = _expected_week([s["store_id"]])
            assert {k: s[k] for k in mine} == mine, s["store_id"]
        assert {a["store_id"] for a in got["advice"]} <= set(stores)
    # a day: the central figures are each store's own report figures for that day
    r = rollups.rollup(conn, users.visible_stores(conn, chris), "day", MONDAY + dt.timedelta(2))
    for s in r.stores:
        p = plan(s.store_id, 2)
        assert s.figures.footfall == p.people and s.figures.receipts == len(p.sales)
        assert s.heatmap_day == MONDAY + dt.timedelta(2)
    stored = conn.execute(
        "SELECT store_id, conversion FROM daily_summaries WHERE day=%s", (MONDAY + dt.timedelta(2),)
    ).fetchall()
    by_store = {s.store_id: s.figures.conversion for s in r.stores}
    assert {sid: conv for sid, conv in stored} == by_store


def test_weekly_conversion_is_from_the_sums_not_a_mean_of_days(office: Ingest) -> None:
    days = [plan("s3", i) for i in range(7)]
    mean_of_days = sum(sum(d.sales) / d.shoppers for d in days) / 7
    r = rollups.rollup(office.conn, [("s3", "", "south")], "week", MONDAY)
    conv = r.stores[0].figures.conversion
    assert conv is not None and abs(float(conv) - mean_of_days) > 0.01  # the test can tell
    assert float(conv) == _expected_week(["s3"])["conversion"]


def test_duplicates_and_a_remade_summary_are_not_doubled(
    office: Ingest, week: dict[str, list[cm.DailySummary]]
) -> None:
    before = rollups.rollup(office.conn, [("s1", "", "")], "week", MONDAY).as_json()
    for m in week["s1"]:
        assert _send(office, m) == "duplicate"
    again = week["s1"][0].model_copy(update={"sent_at": time.time()})  # a hub remade it
    assert _send(office, again) == "duplicate"
    assert rollups.rollup(office.conn, [("s1", "", "")], "week", MONDAY).as_json() == before
    rows = office.conn.execute("SELECT count(*) FROM daily_summaries").fetchone()
    assert rows == (21,)
    # a later revision replaces the day (its id differs), an older one does not come back
    first = week["s1"][0]
    fixed = first.model_copy(update={
        "msg_id": cm.chain_msg_id("s1", "daily_summary", first.day.isoformat(), 1),
        "revision": 1, "footfall": 999,
    })  # fmt: skip
    assert _send(office, fixed) == "applied"
    day = rollups.rollup(office.conn, [("s1", "", "")], "day", first.day).stores[0]
    assert day.figures.footfall == 999


def _png(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_hostile_or_malformed_summaries_are_refused_and_counted(
    office: Ingest, week: dict[str, list[cm.DailySummary]]
) -> None:
    good = json.loads(week["s1"][3].to_bytes())
    good["msg_id"] = "f" * 32  # a new id each, so a refusal is not just a duplicate
    advice = good["advice"][0] if good["advice"] else {"kind": "advertising", "rank": 1,
              "zone": None, "advice": "x", "confidence": "low"}  # fmt: skip
    cases = {
        "per-person field": good | {"person_keys": ["p1", "p2"]},
        "customer in advice": good | {"advice": [advice | {"customer_id": "c1"}]},
        "big picture": good | {"heatmap_png": _png(1200, 800)},
        "not a picture": good | {"heatmap_png": base64.b64encode(b"<svg/>" * 10).decode()},
        "negative footfall": good | {"footfall": -5},
        "bad currency": good | {"currency": "pounds"},
        "too much advice": good | {"advice": [advice] * 5},
    }
    for name, payload in cases.items():
        assert _send(office, json.dumps(payload).encode()) == "rejected", name
    assert dict(office.rejected) == {"bad_schema": len(cases)}
    row = office.conn.execute("SELECT count FROM rejections WHERE reason='bad_schema'").fetchone()
    assert row == (len(cases),)
    assert office.conn.execute("SELECT count(*) FROM daily_summaries").fetchone() == (21,)
    # another store's summary on s1's tree is refused as well
    other = json.loads(week["s3"][0].to_bytes()) | {"msg_id": "e" * 32}
    assert _send(office, json.dumps(other).encode(), store="s1") == "rejected"
    assert office.rejected["topic_mismatch"] == 1


# -- the page and its API ----------------------------------------------------------------------


@pytest.fixture
def client(office: Ingest, pg_dsn: str) -> Iterator[TestClient]:
    with TestClient(create_app(pg_dsn), base_url="http://testserver") as c:
        yield c


def _login(client: TestClient, user: str, password: str = PASSWORD) -> None:
    r = client.post("/login", content=f"user={user}&password={password.replace(' ', '+')}",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    assert COOKIE in r.cookies


def test_the_api_needs_a_session_and_scopes_by_role(client: TestClient, office: Ingest) -> None:
    assert client.get("/api/rollup").status_code == 401
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    bad = client.post("/login", content="user=nora&password=wrong",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert bad.status_code == 401 and "Wrong user or password" in bad.text
    _login(client, "nora")
    got = client.get("/api/rollup", params={"period": "week", "day": MONDAY.isoformat()}).json()
    assert [s["store_id"] for s in got["stores"]] == ["s1", "s2"]
    assert got["total"]["footfall"] == _expected_week(["s1", "s2"])["footfall"]
    assert client.get("/api/stores/s1", params={"day": MONDAY.isoformat()}).status_code == 200
    # another region's store: the same 404 as a store that does not exist, and logged
    for probe in ("/api/stores/s3", f"/stores/s3/heatmap/{MONDAY}.png", "/stores/s3"):
        assert client.get(probe).status_code == 404, probe
    assert client.get("/api/stores/nope").status_code == 404
    log = office.conn.execute(
        "SELECT user_id, action, detail FROM office_access_log ORDER BY at"
    ).fetchall()
    assert log == [("nora", "login_failed", "wrong user or password")] + [
        ("nora", "denied_store", s) for s in ("s3", "s3", "s3", "nope")
    ]
    png = client.get(f"/stores/s1/heatmap/{MONDAY}.png")
    assert png.status_code == 200 and png.content.startswith(cm.PNG_MAGIC)
    html = client.get("/", params={"period": "week", "day": MONDAY.isoformat()}).text
    assert NAMES["s1"] in html and NAMES["s3"] not in html and "region north" in html
    # log out needs the session's CSRF token
    assert client.post("/logout", content="csrf=forged",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}
                       ).status_code == 403  # fmt: skip
    client.cookies.clear()
    _login(client, "chris")
    got = client.get("/api/rollup", params={"period": "week", "day": MONDAY.isoformat()}).json()
    assert [s["store_id"] for s in got["stores"]] == ["s1", "s2", "s3"]
    assert got["total"]["sales"] == _expected_week(["s1", "s2", "s3"])["sales"]


def test_user_and_store_commands(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from storesense_tools.cli import main

    home = ["--home", str(tmp_path)]
    assert main([*home, "central", "migrate", "--database", pg_dsn]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = [*home, "central", "user", "add", "--database", pg_dsn, "--user", "rita",
            "--role", "region", "--region", "south", "--password-stdin"]  # fmt: skip
    assert main(argv) == 0
    assert "sees region south" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(argv) == 2  # too short a password: one line, no traceback
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*argv[:-3], "--password-stdin"]) == 2  # a region user without a region
    assert main([*home, "central", "store", "set", "--database", pg_dsn, "--store", "s3",
                 "--region", "south", "--name", "Bristol"]) == 0  # fmt: skip
    with psycopg.connect(pg_dsn) as conn:
        assert users.login(conn, "rita", PASSWORD) is not None
        assert [s[0] for s in users.visible_stores(conn, _user(conn, "rita"))] == ["s3"]
        hashed = conn.execute("SELECT password_hash FROM office_users").fetchone()
        assert hashed is not None and hashed[0].startswith("$argon2id$")


def test_a_version_1_database_with_data_upgrades_to_the_roll_ups(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, week: dict[str, list[cm.DailySummary]]
) -> None:
    """A head office already running 0001 (with rows) takes 0002 in place."""
    conn = db.connect(pg_dsn)
    files = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: files[:1])
    monkeypatch.setattr(db, "LATEST", 1)
    assert db.migrate(conn) == [1]
    with conn.transaction():  # a version-1 program's rows (its own partitions only)
        conn.execute("CREATE TABLE store_health_20260101 PARTITION OF store_health "
                     "FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')")  # fmt: skip
        conn.execute("INSERT INTO stores(store_id) VALUES ('s2')")
        conn.execute("INSERT INTO store_health VALUES ('2026-01-01', 's2', %s, now(), '{}', 0, "
                     "'{}', '{}')", ("a" * 32,))  # fmt: skip
    monkeypatch.undo()
    assert db.migrate(conn) == list(range(2, db.LATEST + 1))  # 0002 and what came after
    db.require_current(conn)
    ingest = Ingest(conn)  # the upgraded service: no partition of the new table exists yet
    assert _send(ingest, week["s2"][0]) == "applied"
    assert conn.execute("SELECT count(*) FROM store_health").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM daily_summaries").fetchone() == (1,)
    conn.close()


def test_two_currencies_are_never_added_together() -> None:
    f = rollups.Figures()
    row = {"footfall": 10, "people_seen": 12, "visits": 8, "selling_visits": 4,
           "receipts": 2, "provisional": False}  # fmt: skip
    f.add(row | {"sales": Decimal("40.00"), "currency": "GBP"})
    assert f.conversion == Decimal("10.00")
    f.add(row | {"sales": Decimal("30.00"), "currency": "EUR", "footfall": None})
    assert f.sales == {"GBP": Decimal("40.00"), "EUR": Decimal("30.00")}
    assert f.conversion is None  # no sales per visit across two currencies
    assert f.footfall == 22 and not f.footfall_by_entrance  # the second store counted people
