"""Alerts per second the hub sustains end to end, through a real broker.

What is timed is the hub's whole door path: a camera's ``FaceTrack`` arrives over MQTT, the hub
matches it against the gallery (exact 1:N search, open-set vote), opens a visit and an alert
in one SQLite transaction with the announcement in the outbox, and publishes the alert on its
retained alert topic; a subscriber standing in for the phone gateway counts each alert's
``open`` state as it arrives. Real parts: a private Mosquitto configured as ``broker-config``
configures it (``set_tcp_nodelay true``; ``--system-broker``: whatever listens on
127.0.0.1:1883; ``--embedded``: the amqtt broker), ``hub.service.HubService`` with an
encrypted gallery of ``--customers`` synthetic people (one template each), QoS 1 both ways.

Two modes:

* burst (default, ``--rate 0``): the camera keeps ``--window`` tracks outstanding (sent, alert
  not yet back), so the hub always has work and runs flat out; the figure is the sustained
  rate over the middle 80 % of the alerts (no start-up, no drain). The window exists because
  Mosquitto queues at most ``max_queued_messages`` (default 1000, which ``broker-config``
  keeps) QoS 1 messages for a subscriber and drops the rest: an unbounded burst of 4,000
  tracks lost 2,956 of them at the broker, not in the hub;
* paced (``--rate R``): tracks at R per second; checks the hub keeps up (every alert out, the
  backlog never grows) and gives the track → alert latency at that load.

Tracks go round the gallery's customers (visit cooldown 0, so every track must become exactly
one alert); the run fails if an alert is missing or doubled. Progress goes to stderr.

    .venv/bin/python bench/hub_alert_throughput.py                 # burst, 2,000 customers
    .venv/bin/python bench/hub_alert_throughput.py --rate 50        # paced
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/

from hub.faces.gallery import Consent, Gallery
from hub.service import HubService
from hub.store import db
from storesense import messages as m
from storesense.config import parse_config
from storesense.face_models import DEFAULT_MODEL
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense_tools.cli_floor import progress_bar
from storesense_tools.embedded_broker import EmbeddedBroker
from tests.mosquitto_proc import private_mosquitto


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    """Unit-norm random 128-d embeddings: far apart (distance ≈ 1.4), so each probe has one
    clear match, as enrolled customers do."""
    v = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _track(vec: np.ndarray, t: float) -> m.FaceTrack:
    """What an entrance camera sends for a face it has followed: two good embeddings (the
    default vote needs two), final, so the hub decides on this message."""
    samples = [
        m.EmbeddingSample(
            vector=vec, quality=0.9, face_px=60, sharpness=120, frontalness=0.95, t=t + 0.1 * k
        )
        for k in range(2)
    ]
    return m.FaceTrack(
        model=DEFAULT_MODEL,
        camera_id="door-1",
        track_id=uuid.uuid4().hex,
        update=0,
        final=True,
        first_usable_at=t,
        samples=samples,
    )


class AlertCounter:
    """Subscribes to the hub's alert topics; notes when each alert's ``open`` state arrived."""

    def __init__(self, client) -> None:
        self.opened: dict[str, tuple[str, float]] = {}  # alert_id -> (customer, perf_counter)
        self.lock = threading.Lock()
        client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        now = time.perf_counter()
        if not msg.payload:
            return
        alert = m.decode(bytes(msg.payload), m.Alert)
        if alert.state != "open":
            return
        with self.lock:
            self.opened.setdefault(alert.alert_id, (alert.customer_id, now))

    def count(self) -> int:
        with self.lock:
            return len(self.opened)


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=2000, help="gallery size")
    ap.add_argument("--tracks", type=int, default=4000, help="face tracks sent (= alerts)")
    ap.add_argument("--rate", type=float, default=0.0, help="tracks per second; 0: burst")
    ap.add_argument(
        "--window", type=int, default=500, help="burst: most tracks outstanding (< 1000)"
    )
    ap.add_argument("--embedded", action="store_true", help="the embedded amqtt broker")
    ap.add_argument("--system-broker", action="store_true", help="the broker on :1883 as it is")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()
    if args.tracks < 10 or args.customers < 1 or not 1 <= args.window < 1000:
        ap.error("--tracks ≥ 10, --customers ≥ 1 and 1 ≤ --window < 1000, please")
    progress = progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        quiet=args.quiet,
    )
    with ExitStack() as stack, progress:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alert-bench-")))
        port, broker = 1883, "the broker on 127.0.0.1:1883"
        if args.embedded:
            port, broker = stack.enter_context(EmbeddedBroker()).port, "amqtt (embedded)"
        elif not args.system_broker:
            port, broker = private_mosquitto(stack, home), "private Mosquitto, tcp_nodelay"
        store = f"alerts{os.getpid()}"
        cfg = parse_config(
            f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 30}}\n"
            "visits: {cooldown_s: 0, alert_ttl_s: 3600}\n"
        )
        vecs = _vectors(args.customers)
        conn = db.migrate_db(hub_db_path(home))
        gallery = Gallery.open(conn, template_key_path(home))
        consent = Consent(reference="bench", staff_id="bench", notice_version="bench")
        task = progress.add_task("enrol synthetic customers", total=args.customers)
        t0 = time.perf_counter()
        for i in range(args.customers):
            gallery.enrol(f"c{i:06d}", f"Customer {i}", consent, [(vecs[i], 0.9, "synthetic")])
            progress.advance(task)
        enrol_s = time.perf_counter() - t0
        progress.remove_task(task)
        conn.close()

        hub = stack.enter_context(HubService(cfg, home, client_id=f"hub-{store}"))
        phones = make_client(f"bench-phones-{os.getpid()}", cfg.mqtt, persistent=False)
        counter = AlertCounter(phones)
        connect(phones, cfg.mqtt)
        phones.subscribe(hub.topics.all_alerts, qos=1)
        stack.callback(phones.loop_stop)
        stack.callback(phones.disconnect)
        cam = make_client(f"bench-cam-{os.getpid()}", cfg.mqtt, persistent=False)
        cam.max_inflight_messages_set(100)
        connect(cam, cfg.mqtt)
        stack.callback(cam.loop_stop)
        stack.callback(cam.disconnect)
        time.sleep(0.5)  # subscriptions settled

        topic = hub.topics.faces("door-1")
        who = [f"c{i % args.customers:06d}" for i in range(args.tracks)]
        payloads = [
            _track(vecs[i % args.customers], time.time()).to_bytes() for i in range(args.tracks)
        ]
        sent_at: list[float] = []
        task = progress.add_task("alerts out", total=args.tracks)
        t_start = time.perf_counter()
        for i, payload in enumerate(payloads):
            if args.rate > 0:
                delay = t_start + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            else:
                while i - counter.count() >= args.window:
                    time.sleep(0.0005)
            if i % 50 == 0:
                progress.update(task, completed=counter.count())
            sent_at.append(time.perf_counter())
            cam.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 120
        while counter.count() < args.tracks and time.monotonic() < deadline:
            progress.update(task, completed=counter.count())
            time.sleep(0.05)
        progress.remove_task(task)
        stats = hub.stats
        load = os.getloadavg()

    with counter.lock:
        opened = list(counter.opened.values())
    # Pair each track with its alert: per customer, the k-th alert answers the k-th track
    # (alerts of one customer cannot overtake each other: one worker, one outbox, in order).
    got: dict[str, list[float]] = {}
    for cid, t in opened:
        got.setdefault(cid, []).append(t)
    lat, missing, doubled = [], 0, 0
    wanted: dict[str, list[float]] = {}
    for cid, t in zip(who, sent_at, strict=True):
        wanted.setdefault(cid, []).append(t)
    for cid, sent in wanted.items():
        came = sorted(got.pop(cid, []))
        missing += max(0, len(sent) - len(came))
        doubled += max(0, len(came) - len(sent))
        lat += [(a - s) * 1000 for s, a in zip(sent, came, strict=False)]
    doubled += sum(len(v) for v in got.values())  # alerts for customers never sent
    arrivals = np.sort(np.array([t for _, t in opened]))
    n = len(arrivals)
    report: dict[str, object] = {
        "broker": broker,
        "gallery_customers": args.customers,
        "tracks_sent": args.tracks,
        "alerts_received": n,
        "missing": missing,
        "mode": f"burst, {args.window} outstanding" if args.rate <= 0 else f"paced {args.rate:g}/s",
        "enrol_s": round(enrol_s, 1),
        "hub_alerts": stats.alerts,
        "hub_rejected": dict(stats.rejected),
        "load_average": [round(x, 2) for x in load],
    }
    if n >= 10:
        lo, hi = int(0.1 * n), int(0.9 * n) - 1
        report["sustained_alerts_per_s"] = round((hi - lo) / (arrivals[hi] - arrivals[lo]), 1)
        report["overall_alerts_per_s"] = round(n / (arrivals[-1] - sent_at[0]), 1)
        la = np.array(lat)
        report["track_to_alert_ms"] = {
            "p50": round(_pct(la, 50), 1),
            "p95": round(_pct(la, 95), 1),
            "p99": round(_pct(la, 99), 1),
            "max": round(float(la.max()), 1),
        }
    report["doubled"] = doubled
    print(json.dumps(report, indent=2))
    return 0 if missing == 0 and doubled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
