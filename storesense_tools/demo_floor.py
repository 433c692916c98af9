"""The demo's floor part: one ``role: floor`` camera on the bundled store-aisle clip, its store
floor and zones, and the floor report built at the end of the run.

The calibration (``demo_assets/store-aisle-calibration.yaml``, made by ``storesense calibrate``
from the CSV next to it) is ILLUSTRATIVE: the clip has no measured floor, so its image marks were
picked by eye and the metres are plausible guesses. The plan image is the clip's median frame
warped onto the floor with that calibration (40 px per metre). Figures in metres are demo
figures, not measurements.
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
PLAN = "store-aisle-plan.png"
FLOOR_CAMERA = "aisle-1"
FLOOR_FPS = 5  # SSDLite on a 2-core VM shares the CPU with the door camera's face pipeline


def asset(name: str) -> Path:
    return Path(str(resources.files("storesense_tools") / "demo_assets" / name))


def floor_yaml() -> tuple[str, str]:
    """(camera list entry, top-level floor + zones YAML) for the demo store config.

    Floor: 6 m across the two aisles × 10 m from the back wall toward the camera. Zones are
    the floor strips in front of the left shelves, around the centre display table and in front
    of the right shelves; categories are names from config/categories.yaml so POS sales per
    zone show in the report.
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
  plan_image: "{asset(PLAN)}"
  plan_px_per_m: 40
  dwell_enter_s: 1.0
  dwell_exit_s: 2.0
zones:
  - {{name: left shelves, polygon: [[0, 1.5], [1.6, 1.5], [1.6, 10], [0, 10]],
     categories: [kitchen, storage]}}
  - {{name: display table, polygon: [[1.6, 1.5], [4.0, 1.5], [4.0, 10], [1.6, 10]],
     categories: [baking, lighting]}}
  - {{name: right shelves, polygon: [[4.0, 1.5], [6.0, 1.5], [6.0, 10], [4.0, 10]],
     categories: [home-decor, bath]}}
"""
    return camera, floor


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
    hub_conn: sqlite3.Connection, cfg: StoreConfig, out_dir: Path, hub_floor: FloorIngest
) -> FloorOutcome:
    """Today's floor report (hub/floor/report.py) into ``out_dir/report`` plus the demo's floor
    figures. Call after the hub stopped, so the visits still open were stored."""
    from hub.floor.report import build_report

    day = dt.date.today()
    res = build_report(hub_conn, cfg, day, out_dir / "report", plan_image=cfg.floor.plan_image)
    s = hub_floor.stats
    people = hub_conn.execute(
        "SELECT count(DISTINCT person_key) FROM floor_visits WHERE day = ?", (day.isoformat(),)
    ).fetchone()[0]
    figures = {
        "camera": FLOOR_CAMERA,
        "messages_received": s.messages,
        "positions_received": s.positions,
        "positions_off_floor": s.off_floor,
        "tracks_with_zone_visits": int(people),
        "zone_visits": s.visits,
        "journeys": s.journeys,
        "observed_s": round(res.observed_s, 1),
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
    }
    return FloorOutcome(res.out_dir, figures)
