"""End to end: three stores' daily summaries through the real central broker (TLS, store
accounts, ACL) into ``storesense central run``, the head-office page served by
``storesense central web``, opened in Chromium by a region manager and by the chain user."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storesense import chain_messages as cm
from storesense.config import MqttConfig
from storesense.mqtt_client import connect, make_client
from storesense.topics import ChainTopics
from storesense_tools.chain_bridge import store_account
from storesense_tools.cli import main
from storesense_tools.embedded_broker import free_port
from tests.browser import chromium
from tests.central.chain_week import NAMES, REGIONS, last_full_week, plan, week_of_summaries
from tests.central.test_service import _run_central, _subscribed, central_office
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "head office 2026"
MONDAY = last_full_week()


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


def _rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM daily_summaries").fetchone()
        return int(row[0]) if row else 0


def _publish(bundle: Any, port: int, store: str, msgs: list[cm.DailySummary]) -> None:
    """A store's bridge as the central broker sees it: its account, its tree, QoS 1; each
    summary twice (a bridge re-sending after a reconnect)."""
    user = store_account(store)
    cfg = MqttConfig(host="127.0.0.1", port=port, username=user,
                     password=bundle.accounts[user], tls_ca=bundle.ca_cert)  # fmt: skip
    client = make_client(user, cfg)
    connect(client, cfg)
    try:
        for msg in [*msgs, *msgs]:
            info = client.publish(ChainTopics.of(store, msg.kind), msg.to_bytes(), qos=1)
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_summaries_through_the_broker_and_the_page_in_chromium(
    pg_dsn: str, tmp_path: Path, browser: Any
) -> None:
    week = week_of_summaries(tmp_path / "stores", MONDAY)
    bundle, port, broker, conf = central_office(pg_dsn, tmp_path, list(REGIONS))
    home = ["--home", str(tmp_path)]
    ingest = _run_central(conf, tmp_path)
    web_port = free_port()
    env = os.environ | {"PYTHONPATH": str(REPO)}
    web = None
    try:
        assert wait_for(lambda: _subscribed(bundle, port, pg_dsn), 30)
        for store, msgs in week.items():
            _publish(bundle, port, store, msgs)
        assert wait_for(lambda: _rows(pg_dsn) == 21, 60), _rows(pg_dsn)
        for store, region in REGIONS.items():
            argv = [*home, "central", "store", "set", "--central-config", str(conf),
                    "--store", store, "--region", region, "--name", NAMES[store]]  # fmt: skip
            assert main(argv) == 0
        for user, role in (("nora", ["region", "--region", "north"]), ("chris", ["chain"])):
            _add_user(home, conf, user, role)
        web = subprocess.Popen(
            [sys.executable, "-m", "storesense_tools.cli", *home, "central", "web",
             "--central-config", str(conf), "--port", str(web_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{web_port}"
        assert wait_for(lambda: _up(base), 30)
        with psycopg.connect(pg_dsn) as conn:
            dup = conn.execute(
                "SELECT count(*) FROM ingested WHERE kind='daily_summary'"
            ).fetchone()
        assert dup == (21,)  # each summary once, though the broker delivered it twice
        _look(browser, base, "nora", ["s1", "s2"], "north")
        _look(browser, base, "chris", ["s1", "s2", "s3"], "chain")
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        ingest.terminate()
        ingest.wait(10)
        broker.stop()


def _add_user(home: list[str], conf: Path, user: str, role: list[str]) -> None:
    import io

    old = sys.stdin
    sys.stdin = io.StringIO(PASSWORD + "\n")
    try:
        assert main([*home, "central", "user", "add", "--central-config", str(conf),
                     "--user", user, "--role", *role, "--password-stdin"]) == 0  # fmt: skip
    finally:
        sys.stdin = old


def _up(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _look(browser: Any, base: str, user: str, stores: list[str], who: str) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{base}/?period=week&day={MONDAY}")
        expect(page).to_have_url(f"{base}/login")  # no session: the login page
        page.fill("input[name=user]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{base}/?period=week&day={MONDAY}")
        rows = page.locator("table.stores tbody tr")
        expect(rows).to_have_count(len(stores))
        footfall = sum(plan(s, i).people for s in stores for i in range(7))
        expect(page.locator("section.tiles .tile").first).to_contain_text(f"{footfall}")
        for s in REGIONS:
            if s in stores:
                expect(page.get_by_role("link", name=NAMES[s])).to_be_visible()
            else:
                expect(page.get_by_text(NAMES[s])).to_have_count(0)
        thumbs = page.locator("img.thumb")
        expect(thumbs).to_have_count(len(stores))
        # every thumbnail loaded (a real PNG the browser decoded)
        page.wait_for_function(
            "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"central-rollup-week-{who}.png"), full_page=True)
        if who == "chain":
            page.get_by_role("link", name=NAMES["s3"]).click()
            expect(page.locator("table.stores tbody tr")).to_have_count(7)
            thumbs = page.locator("img.thumb")
            expect(thumbs).to_have_count(7)
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(ARTIFACTS / "central-store-week.png"), full_page=True)
    finally:
        page.close()
