"""Claim → gone on the other phones, with N WebSocket phones on loopback (target p99 ≤ 50 ms).

Real parts in one process: a private Mosquitto configured as ``storesense broker-config``
configures it (``set_tcp_nodelay true``; ``--system-broker``: whatever listens on
127.0.0.1:1883; ``--embedded``: the amqtt broker),
the hub daemon (``hub.service.HubService``: claim arbitration in SQLite), the web app under
uvicorn (``hub.web``: the phone gateway) and N phones as asyncio WebSocket clients with real
login sessions. Each round the hub opens an alert; once every phone shows it, one random
phone presses Accept (HTTP POST). Measured per other phone: from just before the POST is
sent to the moment its socket delivers the alert's ``claimed`` state. Also printed: the
winner's POST round trip (claim → hub's answer back on the phone).

    python bench/phones_claim_latency.py --phones 50 --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import websockets

from hub.alerts import claims as alerts
from hub.service import HubService
from hub.staff.accounts import Staff, add_staff, create_session
from hub.store import db
from hub.web.app import create_app
from hub.web.server import ServerThread
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from storesense_tools.embedded_broker import EmbeddedBroker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/
from tests.mosquitto_proc import private_mosquitto


class BenchPhone:
    def __init__(self, staff_id: str, token: str, csrf: str) -> None:
        self.staff_id = staff_id
        self.token = token
        self.csrf = csrf
        self.seen: dict[tuple[str, str], float] = {}  # (alert_id, state) -> perf_counter
        self.changed = asyncio.Event()

    async def listen(self, url: str, ready: asyncio.Event, count: list[int], n: int) -> None:
        headers = {"Cookie": f"ss_session={self.token}"}
        async with websockets.connect(url, additional_headers=headers, max_size=2**20) as ws:
            count[0] += 1
            if count[0] == n:
                ready.set()
            async for text in ws:
                now = time.perf_counter()
                msg = json.loads(text)
                if msg["type"] == "alert":
                    a = msg["alert"]
                    self.seen.setdefault((a["alert_id"], a["state"]), now)
                    self.changed.set()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def _run(args: argparse.Namespace, base: str, phones: list[BenchPhone], cfg, home: Path):
    ready = asyncio.Event()
    count = [0]
    ws_url = base.replace("http://", "ws://") + "/ws"
    tasks = [asyncio.create_task(p.listen(ws_url, ready, count, len(phones))) for p in phones]
    await asyncio.wait_for(ready.wait(), 30)
    conn = db.connect(hub_db_path(home))
    topics = Topics(cfg.store_id)
    gone_ms: list[float] = []
    post_ms: list[float] = []
    rng = random.Random(1)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for r in range(args.rounds + args.warmup):
            now = time.time()
            with db.write(conn):
                out = alerts.record_match(
                    conn,
                    topics,
                    customer_id=f"c{r}",
                    camera_id="door-1",
                    first_usable_at=now,
                    now=now,
                    cooldown_s=0,
                    alert_ttl_s=120,
                )
            aid = out.alert_id
            deadline = time.monotonic() + 10
            while not all((aid, "open") in p.seen for p in phones):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"alert {aid} did not reach every phone")
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # let the fan-out settle: measure a quiet claim
            winner = rng.choice(phones)
            t0 = time.perf_counter()
            res = await http.post(
                f"/api/alerts/{aid}/claim",
                headers={"X-CSRF-Token": winner.csrf},
                cookies={"ss_session": winner.token},
            )
            t_answer = time.perf_counter()
            assert res.json()["outcome"] == "won", res.text
            others = [p for p in phones if p is not winner]
            while not all((aid, "claimed") in p.seen for p in others):
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError(f"claim of {aid} did not reach every phone")
                await asyncio.sleep(0.002)
            if r >= args.warmup:
                gone_ms += [(p.seen[(aid, "claimed")] - t0) * 1000 for p in others]
                post_ms.append((t_answer - t0) * 1000)
    for t in tasks:
        t.cancel()
    conn.close()
    return gone_ms, post_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phones", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--embedded", action="store_true", help="the embedded amqtt broker")
    ap.add_argument(
        "--system-broker", action="store_true", help="the broker on 127.0.0.1:1883 as it is"
    )
    args = ap.parse_args()

    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        port, broker = 1883, "the broker on 127.0.0.1:1883"
        if args.embedded:
            port, broker = stack.enter_context(EmbeddedBroker()).port, "amqtt (embedded)"
        elif not args.system_broker:
            port, broker = private_mosquitto(stack, home), "private Mosquitto, tcp_nodelay"
        store = f"bench{os.getpid()}"
        cfg = parse_config(f"store_id: {store}\nmqtt: {{port: {port}}}\n")
        conn = db.migrate_db(hub_db_path(home))
        phones = []
        t_accounts = time.perf_counter()
        for i in range(args.phones):
            sid = f"sp{i:02d}"
            add_staff(conn, sid, f"Sales {i}", "salesperson", "bench-password-1")
        for i in range(args.phones):
            staff = Staff(f"sp{i:02d}", f"Sales {i}", "salesperson")
            token, session = create_session(conn, staff)
            phones.append(BenchPhone(staff.staff_id, token, session.csrf_token))
        conn.close()
        print(f"{args.phones} accounts + sessions in {time.perf_counter() - t_accounts:.1f} s")
        hub = stack.enter_context(HubService(cfg, home, client_id=f"hub-{store}"))
        app = create_app(cfg)  # a stateless gateway: it asks the hub for everything
        web = stack.enter_context(ServerThread(app))
        while not app.state.gateway.connected:
            time.sleep(0.02)
        gone, post = asyncio.run(_run(args, web.url, phones, cfg, home))
        del hub
    load = os.getloadavg()
    print(f"broker: {broker}; load average before exit: {load[0]:.2f} {load[1]:.2f}")
    print(
        f"claim → gone on the other {args.phones - 1} phones, {args.rounds} rounds, "
        f"{len(gone)} samples: p50 {_pct(gone, 50):.1f} ms, p95 {_pct(gone, 95):.1f} ms, "
        f"p99 {_pct(gone, 99):.1f} ms, max {max(gone):.1f} ms"
    )
    print(
        f"winner's POST round trip (claim → hub's answer): p50 {statistics.median(post):.1f} ms, "
        f"p95 {_pct(post, 95):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
