"""The demo's floor part: one ``role: floor`` camera on the bundled store-aisle clip, its store
floor, zones and drawn floor plan, a week of synthetic history, and the floor reports built at
the end of the run.

The calibration (``demo_assets/store-aisle-calibration.yaml``, made by ``storesense calibrate``
from the CSV next to it) is ILLUSTRATIVE: the clip has no measured floor, so its image marks were
picked by eye and the metres are plausible guesses. The report's plan is DRAWN from the zones and
fixtures below (never the warped camera frame). Floor metres: x across the aisles, y up the
aisle from the camera's end (the entrance) to the back wall. Figures in metres are demo figures.

The clip gives one short, provisional day. So that the report can show trends and firm advice,
the demo writes four earlier days of SYNTHETIC floor data (a week ago, for today's trend, and
the last three days) (``write_demo_history``: shoppers
walking from the entrance up the aisles, seeded, through the hub's real floor ingest under the
run ids ``de<YYYYMMDD>0…0``) and says so on every page (``DEMO_NOTE``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.camera_agent import CameraAgent
from storesense.config import StoreConfig

if TYPE_CHECKING:
    from hub.floor.ingest import FloorIngest

FLOOR_CLIP = "store-aisle-detection.gif"
CALIBRATION = "store-aisle-calibration.yaml"
FLOOR_CAMERA = "aisle-1"
FLOOR_FPS = 5  # SSDLite on a 2-core VM shares the CPU with the door camera's face pipeline


def asset(name: str) -> Path:
    return Path(str(resources.files("storesense_tools") / "demo_assets" / name))


def floor_yaml() -> tuple[str, str]:
    """(camera list entry, top-level floor + zones YAML) for the demo store config.

    Floor: 6 m across the two aisles x 10 m from the camera's end (the entrance, y = 0) to the
    back wall. Zones are the floor strips in front of the left shelves, around the centre
    display table and in front of the right shelves; categories are names from
    config/categories.yaml so POS sales per zone show in the report. Fixtures are the shelves
    and the table as the clip shows them (guessed metres, like the calibration).
    """
    camera = (
        f'  - {{id: {FLOOR_CAMERA}, role: floor, source: "{asset(FLOOR_CLIP)}", '
        f"fps: {FLOOR_FPS}, loop: true, person_detector: ssdlite, "
        f'calibration: "{asset(CALIBRATION)}"}}\n'
    )
    floor = f"""
floor:
  width_m: 6.0
  height_m: 10.0
  cell_m: 0.5
  sample_s: 1.0
  publish_interval_s: 1.0
  dwell_enter_s: 1.0
  dwell_exit_s: 2.0
  plan:
    outline: [[0, 0], [6, 0], [6, 10], [0, 10]]
    fixtures:
      - {{name: left shelves, kind: shelf, polygon: [[0, 0.5], [0.4, 0.5], [0.4, 9.6], [0, 9.6]]}}
      - {{name: display table, kind: table, polygon: [[1.8, 1.2], [3.8, 1.2], [3.8, 7.8],
         [1.8, 7.8]]}}
      - {{name: right shelves, kind: shelf, polygon: [[5.3, 0.5], [6, 0.5], [6, 9.6],
         [5.3, 9.6]]}}
      - {{name: back wall shelf, kind: shelf, polygon: [[0.4, 9.6], [5.3, 9.6], [5.3, 10],
         [0.4, 10]]}}
    entrances: [{{name: entrance, at: [3.0, 0.15], width_m: 2.0}}]
    cameras: [{{camera: {FLOOR_CAMERA}, at: [3.0, 0.4]}}]
zones:
  - {{name: left shelves, polygon: [[0, 0], [1.6, 0], [1.6, 8.5], [0, 8.5]],
     categories: [kitchen, storage]}}
  - {{name: display table, polygon: [[1.6, 0], [4.0, 0], [4.0, 8.5], [1.6, 8.5]],
     categories: [baking, lighting]}}
  - {{name: right shelves, polygon: [[4.0, 0], [6.0, 0], [6.0, 8.5], [4.0, 8.5]],
     categories: [home-decor, bath]}}
"""
    return camera, floor


DEMO_NOTE = (
    "the floor camera is the bundled store-aisle clip (an illustrative calibration), and the "
    "days before today (a week ago and the last three days) are synthetic shoppers made by the "
    "demo, not observations."
)
# Run ids of the synthetic days: "de"(mo) + the date + zeros (run ids are 32 hex digits), so
# the rows the demo made are recognisable in floor_runs.
HISTORY_RUN = "de{:%Y%m%d}" + "0" * 22
HISTORY_DAYS = (7, 3, 2, 1)  # days before today: a week ago (today's trend) and the last three
HISTORY_S = 2.2 * 3600  # per synthetic day: above the 2 h a firm (non-provisional) report needs


def _aisle_walkers(n: int, seed: int, seconds: float, t0: float) -> Any:
    """``n`` shoppers: in at the entrance, up the left or right aisle to one or two stops at
    the shelves or the table, back out. Returns people(t) -> [(track, x, y)]."""
    import numpy as np

    from storesense_tools.store_sim import position_on_route

    rng = np.random.default_rng(seed)
    plans = []
    for i in range(n):
        start = t0 + rng.uniform(0, seconds - 240)
        left = rng.random() < 0.6  # the left aisle is the busier one
        aisle_x = 1.0 if left else 4.6
        stops = [
            (aisle_x + rng.uniform(-0.3, 0.3), rng.uniform(1.5, 8.0), rng.uniform(10, 70))
            for _ in range(1 + int(rng.random() < 0.4))
        ]
        route = [(3.0, 0.3, 0.0), (aisle_x, 0.8, 0.0), *stops, (aisle_x, 0.8, 0.0), (3.0, 0.3, 0)]
        plans.append((i + 1, start, route))

    def at(t: float) -> list[tuple[int, float, float]]:
        out = []
        for tid, start, route in plans:
            # 0.8 m/s; at least 0.1 s per leg (two stops can coincide)
            at_t = position_on_route(route, start, t, speed_m_s=0.8, min_walk_s=0.1)
            if at_t is not None:
                out.append((tid, *at_t))
        return out

    return at


def write_demo_history(conn: sqlite3.Connection, cfg: StoreConfig, today: dt.date) -> int:
    """SYNTHETIC floor data for the ``HISTORY_DAYS`` before ``today`` (from 10:00 local each),
    fed through the hub's real floor ingest as camera ``aisle-1`` under the run ids
    ``HISTORY_RUN``. Returns the messages ingested. Demo only."""
    import time as _time

    from hub.floor.ingest import FloorIngest
    from storesense import messages as m
    from storesense.topics import Topics

    topics = Topics(cfg.store_id)
    ing = FloorIngest(conn, cfg)
    sent = 0
    try:
        for back in HISTORY_DAYS:
            day = today - dt.timedelta(days=back)
            t0 = _time.mktime((day.year, day.month, day.day, 10, 0, 0, 0, 0, -1))
            people = _aisle_walkers(45 - 3 * back, seed=back, seconds=HISTORY_S, t0=t0)
            interval, fps = 30.0, 1.0  # a frame a second: every 1 s slot observed
            for k in range(int(HISTORY_S / interval)):
                t_int = t0 + k * interval
                samples = [
                    m.FloorSample(
                        t=t_int + j / fps,
                        people=[
                            m.FloorPosition(track_id=tid, x=x, y=y, conf=0.9)
                            for tid, x, y in people(t_int + j / fps)
                        ],
                    )
                    for j in range(int(interval * fps))
                ]
                msg = m.FloorPositions(
                    camera_id=FLOOR_CAMERA,
                    run_id=HISTORY_RUN.format(day),
                    seq=k,
                    interval_start=t_int,
                    interval_s=interval,
                    samples=samples,
                )
                ing.handle(topics.floor(FLOOR_CAMERA), msg.to_bytes(), now=t_int + interval)
                sent += 1
    finally:
        ing.close()
    return sent


class FloorCamera:
    """The floor agent on its own thread, looping the clip until ``stop`` (like a real agent:
    its own MQTT client and outbox, FloorPositions to the hub through the broker)."""

    def __init__(self, cfg: StoreConfig, home: Path) -> None:
        self.agent = CameraAgent(cfg, cfg.camera(FLOOR_CAMERA), home=home, realtime=True)
        self._thread = threading.Thread(target=self._run, name="demo-floor", daemon=True)

    def _run(self) -> None:
        # In a store the floor and door cameras are separate devices; here they share two
        # cores, so the floor thread yields to the door (Linux: niceness is per thread). Without
        # it, dropped door frames can split one walker's face track into two visits.
        with contextlib.suppress(AttributeError, OSError):  # not Linux / not permitted: as is
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        self.agent.run()

    def start(self) -> FloorCamera:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.agent.request_stop()
        self._thread.join(timeout_s)

    @property
    def positions_sent(self) -> int:
        """People-samples the floor camera has published so far."""
        return self.agent.role.counters["positions_sent"]


@dataclass
class FloorOutcome:
    report_dir: Path
    figures: dict[str, Any]


def build_floor_report(
    hub_conn: sqlite3.Connection,
    cfg: StoreConfig,
    out_dir: Path,
    hub_floor: FloorIngest,
    history_messages: int = 0,
) -> FloorOutcome:
    """Today's floor report (hub/floor/report.py) into ``out_dir/report`` (provisional: a
    short clip) and this week's, over the synthetic history too, into ``out_dir/report-week``
    (firm advice, trends against the week before), plus the demo's floor figures. Call after
    the hub stopped, so the visits still open were stored. The synthetic history was written
    by ``write_demo_history`` before the hub started (``history_messages`` batches)."""
    from hub.floor.report import build_report

    day = dt.date.today()
    s = hub_floor.stats
    people = hub_conn.execute(
        "SELECT count(DISTINCT person_key) FROM floor_visits WHERE day = ?", (day.isoformat(),)
    ).fetchone()[0]
    res = build_report(hub_conn, cfg, day, out_dir / "report", period="day", demo_note=DEMO_NOTE)
    week = build_report(hub_conn, cfg, day, out_dir / "report-week", days=7, demo_note=DEMO_NOTE)
    figures = {
        "camera": FLOOR_CAMERA,
        "messages_received": s.messages,
        "positions_received": s.positions,
        "positions_off_floor": s.off_floor,
        "tracks_with_zone_visits": int(people),
        "zone_visits": s.visits,
        "journeys": s.journeys,
        "observed_s": round(res.observed_s, 1),
        "provisional": res.provisional,
        "synthetic_history_messages": history_messages,
        "zones": [
            {
                "zone": z.zone,
                "visits": z.visits_per_day,
                "person_s": z.person_s_per_day,
                "revenue": z.revenue_per_day,
            }
            for z in res.zones
        ],
        "report_dir": str(res.out_dir),
        "report_html": str(res.out_dir / "report.html"),
        "week_report_html": str(week.out_dir / "report.html"),
        "week_provisional": week.provisional,
    }
    return FloorOutcome(res.out_dir, figures)
