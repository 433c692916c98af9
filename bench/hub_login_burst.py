"""Does a burst of logins stall the hub's claims? 16 logins at once, an Accept in the middle.

The real hub (``HubService``, its worker and MQTT threads) on the real Mosquitto, asked the
way the web process asks it (``hub.web.gateway.Gateway``, one MQTT request per login and per
claim). Each round sends 16 logins with wrong passwords for 16 different ids from 16
different clients (so the throttle lets every one reach argon2: the worst case), then 20 ms
later a salesperson's claim of an open alert, and times the claim's answer. Also the same
claim with no logins around (idle), and two modes side by side in one run:

- ``worker``: passwords checked on the hub's worker (``login_threads=0``, the old way): the
  claim waits behind every argon2 check queued before it;
- ``pool``: checked on ``hub.staff.verifier``'s threads (the default, 2 threads, at most 10
  in flight; the rest of the burst is told "busy, try again" at once).

    .venv/bin/python bench/hub_login_burst.py [--rounds 8] [--logins 16]
    taskset -c 1 .venv/bin/python bench/hub_login_burst.py   # one core for everything

Needs Mosquitto on 127.0.0.1:1883. Prints one line per mode (ms): idle claim p50/max, claim
during the burst p50/max, and the logins' outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.alerts import claims
from hub.service import HubService
from hub.staff.accounts import add_staff
from hub.store import db
from hub.web.gateway import Gateway, GatewayUnavailable, HubRefused
from storesense.config import StoreConfig, parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics

PASSWORD = "correct horse battery"


def _open_alerts(home: Path, cfg: StoreConfig, n: int) -> list[str]:
    conn = db.migrate_db(hub_db_path(home))
    add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD)
    now = time.time()
    ids = []
    for i in range(n):
        with db.write(conn):
            out = claims.record_match(
                conn, Topics(cfg.store_id), customer_id=f"c{i}", camera_id="door-1",
                first_usable_at=now, now=now, cooldown_s=0, alert_ttl_s=3600,
            )  # fmt: skip
        assert out.alert_id is not None
        ids.append(out.alert_id)
    conn.close()
    return ids


async def _timed(gateway: Gateway, op: str, args: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        await gateway.call(op, args)  # type: ignore[arg-type]
        outcome = "ok"
    except HubRefused as exc:
        outcome = str(exc.status)
    except GatewayUnavailable:
        outcome = "timeout"
    return (time.perf_counter() - t0) * 1000, outcome


async def _run_mode(login_threads: int, rounds: int, logins: int) -> dict:
    cfg = parse_config(f"store_id: b{uuid.uuid4().hex[:10]}\nmqtt: {{port: 1883}}\n")
    home = Path(tempfile.mkdtemp(prefix="login-burst-"))
    alerts = _open_alerts(home, cfg, 2 * rounds)
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}", login_threads=login_threads)
    hub.start()
    gateway = Gateway(Topics(cfg.store_id), cfg.mqtt, timeout_s=10.0)
    await gateway.start()
    try:
        while gateway.hub_answering is not True:
            await asyncio.sleep(0.05)
        me = await gateway.call("login", {"staff_id": "alice", "password": PASSWORD})
        token, csrf = me["token"], me["session"]["csrf_token"]
        idle, burst, outcomes = [], [], Counter[str]()
        claim_timeouts = 0
        for r in range(rounds):
            claim = {"token": token, "csrf": csrf, "action": "claim"}
            ms, out = await _timed(gateway, "claim", {**claim, "alert_id": alerts[2 * r]})
            assert out == "ok", out
            idle.append(ms)
            tasks = [
                asyncio.create_task(_timed(gateway, "login", {
                    "staff_id": f"x{r}-{i}", "password": "wrong password", "client": f"c{r}-{i}"
                }))
                for i in range(logins)
            ]  # fmt: skip
            await asyncio.sleep(0.02)
            ms, out = await _timed(gateway, "claim", {**claim, "alert_id": alerts[2 * r + 1]})
            burst.append(ms)  # a timeout counts as its full wait: the phone waited that long
            claim_timeouts += out == "timeout"
            outcomes.update(o for _, o in await asyncio.gather(*tasks))
            await asyncio.sleep(0.2)
        peak = hub.api.verifier.peak_pending if hub.api.verifier else None
        return {"idle": idle, "burst": burst, "logins": outcomes, "peak_pending": peak,
                "claim_timeouts": claim_timeouts}  # fmt: skip
    finally:
        await gateway.stop()
        hub.stop()


def _line(name: str, res: dict) -> str:
    def pm(xs: list[float]) -> str:
        return f"{statistics.median(xs):7.0f} {max(xs):7.0f}"

    logins = ", ".join(f"{k}: {v}" for k, v in sorted(res["logins"].items()))
    return (
        f"{name:7s} idle claim p50/max {pm(res['idle'])}   claim in burst p50/max "
        f"{pm(res['burst'])} (timed out: {res['claim_timeouts']})   logins {{{logins}}}"
        f"  peak in flight {res['peak_pending']}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--logins", type=int, default=16)
    args = ap.parse_args()
    for name, threads in (("worker", 0), ("pool", 2)):
        res = asyncio.run(_run_mode(threads, args.rounds, args.logins))
        print(_line(name, res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
