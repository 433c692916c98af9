"""Door → phone notification latency, separate processes: first usable face frame → a SYSTEM
notification shown in a Chromium phone page.

Two stores side by side, each with its own Mosquitto process (on a free loopback port: a
store has one hub, and two hubs on one broker would share the MQTT client id), hub process
(``storesense hub run``) and web gateway process (``storesense web run``, plain HTTP on
loopback, which Chromium treats as a secure context), and one Chromium phone page logged in
to each (notification permission granted, the real service worker):

- **after**: the shipped policy — the door publishes its first usable embedding at once, the
  hub may alert on one very confident frame (``recognition.single_frame_*``);
- **before**: the old policy — ``first_message_embeddings: 2`` and
  ``single_frame_threshold: null`` (two embeddings before the first message, agreement only).

Each store's edge agent (``storesense edge run``, its own process, started once and warm, as
at a real door) loops a clip made of the bundled Intel walking clip (41 frames, 12 fps)
between empty-doorway frames, in real time: one pass = one arrival, every 9.8 s; the two
stores' walkers are 4.9 s apart, so arrivals alternate and both policies see the same machine
load. The first arrival of each agent is dropped (warm-up). One walker of the clip is
enrolled in both stores (from a crop of its last frame, as the demo does). The phone page
records when the app's ``showNotification`` for each alert (``tag`` = alert id) resolved; the
latency is that time minus the alert's ``first_usable_at`` (capture time of the track's first
usable face frame, set by the edge), both wall clock on this machine. A listener on each
broker also records every track's first face-track message (``sent_at`` − first usable
frame = the edge's share, and how many embeddings it carried).

    .venv/bin/python bench/door_to_notification.py --arrivals 20

Prints p50/p95/max per policy, the hub's share (frame → alert committed) and which rule
matched (from the hub log), plus the load average: figures taken on a busy machine say so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.entrance.face_pipeline import FacePipeline
from hub.staff.accounts import add_staff
from hub.store import db
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense_tools.demo import _enrol_demo_walker, clip_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/
from tests.notification_hooks import HOOK_JS

REPO = Path(__file__).resolve().parents[1]
STORESENSE = [sys.executable, "-m", "storesense_tools.cli"]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
STAFF, PASSWORD = "alice", "bench-password-not-secret"
POLICIES = ("after", "before")
CLEAR_JS = """async () => {
  const reg = await navigator.serviceWorker.ready;
  for (const n of await reg.getNotifications()) n.close();
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Store:
    """One store's processes and files; ``policy`` is "after" or "before"."""

    policy: str
    home: Path
    clip: Path
    store_id: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:10]}")
    mqtt_port: int = field(default_factory=_free_port)
    web_port: int = field(default_factory=_free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.home / "store.yaml"

    def write_config(self) -> None:
        old = self.policy == "before"
        recognition = "{single_frame_threshold: null}" if old else "{}"
        self.config.write_text(
            f"store_id: {self.store_id}\n"
            f"mqtt: {{host: 127.0.0.1, port: {self.mqtt_port}}}\n"
            f"recognition: {recognition}\n"
            "visits: {cooldown_s: 3, alert_ttl_s: 60}\n"
            f"app: {{host: 127.0.0.1, port: {self.web_port}, plain_http: true}}\n"
            "cameras:\n"
            f"  - {{id: door-1, role: entrance, source: '{self.clip}', fps: 12, loop: true, "
            f"display_name: Main door, first_message_embeddings: {2 if old else 1}}}\n"
        )
        parse_config(self.config.read_text(), str(self.config))  # fail here, not in a child

    def cli(self, *args: str) -> list[str]:
        return [*STORESENSE, "--home", str(self.home), "--config", str(self.config), *args]

    def start(self, log_dir: Path) -> None:
        broker = self.home / "mosquitto.conf"
        broker.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "set_tcp_nodelay true\n"  # as `storesense broker-config` writes it
        )
        commands = {
            "mosquitto": [MOSQUITTO, "-c", str(broker)],
            "hub": self.cli("hub", "run"),
            "web": self.cli("web", "run"),
        }
        for name, cmd in commands.items():
            out = (log_dir / f"{self.policy}-{name}.log").open("wb")
            self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
            if name == "mosquitto":
                _wait_port(self.mqtt_port)

    def stop(self) -> None:
        for p in reversed(self.procs):  # web, hub, then the broker they talk through
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"


def _prepare(store: Store, pipeline: FacePipeline) -> None:
    store.home.mkdir(parents=True, mode=0o700)
    store.write_config()
    conn = db.migrate_db(hub_db_path(store.home))
    add_staff(conn, STAFF, "Alice Bench", "salesperson", PASSWORD)
    _enrol_demo_walker(store.home, clip_path(), pipeline, conn)
    conn.close()


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _wait_http(url: str, timeout_s: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s (see the web log)")


def _phone(browser: Any, store: Store) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 390, "height": 844}, permissions=["notifications"]
    )
    page = context.new_page()
    page.goto(store.url)
    page.fill("#login-id", STAFF)
    page.fill("#login-pw", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("[data-testid=connection]")).to_have_attribute(
        "data-state", "online", timeout=30_000
    )
    page.evaluate(HOOK_JS)
    return page


def _alerts(store: Store) -> dict[str, tuple[float, float]]:
    """alert id -> (first_usable_at, created_at), from the hub's database (read only)."""
    conn = db.open_db(hub_db_path(store.home))
    try:
        rows = conn.execute("SELECT alert_id, first_usable_at, created_at FROM alerts").fetchall()
    finally:
        conn.close()
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


def _pct(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    a = np.array(xs)
    out = {k: round(float(np.percentile(a, q)), 1) for k, q in (("p50", 50), ("p95", 95))}
    return out | {"max": round(float(a.max()), 1), "min": round(float(a.min()), 1), "n": len(xs)}


def _door_clip(path: Path, lead_grey: int, tail_grey: int) -> None:
    """The walking clip between empty-doorway frames (uniform grey), as a looping GIF.

    One pass = one arrival; the doorway stays empty long enough for the track to end (the
    tracker's max_age_s) and for the visit cooldown to pass, so every pass is a new alert.
    """
    from PIL import Image, ImageSequence

    with Image.open(clip_path()) as gif:
        walk = [f.convert("RGB") for f in ImageSequence.Iterator(gif)]

    def grey(i: int) -> Image.Image:
        # one corner pixel differs from frame to frame: PIL merges identical GIF frames (and
        # OpenCV then loses their duration); the motion gate cannot see one pixel
        img = Image.new("RGB", walk[0].size, (118, 118, 118))
        img.putpixel((0, 0), (i % 200, 0, 0))
        return img

    frames = [grey(i) for i in range(lead_grey)] + walk
    frames += [grey(lead_grey + i) for i in range(tail_grey)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=83, loop=0)


class _DoorListener:
    """Each track's first face-track message as the hub's broker carries it (edge share)."""

    def __init__(self, store: Store) -> None:
        from storesense import messages as m
        from storesense.config import MqttConfig
        from storesense.mqtt_client import connect, make_client
        from storesense.topics import Topics

        self.first: dict[str, tuple[float, float, int]] = {}  # track -> (usable, sent, n)
        cfg = MqttConfig(port=store.mqtt_port)
        self.client = make_client(f"bench-{uuid.uuid4().hex[:8]}", cfg, persistent=False)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            ft = m.decode(msg.payload, m.FaceTrack)
            if ft.track_id not in self.first:
                self.first[ft.track_id] = (ft.first_usable_at, ft.sent_at, len(ft.samples))

        self.client.on_message = on_message
        self.client.on_connect = lambda c, *a: c.subscribe(Topics(store.store_id).all_faces, 1)
        connect(self.client, cfg)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(arrivals: int, keep: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="door-bench-"))
    log_dir = keep or tmp
    log_dir.mkdir(parents=True, exist_ok=True)
    # 41 walking frames + 82 empty = one arrival per 9.8 s per store; the two stores' walkers
    # are 4.9 s apart, so their arrivals alternate and never overlap (same load for both).
    clips = {"after": (0, 82), "before": (61, 21)}
    stores = {p: Store(p, tmp / p, clip=tmp / f"{p}.gif") for p in POLICIES}
    load_before = os.getloadavg()
    pipeline = FacePipeline()
    for p, s in stores.items():
        _door_clip(s.clip, *clips[p])
        _prepare(s, pipeline)
    del pipeline
    seen: dict[str, dict[str, int]] = {}
    listeners: dict[str, _DoorListener] = {}
    agents: list[subprocess.Popen[bytes]] = []
    started = time.time()
    try:
        for s in stores.values():
            s.start(log_dir)
        for s in stores.values():
            _wait_http(s.url)
        listeners = {p: _DoorListener(s) for p, s in stores.items()}
        with sync_playwright() as pw:
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            pages = {p: _phone(browser, s) for p, s in stores.items()}
            for p, s in stores.items():
                out = (log_dir / f"{p}-edge.log").open("wb")
                agents.append(
                    subprocess.Popen(
                        s.cli("edge", "run", "--camera", "door-1"),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=REPO,
                    )
                )
            want = arrivals + 1  # the first pass of each agent is its warm-up, dropped below
            deadline = time.monotonic() + 60 + want * 10.25 * 1.5
            while time.monotonic() < deadline:
                counts = {
                    p: page.evaluate("() => Object.keys(window.__shown).length")
                    for p, page in pages.items()
                }
                if min(counts.values()) >= want:
                    break
                for page in pages.values():
                    page.evaluate(CLEAR_JS)  # a phone shows only the newest; tags stay recorded
                print(f"notifications so far {counts}", file=sys.stderr)
                time.sleep(2.0)
            seen = {p: page.evaluate("() => window.__shown") for p, page in pages.items()}
            browser.close()
    finally:
        for a in agents:
            a.send_signal(signal.SIGTERM)
        for a in agents:
            try:
                a.wait(timeout=20)
            except subprocess.TimeoutExpired:
                a.kill()
        for listener in listeners.values():
            listener.stop()
        for s in stores.values():
            s.stop()
    report: dict[str, Any] = {
        "arrivals_per_policy": arrivals,
        "seconds": round(time.time() - started, 1),
        "load_average_1_5_15_start": [round(x, 2) for x in load_before],
        "load_average_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    for p, s in stores.items():
        alerts = sorted(_alerts(s).items(), key=lambda kv: kv[1][0])[1:]  # drop the warm-up
        lat = [seen[p][a] - fu * 1000 for a, (fu, _) in alerts if a in seen[p]]
        hub = [(c - fu) * 1000 for _, (fu, c) in alerts]
        first_msgs = sorted(listeners[p].first.values())[1:] if p in listeners else []
        edge = [(sent - fu) * 1000 for fu, sent, _ in first_msgs]
        hub_log = (log_dir / f"{p}-hub.log").read_text(errors="replace")
        rules = {
            r: len(re.findall(rf"by the {r} rule", hub_log)) for r in ("single_frame", "agreement")
        }
        report[p] = {
            "first_usable_frame_to_notification_ms": _pct(lat),
            "first_usable_frame_to_alert_committed_ms": _pct(hub),
            "first_usable_frame_to_first_message_sent_ms": _pct(edge),
            "first_message_samples": dict(Counter(n for _, _, n in first_msgs)),
            "alerts_counted": len(alerts),
            "alerts_without_notification": sum(a not in seen[p] for a, _ in alerts),
            "matches_by_rule_incl_warmup": rules,
            "single_frame_contradicted": hub_log.count("alerted on one frame as"),
        }
    if keep is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrivals", type=int, default=20, help="per policy (default 20)")
    ap.add_argument("--keep-logs", type=Path, help="keep the processes' logs in this folder")
    args = ap.parse_args()
    report = run(args.arrivals, args.keep_logs)
    print(json.dumps(report, indent=2))
    a = report["after"]["first_usable_frame_to_notification_ms"] or {}
    b = report["before"]["first_usable_frame_to_notification_ms"] or {}
    load = report["load_average_1_5_15_start"]
    print(
        f"first usable frame → notification: after p50 {a.get('p50')} / p95 {a.get('p95')} ms; "
        f"before p50 {b.get('p50')} / p95 {b.get('p95')} ms (load average at start {load})"
    )


if __name__ == "__main__":
    main()
