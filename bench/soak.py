"""Soak: entrance traffic through a real Mosquitto for minutes, with the broker and the hub
restarted on a schedule. Counts events sent, alerts made, lost and duplicated, and memory.

Every event is a face track of a different enrolled customer (visit cooldown 0), sent through
the edge outbox; every 5th is sent twice (QoS 1 repeats). A floor camera sends a
``FloorPositions`` batch every second (8 frames x 10 people) through its own outbox, every 5th
twice too; the hub's ``floor_runs`` row counts the distinct batches it applied. Pass rule:
0 lost, 0 duplicated for both streams, memory flat after warm-up.

    .venv/bin/python bench/soak.py --seconds 600
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.outbox import EdgeOutbox
from hub.gallery import Gallery
from hub.service import HubService
from hub.template_crypto import TemplateCipher, load_or_create_key
from storesense import messages as m
from storesense.config import parse_config
from storesense.embedded_broker import free_port
from storesense.mqtt_client import connect_in_background, make_client
from storesense.paths import template_key_path
from tests.mosquitto_proc import MosquittoProcess

RATE_HZ = 5.0
FLOOR_PEOPLE = 10
FLOOR_FRAMES = 8


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def _floor_batch(seq: int, run_id: str, t: float) -> bytes:
    """One second of a floor camera: 10 people walking slow circles on a 20 x 15 m floor."""
    samples = []
    for f in range(FLOOR_FRAMES):
        tf = t + f / FLOOR_FRAMES
        people = [
            m.FloorPosition(
                track_id=k,
                x=10 + (2 + k % 5) * np.cos(0.1 * tf + k),
                y=7.5 + (1 + k % 4) * np.sin(0.1 * tf + k),
                conf=0.8,
            )
            for k in range(FLOOR_PEOPLE)
        ]
        samples.append(m.FloorSample(t=tf, people=people))
    return m.FloorPositions(
        camera_id="floor-1",
        run_id=run_id,
        seq=seq,
        interval_start=t,
        interval_s=1.0,
        samples=samples,
    ).to_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--broker-restart-every", type=float, default=60)
    ap.add_argument("--hub-restart-every", type=float, default=90)
    args = ap.parse_args()
    n_events = int(args.seconds * RATE_HZ)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    port = free_port()
    (tmp / "persist").mkdir()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp / 'persist'}/\nautosave_interval 1\n"
    )
    broker = MosquittoProcess(conf, port).start()
    cfg = parse_config(
        f"store_id: soak\nmqtt: {{port: {port}, keepalive_s: 5}}\n"
        "visits: {cooldown_s: 0, alert_ttl_s: 30}\n"
    )
    home = tmp / "hub"
    home.mkdir()
    hub = HubService(cfg, home, client_id="soak-hub")
    gallery = Gallery(hub.conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    print(f"enrolling {n_events} synthetic customers…", flush=True)
    for i in range(n_events):
        gallery.enrol(f"c{i:05d}", f"C {i}", "soak", [(_vec(i), 0.9, "synthetic")])
    hub._reload_gallery()
    hub.start()
    cam = make_client("soak-cam", cfg.mqtt)
    outbox = EdgeOutbox(tmp / "edge.sqlite3", cam)
    cam.on_publish = lambda c, u, mid, rc, p: outbox.on_publish(mid)
    connect_in_background(cam, cfg.mqtt)
    topic = hub.topics.faces("door-1")
    floor_cam = make_client("soak-floor", cfg.mqtt)
    floor_box = EdgeOutbox(tmp / "floor-edge.sqlite3", floor_cam)
    floor_cam.on_publish = lambda c, u, mid, rc, p: floor_box.on_publish(mid)
    connect_in_background(floor_cam, cfg.mqtt)
    floor_topic, floor_run, floor_sent = hub.topics.floor("floor-1"), uuid.uuid4().hex, 0
    t0 = time.monotonic()
    next_broker, next_hub = args.broker_restart_every, args.hub_restart_every
    rss = [(0.0, _rss_mb())]
    faults = []
    for i in range(n_events):
        now = time.monotonic() - t0
        if now >= next_broker:
            broker.stop()
            time.sleep(2)
            broker.start()
            faults.append((round(now, 1), "broker restart"))
            next_broker += args.broker_restart_every
        if now >= next_hub:
            hub.stop()
            hub = HubService(cfg, home, client_id="soak-hub").start()
            faults.append((round(now, 1), "hub restart"))
            next_hub += args.hub_restart_every
        t = time.time()
        samples = [
            m.EmbeddingSample(
                vector=_vec(i),
                quality=0.9,
                face_px=40,
                sharpness=100,
                frontalness=0.9,
                t=t + k * 0.1,
            )
            for k in range(2)
        ]
        payload = m.FaceTrack(
            camera_id="door-1",
            track_id=uuid.uuid4().hex,
            update=0,
            final=True,
            first_usable_at=t,
            samples=samples,
        ).to_bytes()
        for _ in range(2 if i % 5 == 0 else 1):
            outbox.send(topic, payload)
        outbox.pump()
        if i % int(RATE_HZ) == 0:  # one floor batch per second
            batch = _floor_batch(floor_sent, floor_run, t)
            for _ in range(2 if floor_sent % 5 == 0 else 1):
                floor_box.send(floor_topic, batch)
            floor_sent += 1
        floor_box.pump()
        if i % int(RATE_HZ * 10) == 0:
            rss.append((round(now, 1), round(_rss_mb(), 1)))
            print(
                f"{now:6.0f} s  sent {i}  outbox {outbox.depth()}  rss {rss[-1][1]} MB", flush=True
            )
        time.sleep(max(0.0, (i + 1) / RATE_HZ - (time.monotonic() - t0)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outbox.pump()
        floor_box.pump()
        done = hub.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        if done >= n_events and outbox.depth() == 0 and floor_box.depth() == 0:
            break
        time.sleep(0.5)
    time.sleep(2)
    per_customer = dict(
        hub.conn.execute("SELECT customer_id, count(*) FROM alerts GROUP BY customer_id").fetchall()
    )
    lost = sum(1 for i in range(n_events) if f"c{i:05d}" not in per_customer)
    duplicated = sum(c - 1 for c in per_customer.values() if c > 1)
    row = hub.conn.execute(
        "SELECT received, max_seq FROM floor_runs WHERE run_id=?", (floor_run,)
    ).fetchone()
    floor_applied = int(row[0]) if row else 0
    warm = [r for t, r in rss if t >= min(60.0, args.seconds / 4)]
    report = {
        "seconds": args.seconds,
        "events_sent": n_events,
        "alerts": sum(per_customer.values()),
        "lost": lost,
        "duplicated": duplicated,
        "floor_batches_sent": floor_sent,
        "floor_batches_applied": floor_applied,
        "floor_lost": max(0, floor_sent - floor_applied),
        "floor_duplicated": max(0, floor_applied - floor_sent),
        "faults": faults,
        "rss_mb_first_after_warmup": warm[0] if warm else None,
        "rss_mb_last": rss[-1][1],
        "rss_samples": rss,
    }
    print(json.dumps(report, indent=2))
    for client, box in ((cam, outbox), (floor_cam, floor_box)):
        client.disconnect()
        client.loop_stop()
        box.close()
    hub.stop()
    broker.stop()


if __name__ == "__main__":
    main()
