"""Schemathesis fuzzes the web app from its own OpenAPI schema: no 5xx, responses as documented.

The real stack on loopback (Mosquitto, the hub daemon, the web app under uvicorn), so a fuzzed
claim really travels to the hub and back. Every operation is fuzzed three ways: anonymous
(what the internet sees), as salesperson Alice and as manager Maria, each with a real login
session: the cookie plus the CSRF header on every request, and the POS bearer token. Positive
and negative (schema-violating) cases; the fuzzed ids are replaced by real ones in part of the
cases (``real_ids``), so the card, the claim and the reports get past their 404s.

Bounded for CI: ``FUZZ_EXAMPLES`` per operation and identity (20: 552 requests, ≈ 20 s), a
fixed seed. For a longer hand run (≈ 3 min)::

    STORESENSE_FUZZ_EXAMPLES=250 STORESENSE_FUZZ_SEED=$RANDOM pytest tests/hub/web/test_openapi*

Schemathesis's strategies are driven by Hypothesis here rather than through its pytest
plugin: the plugin's fixture-based loader (``schemathesis.pytest.from_fixture``, needed
because the schema comes from a server the fixture starts) reads ``request.node._nodeid``,
which pytest 9.2 no longer has (schemathesis 4.32.5).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup

from hub.alerts import claims as alerts
from hub.api.pos_token import ensure_token
from hub.service import HubService
from hub.shop.suggest import build_suggestions
from hub.staff.accounts import add_staff
from hub.store import db
from hub.web.app import create_app
from hub.web.server import ServerThread
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from tests.hub.pos_fixtures import add_invoice
from tests.hub.web.conftest import PASSWORD, _clear_retained, mosquitto_up
from tests.waiting import wait_for

FUZZ_EXAMPLES = int(os.environ.get("STORESENSE_FUZZ_EXAMPLES", "20"))
FUZZ_SEED = int(os.environ.get("STORESENSE_FUZZ_SEED", "20261201"))
REPORT_DAY = date(2026, 11, 30)
# Every built-in check, with two adjustments for what this app rightly does:
# - a 413 (body over 64 KiB, hub.web.security.BodyLimit) is a rejection of invalid data too;
# - the POS webhook's business rules go beyond its JSON Schema (quantity never 0, customer id
#   characters after trimming, finite prices, line and invoice totals, dates:
#   storesense/pos_bounds.py), so a schema-valid receipt may get its documented one-line 422;
#   "valid data accepted" is not checked there.
CHECKS = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422"),
                    *("428", "429", "5xx"),  # schemathesis's default list, plus 413
                ]
            },
        },
        "operations": [
            {
                "include-path": "/api/pos/transactions",
                "checks": {"positive_data_acceptance": {"enabled": False}},
            }
        ],
    }
)


@dataclass
class Identity:
    cookies: dict[str, str]
    headers: dict[str, str]


@dataclass
class Live:
    base_url: str
    pos_token: str
    viewed_alert: str  # claimed by alice: her customer card opens through it
    action_alert: str  # open: the fuzzed claim / reject / done go to this one
    identities: dict[str, Identity]
    sent: int = 0  # requests made, so a run that generated nothing cannot pass


def _login(base_url: str, staff_id: str) -> Identity:
    res = requests.post(
        f"{base_url}/api/login", json={"staff_id": staff_id, "password": PASSWORD}, timeout=10
    )
    assert res.status_code == 200, res.text
    return Identity(
        {"ss_session": res.cookies["ss_session"]}, {"X-CSRF-Token": res.json()["csrf_token"]}
    )


def _open_alert(home: Path, topics: Topics, customer_id: str) -> str:
    conn = db.connect(hub_db_path(home))
    now = time.time()
    with db.write(conn):
        out = alerts.record_match(
            conn,
            topics,
            customer_id=customer_id,
            camera_id="door-1",
            first_usable_at=now,
            now=now,
            cooldown_s=0,
            alert_ttl_s=3600,
        )
    conn.close()
    assert out.alert_id is not None
    return out.alert_id


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Two staff accounts, a customer with receipts and suggestions, one report, two alerts."""
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    home = tmp_path_factory.mktemp("fuzz-home")
    cfg = parse_config(
        f"store_id: fz{uuid.uuid4().hex[:10]}\nmqtt: {{port: 1883, keepalive_s: 5}}\n"
        "visits: {cooldown_s: 0, alert_ttl_s: 3600}\n"
    )
    conn = db.migrate_db(hub_db_path(home))
    add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD)
    add_staff(conn, "maria", "Maria Manager", "manager", PASSWORD)
    t0 = datetime.now().replace(microsecond=0) - timedelta(days=40)
    for i in range(6):
        for cust in ("c1", "c2", "c3"):
            lines = [(f"8512{j}A", f"HEART T-LIGHT {j}", 1 + j, 2.55) for j in range(i % 3, 4)]
            add_invoice(conn, f"{cust}-{i}", cust, t0 + timedelta(days=5 * i), lines)
    build_suggestions(conn)
    conn.close()
    day = home / "reports" / REPORT_DAY.isoformat()
    day.mkdir(parents=True)
    (day / "report.html").write_text("<!doctype html><title>floor report</title>\n")
    (day / "zones.csv").write_text("zone,visits\nentrance,3\n")
    (day / "insights.json").write_text('{"advice": []}\n')
    (day / "heatmap.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    pos_token = ensure_token(home)
    topics = Topics(cfg.store_id)
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start()
    app = create_app(cfg)  # no home: the web app asks the hub for everything
    web = ServerThread(app).start()
    try:
        assert wait_for(lambda: app.state.gateway.connected), "gateway did not reach the broker"
        viewed, action = _open_alert(home, topics, "c1"), _open_alert(home, topics, "c2")
        assert wait_for(lambda: {viewed, action} <= set(app.state.gateway.alerts))
        ids = {sid: _login(web.url, sid) for sid in ("alice", "maria")}
        res = requests.post(
            f"{web.url}/api/alerts/{viewed}/claim",
            cookies=ids["alice"].cookies,
            headers=ids["alice"].headers,
            timeout=10,
        )
        assert res.json()["outcome"] == "won", res.text
        ids["anonymous"] = Identity({}, {})
        yield Live(web.url, pos_token, viewed, action, ids)
    finally:
        web.stop()
        hub.stop()
        _clear_retained(cfg, home)


def _real_ids(case: schemathesis.Case, live: Live) -> None:
    """Swap the fuzzed ids for ones that exist, keeping every other fuzzed field."""
    path = case.path_parameters
    if path is None:
        return
    if case.path == "/api/customers/{customer_id}":
        path["customer_id"] = "c1"
        case.query = {**(case.query or {}), "alert_id": live.viewed_alert}
    elif "customer_id" in path:  # e.g. a manager's "forget": c3 is there to be erased
        path["customer_id"] = "c3"
    if "alert_id" in path:
        path["alert_id"] = live.action_alert
    if "day" in path:
        path["day"] = REPORT_DAY.isoformat()


def _send(case: schemathesis.Case, real_ids: bool, live: Live, who: str) -> None:
    """One fuzzed request as ``who``, validated by every schemathesis check: no 5xx; status,
    content type, headers and body as the schema documents them; invalid input refused."""
    ident = live.identities[who]
    headers = dict(ident.headers)
    if who != "anonymous" and case.path == "/api/pos/transactions":
        headers["Authorization"] = f"Bearer {live.pos_token}"
    if real_ids:
        _real_ids(case, live)
    live.sent += 1
    case.call_and_validate(headers=headers, cookies=ident.cookies, timeout=15)


def _fuzz_operation(op: schemathesis.APIOperation, live: Live, who: str) -> None:
    cases = st.one_of(
        op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)
    )

    @seed(FUZZ_SEED)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the checkout
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, real_ids=st.booleans())
    def run(case: schemathesis.Case, real_ids: bool) -> None:
        _send(case, real_ids, live, who)

    run()


@pytest.mark.parametrize("who", ["anonymous", "alice", "maria"])
def test_fuzzed_requests_get_documented_answers(live: Live, who: str) -> None:
    """Every operation in the schema except logout (a fuzzed logout would end the session the
    other cases run in; tests/hub/web/test_http_security.py covers it); each failing
    operation is reported with schemathesis's reproduction (a curl line)."""
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json", config=CHECKS)
    failures, ran, sent_before = [], [], live.sent
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/logout":
            continue
        ran.append(op.label)
        try:
            _fuzz_operation(op, live, who)
        except (Exception, FailureGroup) as exc:  # one bad operation must not hide the others
            failures.append(f"--- {op.label} as {who}:\n{exc}")
    assert len(ran) >= 10, ran
    print(f"{who}: {live.sent - sent_before} requests over {len(ran)} operations")
    assert live.sent - sent_before >= 5 * len(ran), "the fuzzer generated almost nothing"
    assert not failures, "\n".join(failures)
