"""``storesense demo``: both product parts on one machine, with nothing installed.

Embedded broker → hub (fresh SQLite home) → one entrance agent playing the bundled Intel clip
→ three simulated salesperson phones that race to claim each alert. The clip is played once per
"arrival", with an empty doorway between arrivals longer than the visit cooldown, so every
arrival is a new visit. One walker is enrolled (from a crop of the clip's last frame, deleted
right after) with a consent reference that says it is demo data. The winning phone opens the
customer card (fictitious purchase history, storesense_tools/demo_shop.py) and the view is audited.

Meanwhile a floor camera (storesense_tools/demo_floor.py) loops the Intel store-aisle clip and sends
floor positions to the hub; at the end today's floor report (heatmap, zones, insights) is built.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from rich.console import Console

from edge.camera_agent import CameraAgent
from edge.entrance.face_pipeline import FacePipeline
from hub.faces import camera_keys
from hub.faces.gallery import Consent, Gallery
from hub.service import HubService
from hub.staff.accounts import add_staff
from hub.store import db
from storesense import face_seal
from storesense.config import StoreConfig, parse_config
from storesense.paths import (
    camera_keys_path,
    face_seal_key_path,
    hub_db_path,
    template_key_path,
)
from storesense_tools.demo_floor import (
    FloorCamera,
    build_floor_report,
    floor_yaml,
    write_demo_history,
)
from storesense_tools.demo_shop import CardDesk, promotion_yaml, seed_purchases
from storesense_tools.embedded_broker import EmbeddedBroker
from storesense_tools.enrolment import enrol_customer
from storesense_tools.sim_phone import Phone

CLIP = "face-demographics-walking-and-pause.gif"
DEMO_CUSTOMER = ("demo-0001", "Sam Demo")
DEMO_CONSENT = "DEMO-DATA-intel-sample-video-not-a-real-customer"
STAFF = ("alice", "bob", "carol")
# One play of the clip is one visit: the cooldown outlasts the clip (3.4 s) with room for the
# door's tracker to split the walker into two tracks and for a loaded machine's lag (a 3 s
# cooldown made two alerts of one arrival on a loaded CI machine), and the empty doorway
# outlasts the cooldown by 3 s, so the next play is a new visit even behind a lagging hub.
ARRIVAL_GAP_S = 9.0  # empty doorway between two plays of the clip
COOLDOWN_S = 6.0


def clip_path() -> Path:
    return Path(str(resources.files("storesense_tools") / "demo_assets" / CLIP))


def demo_config(port: int, clip: Path, today: dt.date | None = None) -> StoreConfig:
    floor_camera, floor = floor_yaml()
    return parse_config(
        f"""
store_id: demo
name: Storesense demo store
mqtt: {{host: 127.0.0.1, port: {port}}}
visits: {{cooldown_s: {COOLDOWN_S}, alert_ttl_s: 30}}
cameras:
  - {{id: door-1, role: entrance, source: "{clip}", fps: 12, loop: false}}
{floor_camera}staff: [{", ".join(STAFF)}]
{floor}{promotion_yaml(today or dt.date.today())}""",
        "<demo>",
    )


def _enrol_demo_walker(
    home: Path, clip: Path, pipeline: FacePipeline, db_conn: sqlite3.Connection
) -> None:
    """Enrol the walker nearest the centre of the last frame, from a crop that is then deleted."""
    gif = Image.open(clip)
    gif.seek(getattr(gif, "n_frames", 1) - 1)  # n_frames: animated formats only
    frame = cv2.cvtColor(np.asarray(gif.convert("RGB")), cv2.COLOR_RGB2BGR)
    faces = pipeline.process_bgr(frame)
    if not faces:
        raise RuntimeError("demo: no face found in the clip's last frame")
    cx = frame.shape[1] / 2
    face = min(faces, key=lambda o: abs((o.face.box[0] + o.face.box[2]) / 2 - cx)).face
    w = face.width
    x1, y1 = int(max(0, face.box[0] - w)), int(max(0, face.box[1] - w))
    x2, y2 = int(min(frame.shape[1], face.box[2] + w)), int(min(frame.shape[0], face.box[3] + w))
    tmp = Path(tempfile.mkdtemp(dir=home))
    try:
        photo = tmp / "enrolment-photo.png"
        cv2.imwrite(str(photo), frame[y1:y2, x1:x2])
        gallery = Gallery.open(db_conn, template_key_path(home))
        # the consent taker must be an active staff account (a random password: nobody logs in)
        add_staff(db_conn, "demo", "Demo consent taker", "salesperson", secrets.token_urlsafe(24))
        enrol_customer(
            gallery,
            pipeline,
            customer_id=DEMO_CUSTOMER[0],
            name=DEMO_CUSTOMER[1],
            consent=Consent(DEMO_CONSENT, staff_id="demo", notice_version="demo", method="digital"),
            images=[photo],
            actor="demo",
        )
    finally:
        shutil.rmtree(tmp)  # no raw face image is kept


def run_demo(*, home: Path, seconds: float, out_dir: Path, headless: bool) -> dict[str, Any]:
    console = Console(quiet=headless, highlight=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in home.glob("hub.sqlite3*"):
        stale.unlink()  # every demo run starts from an empty store
    clip = clip_path()
    started = time.time()
    with EmbeddedBroker() as broker:
        cfg = demo_config(broker.port, clip)
        console.print(f"[bold]Storesense demo[/] — broker on 127.0.0.1:{broker.port}, home {home}")
        hub = HubService(cfg, home)
        with console.status("enrolling one walker of the clip (consent: demo data)…"):
            _enrol_demo_walker(
                home, clip, FacePipeline.for_photos(cfg.quality, cfg.recognition.model), hub.conn
            )
        hub._reload_gallery()
        console.print(f"enrolled [cyan]{DEMO_CUSTOMER[1]}[/] ({DEMO_CUSTOMER[0]}), templates only")
        shop = seed_purchases(home, cfg, dt.datetime.now())
        console.print(
            f"wrote {shop['invoices']} fictitious receipts ({shop['customers']} demo customers) "
            f"through the POS store; suggestions built in {shop['suggestions_s']:.2f} s"
        )
        # before the hub starts: later its floor grid would refuse days-old frames as late;
        # its seconds are not the live run's (--seconds), so the clock starts after it
        t_history = time.time()
        history = write_demo_history(hub.conn, cfg, dt.date.today())
        started += time.time() - t_history
        console.print(f"wrote {history} batches of SYNTHETIC floor history (labelled demo data)")
        with console.status("loading the floor camera's person detector…"):
            floor_cam = FloorCamera(cfg, home)
        if not face_seal_key_path(home).exists():  # the door camera seals, as provisioned ones do
            key = camera_keys.issue(camera_keys_path(home), "door-1")
            face_seal.write_key_file(face_seal_key_path(home), key)
        hub.start()

        def narrate(staff: str, text: str) -> None:
            console.print(f"  📱 {staff:<6} {text}")

        phones = [
            Phone(s, hub.topics, cfg.mqtt, auto_claim=True, on_event=narrate).start() for s in STAFF
        ]
        desk = CardDesk(home, cfg, phones, narrate).start()
        floor_cam.start()
        console.print("🛒 aisle-1 (floor camera) loops the store-aisle clip → floor positions")
        arrivals = 0
        deadline = started + seconds
        try:
            while time.time() < deadline:
                arrivals += 1
                console.print(f"🚪 arrival {arrivals}: door-1 plays the clip")
                agent = CameraAgent(cfg, cfg.camera("door-1"), home=home, realtime=True)
                agent.run()
                console.print(
                    f"   door-1 published {agent.role.counters['face_tracks_published']} "
                    f"face-track messages; rejected {agent.rejections()}; "
                    f"aisle-1 positions so far {floor_cam.positions_sent}"
                )
                _sleep_until(min(deadline, time.time() + ARRIVAL_GAP_S))
            floor_cam.stop()  # flushes its last partial interval
            time.sleep(1.0)  # let the last claims, cards and floor batches settle
        finally:
            floor_cam.stop()
            desk.stop()
            for p in phones:
                p.stop()
            hub_stats = hub.stats
            summary = _summary(hub, phones, arrivals, started)
            hub.stop()  # also stores the zone visits still open
    conn = db.open_db(hub_db_path(home))
    try:
        for a in summary["alerts"]:
            a["card"] = desk.cards.get(a["alert_id"])
        summary["card_errors"] = desk.errors
        summary["audit_profile_views"] = [
            dict(r)
            for r in conn.execute(
                "SELECT at, actor, customer_id, detail FROM audit "
                "WHERE action = 'view_profile' ORDER BY at"
            )
        ]
        summary["shop"] = shop
        floor = build_floor_report(conn, cfg, out_dir, hub.floor, history)
    finally:
        conn.close()
    summary["floor"] = floor.figures | {"positions_sent": floor_cam.positions_sent}
    summary["seconds"] = round(time.time() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    f = summary["floor"]
    console = Console(highlight=False)  # the outcome is printed even when headless
    console.print(
        f"[bold]{len(summary['alerts'])} alert(s)[/], {len(desk.cards)} customer card(s) "
        f"opened (audited), {summary['unknown_visitors']} unknown visitor track(s); "
        f"rejected messages {dict(hub_stats.rejected)}"
    )
    console.print(
        f"floor: {f['messages_received']} position batches, {f['positions_received']} "
        f"positions, {f['tracks_with_zone_visits']} tracks with zone visits; "
        f"report → {floor.report_dir / 'report.html'}"
    )
    console.print(f"summary → {out_dir}/summary.json")
    return summary


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        threading.Event().wait(min(left, 0.2))


def _summary(hub: HubService, phones: list[Phone], arrivals: int, started: float) -> dict[str, Any]:
    rows = hub.conn.execute(
        "SELECT alert_id, customer_id, state, claimed_by, claim_attempts, created_at, "
        "first_usable_at, claimed_at FROM alerts ORDER BY created_at"
    ).fetchall()
    alerts = []
    for r in rows:
        seen = [p.alerts[r["alert_id"]] for p in phones if r["alert_id"] in p.alerts]
        first_rx = min((s.received_at for s in seen), default=None)
        closed = [s.closed_seen_at for s in seen if s.closed_seen_at is not None]
        alerts.append(
            {
                "alert_id": r["alert_id"],
                "customer_id": r["customer_id"],
                "state": r["state"],
                "claimed_by": r["claimed_by"],
                "claim_attempts": r["claim_attempts"],
                "latency_ms": None
                if first_rx is None
                else round((first_rx - r["first_usable_at"]) * 1000, 1),
                "hub_latency_ms": round((r["created_at"] - r["first_usable_at"]) * 1000, 1),
                "phones_alerted": len(seen),
                "claim_to_all_phones_closed_ms": None
                if r["claimed_at"] is None or len(closed) < len(phones)
                else round((max(closed) - r["claimed_at"]) * 1000, 1),
            }
        )
    unknown = hub.conn.execute("SELECT count(*) FROM unknown_visitors").fetchone()[0]
    return {
        "arrivals": arrivals,
        "seconds": round(time.time() - started, 1),
        "alerts": alerts,
        "unknown_visitors": int(unknown),
        "claim_results": {p.staff_id: [r.outcome for r in p.results] for p in phones},
        "hub": {
            "received": dict(hub.stats.received),
            "rejected": dict(hub.stats.rejected),
            "duplicates": hub.stats.duplicates,
        },
    }
