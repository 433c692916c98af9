"""'Hub unreachable' from the heartbeat, not from a goodbye: the hub process frozen, in Chromium.

The hub runs as its own process (what ``storesense hub run`` runs) with a 60 s MQTT keepalive,
so the broker would fire its last will only 90 s after it froze: within the 10 s this test allows,
nothing but the web's application-level heartbeat with the hub (``hub.web.gateway``'s
``ping`` every 2 s, silence after 6 s) can tell the phone. The process is stopped with SIGSTOP
(frozen, socket open: what a wedged worker or a swapping machine looks like to the broker),
then continued: the banner goes and the cards can be pressed again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.web.app import create_app
from hub.web.gateway import HEARTBEAT_S, HUB_SILENCE_S
from hub.web.server import ServerThread
from storesense.config import parse_config
from tests.browser import chromium
from tests.hub.conftest import unit
from tests.hub.web.conftest import (
    ARTIFACTS,
    PASSWORD,
    _clear_retained,
    camera_sends,
    face_track,
    mosquitto_up,
)
from tests.waiting import wait_for

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
REPO = Path(__file__).resolve().parents[3]
STORE_YAML = (
    "store_id: {store}\nmqtt: {{port: 1883, keepalive_s: 60}}\n"
    "recognition: {{threshold: 0.45, margin: 0.05, min_votes: 2, min_vote_share: 0.6}}\n"
    "visits: {{cooldown_s: 600, alert_ttl_s: 120}}\n"
    "cameras: [{{id: door-1, role: entrance, source: 0, display_name: Main door}}]\n"
)

# What `storesense hub run` does, with a client id of this test's own: the CLI's fixed
# "storesense-hub" would take over (and be taken over by) any other hub on the shared broker.
HUB_MAIN = """
import signal, sys, threading
from pathlib import Path
from hub.service import HubService
from storesense.config import load_config
cfg = load_config(Path(sys.argv[2]))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with HubService(cfg, Path(sys.argv[1]), client_id=f"hub-{cfg.store_id}"):
    stop.wait()
"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from chromium()


@pytest.fixture
def hub_process(home: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    if not mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    cfg_path = tmp_path / "store.yaml"
    cfg_path.write_text(STORE_YAML.format(store=f"w{uuid.uuid4().hex[:10]}"))
    cmd = [sys.executable, "-c", HUB_MAIN, str(home), str(cfg_path)]
    log = (tmp_path / "hub.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, cfg_path
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # a stopped process does not act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _clear_retained(parse_config(cfg_path.read_text()), home)


def test_frozen_hub_process_raises_hub_unreachable_within_10_s(
    browser, hub_process: tuple[subprocess.Popen, Path]
) -> None:
    expect = sync_api.expect
    proc, cfg_path = hub_process
    cfg = parse_config(cfg_path.read_text())
    app = create_app(cfg)
    gateway = app.state.gateway
    with ServerThread(app) as web:
        assert wait_for(lambda: gateway.hub_reachable is True, timeout_s=30), (
            proc.poll(),
            gateway.hub_online,
            gateway.hub_answering,
        )
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, service_workers="block"
        )
        page = context.new_page()
        try:
            page.goto(web.url)
            page.fill("#login-id", "bob")
            page.fill("#login-pw", PASSWORD)
            page.click("#login-form button[type=submit]")
            conn = page.locator("[data-testid=connection]")
            expect(conn).to_have_attribute("data-state", "online")
            camera_sends(cfg, face_track(unit(1)))
            accept = page.locator("[data-testid=alert-card] button.accept")
            expect(accept).to_be_enabled()
            expect(page.locator("[data-testid=banner-hub]")).to_be_hidden()

            os.kill(proc.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            expect(page.locator("[data-testid=banner-hub]")).to_be_visible(timeout=10_000)
            unreachable_s = time.monotonic() - t0
            expect(accept).to_be_disabled()
            expect(conn).to_have_text("no hub")
            # the broker still holds the frozen hub's connection: no last will said anything
            assert gateway.hub_online is True and gateway.hub_answering is False
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "banner-hub-frozen.png"), full_page=True)

            os.kill(proc.pid, signal.SIGCONT)
            expect(page.locator("[data-testid=banner-hub]")).to_be_hidden(timeout=10_000)
            expect(accept).to_be_enabled()
            expect(conn).to_have_attribute("data-state", "online")
        finally:
            context.close()
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    # silence counts from the last pong, which came up to one heartbeat before the freeze
    assert HUB_SILENCE_S - HEARTBEAT_S <= unreachable_s < 10.0, unreachable_s
    print(f"hub frozen → 'hub unreachable' on the phone in {unreachable_s * 1000:.0f} ms")
