"""One channel between the web app and the hub, over real parts (Mosquitto, HubService, uvicorn).

- A phone presses Accept while the hub is down: it is told the press failed, and when the hub
  comes back (and the broker delivers the queued request) the claim is NOT applied; the alert
  is still open for the others. (The trial's "ghost claim".)
- The web process runs as its own ``storesense web run`` process with a home that holds no
  hub database and no template key, and still serves login, alerts, claims and the customer
  card, all through the hub; it never opens a file of the hub's.
- Importing the web app loads no hub room (no SQLite layer, no argon2, no face code).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hub.service import HubService
from hub.store import db
from hub.web.app import create_app
from hub.web.server import ServerThread
from storesense.config import StoreConfig
from storesense.paths import hub_db_path
from tests.hub.web.conftest import PASSWORD, Stack, _clear_retained, claimed_alert
from tests.hub.web.phone_client import ScriptedPhone
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_S = 3.0  # the web's deadline per request: short, yet a login (password hash) fits on
# a loaded 2-core CI box (1 s failed there once: bob's login got 503)


@pytest.fixture
def quick_stack(cfg: StoreConfig, home: Path) -> Iterator[Stack]:
    """The live stack with a short deadline; the test may replace ``stack.hub`` (a restart),
    and the one running at the end is stopped."""
    stack = Stack(cfg, home, HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start(),
                  None, None)  # type: ignore[arg-type]  # fmt: skip
    stack.app = create_app(cfg, timeout_s=TIMEOUT_S)
    stack.web = ServerThread(stack.app).start()
    try:
        assert wait_for(lambda: stack.app.state.gateway.connected), "gateway not connected"
        yield stack
    finally:
        stack.web.stop()
        stack.hub.stop()
        _clear_retained(cfg, home)


def _state(home: Path, alert_id: str) -> tuple[str, str | None]:
    conn = db.connect(hub_db_path(home))
    try:
        row = conn.execute(
            "SELECT state, claimed_by FROM alerts WHERE alert_id=?", (alert_id,)
        ).fetchone()
        return row["state"], row["claimed_by"]
    finally:
        conn.close()


def test_a_press_while_the_hub_is_down_fails_and_is_never_applied(
    quick_stack: Stack, cfg: StoreConfig, home: Path
) -> None:
    stack = quick_stack
    alice = ScriptedPhone(stack.web.url, "alice").open_socket()
    bob = ScriptedPhone(stack.web.url, "bob").open_socket()
    try:
        alert_id = claimed_alert(home, cfg.store_id, None)  # open, for customer c1
        assert alice.wait(lambda p: alert_id in p.open_ids())

        stack.hub.stop()  # the hub goes down; the broker keeps its session and queues for it
        t0 = time.monotonic()
        res = alice.act(alert_id, "claim")
        waited = time.monotonic() - t0
        assert res.status_code == 503, res.text
        assert "nothing was changed" in res.json()["detail"]
        assert waited >= TIMEOUT_S  # told only once the deadline (which the hub enforces) passed

        again = stack.hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}").start()
        # the broker hands the restarted hub the queued press; the hub refuses it
        assert wait_for(lambda: again.api.stats["claim"] >= 1), "the press was not delivered"
        time.sleep(0.3)
        assert _state(home, alert_id) == ("open", None)  # not applied: no ghost claim
        assert again.api.stats["past_deadline"] == again.api.stats["claim"] == 1
        assert alice.open_ids() == {alert_id} and bob.open_ids() == {alert_id}

        won = bob.act(alert_id, "claim")  # still open for the others
        assert won.status_code == 200 and won.json()["outcome"] == "won", won.text
        assert alice.wait(lambda p: not p.open_ids())
        assert _state(home, alert_id) == ("claimed", "bob")
    finally:
        alice.close()
        bob.close()
    conn = db.connect(hub_db_path(home))
    claims = conn.execute("SELECT actor FROM audit WHERE action='claim'").fetchall()
    assert [r["actor"] for r in claims] == ["bob"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_web_process_has_no_hub_files_and_serves_everything_through_the_hub(
    cfg: StoreConfig, home: Path, hub: HubService, tmp_path: Path
) -> None:
    web_home = tmp_path / "web-home"
    web_home.mkdir(mode=0o700)
    conf = tmp_path / "web.yaml"
    # plain HTTP on purpose (HTTPS by default is tests/hub/web/test_tls.py's): what this test
    # checks is that the web home stays free of hub files, and the store CA it would make lives
    # in that home
    plain = {**cfg.model_dump(mode="json", exclude_defaults=True), "app": {"plain_http": True}}
    conf.write_text(yaml.safe_dump(plain))
    port = _free_port()
    argv = [sys.executable, "-m", "storesense_tools.cli", "--home", str(web_home),
            "--config", str(conf), "web", "run", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "STORESENSE_HOME": str(web_home)}
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).json()["gateway_online"] is True
        except (httpx.HTTPError, ValueError):
            return False

    try:
        assert wait_for(healthy, 30), (tmp_path / "web.log").read_text()
        alert_id = claimed_alert(home, cfg.store_id, None)
        phone = ScriptedPhone(base, "alice").open_socket()
        try:
            assert phone.wait(lambda p: alert_id in p.open_ids())
            res = phone.act(alert_id, "claim")
            assert res.status_code == 200 and res.json()["outcome"] == "won", res.text
            card = phone.http.get(f"/api/customers/c1?alert_id={alert_id}")
            assert card.status_code == 200 and card.json()["card"]["name"] == "Ada Lovelace"
            assert phone.http.get("/api/me").json()["name"] == "Alice Adams"
            wrong = httpx.post(
                f"{base}/api/login", json={"staff_id": "bob", "password": PASSWORD + "x"}
            )
            assert wrong.status_code == 401
            # every open file of the web process: none is the hub's (database, key, secrets)
            fds = Path(f"/proc/{proc.pid}/fd")
            opened = {os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()}
            assert not [p for p in opened if p.startswith(str(home))], opened
        finally:
            phone.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
    assert _state(home, alert_id) == ("claimed", "alice")  # written by the hub
    assert sorted(p.name for p in web_home.rglob("*")) == []  # no database, no key, nothing


def test_importing_the_web_app_loads_no_hub_room() -> None:
    code = (
        "import sys, hub.web.app, hub.web.server\n"
        "bad = sorted(m for m in sys.modules if (m.startswith('hub.') and not "
        "m.startswith('hub.web')) or m in ('sqlite3', '_sqlite3', 'argon2'))\n"
        "print(','.join(bad))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
