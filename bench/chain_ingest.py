"""Store → central: messages per second the central office applies, and the end-to-end delay.

Real parts, as ``tests/storesense_tools/test_chain_bridge.py`` wires them: ``--stores`` store
Mosquittos, each with the bridge ``storesense central bridge-config`` generates, one central
Mosquitto (TLS, passwords, ACL), ``central.service.CentralService`` on a fresh PostgreSQL
database (the local server; dropped afterwards). A publisher per store stands in for the hub's
outbox: QoS 1 chain messages (zone intervals, the largest table) on the store broker.

Two figures:

* burst: ``--messages`` per store published as fast as the store brokers take them; the rate
  is applied messages over the time from the first publish to the last row in PostgreSQL;
* paced: ``--rate`` messages/s per store for ``--seconds``; the delay of each message is its
  ``ingested.received_at`` (PostgreSQL's clock) minus its ``sent_at`` (the same machine's
  clock), reported as median and 95th percentile.

    .venv/bin/python bench/chain_ingest.py                       # 3 stores
    .venv/bin/python bench/chain_ingest.py --stores 5 --rate 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from central import db  # noqa: E402
from central.config import CentralConfig  # noqa: E402
from central.service import CentralService  # noqa: E402
from storesense import chain_messages as cm  # noqa: E402
from storesense.config import MqttConfig  # noqa: E402
from storesense.mqtt_client import connect, make_client  # noqa: E402
from storesense.topics import Topics  # noqa: E402
from storesense_tools.chain_bridge import INGEST, write_chain_bridge  # noqa: E402
from storesense_tools.embedded_broker import free_port  # noqa: E402
from tests.mosquitto_proc import MosquittoProcess  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402


def _applied(conn: object, kind: str = "zone_interval") -> int:
    row = conn.execute("SELECT count(*) FROM ingested WHERE kind=%s", (kind,)).fetchone()  # type: ignore[attr-defined]
    return int(row[0])


def _message(store: str, i: int, t0: float) -> cm.ZoneInterval:
    start = t0 + 60 * (i // 10)  # ten zones a minute
    return cm.ZoneInterval(store_id=store, zone=f"zone-{i % 10}", interval_start=start,
                           interval_s=60, visits=i % 7, dwell_s=12.5)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000, help="burst: per store")
    ap.add_argument("--rate", type=float, default=10.0, help="paced: messages/s per store")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    stores = [f"s{i + 1}" for i in range(args.stores)]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        dsn = stack.enter_context(fresh_database())
        port = free_port()
        bundle = write_chain_bridge(
            stores, home / "central", central_host="127.0.0.1", port=port,
            listen_host="127.0.0.1", restart_timeout=(1, 2),
        )  # fmt: skip
        central = MosquittoProcess(bundle.conf, port).start()
        stack.callback(central.stop)
        clients = {}
        for s in stores:
            sp = free_port()
            conf = home / f"{s}.conf"
            (home / s).mkdir()
            conf.write_text(f"listener {sp} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                            f"persistence_location {home / s}/\nmax_queued_messages 200000\n"
                            + bundle.bridges[s].read_text())  # fmt: skip
            broker = MosquittoProcess(conf, sp).start()
            stack.callback(broker.stop)
            c = make_client(f"bench-hub-{s}", MqttConfig(port=sp))
            connect(c, MqttConfig(port=sp))
            clients[s] = c
        conn = db.connect(dsn)
        db.migrate(conn)
        cfg = CentralConfig(database=dsn, mqtt=MqttConfig(
            host="127.0.0.1", port=port, username=INGEST, password=bundle.accounts[INGEST],
            tls_ca=bundle.ca_cert))  # fmt: skip
        service = CentralService(cfg).start()
        stack.callback(service.stop)
        time.sleep(2)  # bridges connect (restart_timeout 1 s); a bench, not a test

        t0 = time.time() - 3600
        total = args.messages * len(stores)
        start = time.monotonic()
        for i in range(args.messages):
            for s in stores:
                clients[s].publish(
                    Topics(s).chain("zone_interval"), _message(s, i, t0).to_bytes(), qos=1
                )
        while _applied(conn) < total:
            time.sleep(0.05)
        burst_s = time.monotonic() - start
        print(f"burst: {total} messages from {len(stores)} stores in {burst_s:.2f} s "
              f"= {total / burst_s:.0f} msg/s applied", file=sys.stderr)  # fmt: skip

        before = _applied(conn, "store_health")
        sent = 0
        start = time.monotonic()
        step = 1.0 / args.rate
        n = int(args.seconds * args.rate)
        for k in range(n):
            for s in stores:
                clients[s].publish(Topics(s).chain("store_health"),
                                   cm.StoreHealth(store_id=s).to_bytes(), qos=1)  # fmt: skip
                sent += 1
            time.sleep(max(0.0, start + (k + 1) * step - time.monotonic()))
        while _applied(conn, "store_health") < before + sent:
            time.sleep(0.05)
        rows = conn.execute(
            "SELECT extract(epoch FROM i.received_at - h.at) FROM ingested i "
            "JOIN store_health h USING (store_id, day, msg_id)"
        ).fetchall()
        delays = sorted(float(r[0]) * 1000 for r in rows)
        p95 = delays[int(0.95 * (len(delays) - 1))]
        result = {
            "stores": len(stores),
            "burst_messages": total,
            "burst_msg_per_s": round(total / burst_s),
            "paced_msg_per_s_per_store": args.rate,
            "paced_messages": sent,
            "delay_ms_median": round(statistics.median(delays), 1),
            "delay_ms_p95": round(p95, 1),
            "duplicates": service.ingest.duplicates,
            "rejected": dict(service.ingest.rejected),
        }
        print(json.dumps(result, indent=2))
        for c in clients.values():
            c.disconnect()
            c.loop_stop()
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
