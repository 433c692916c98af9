"""A camera device installs only the core package (no `[hub]` extra): both camera roles must
run without any hub library. The hub's libraries are made unimportable in a child process,
which then runs a floor and an entrance agent on the bundled clips against the real Mosquitto.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# distribution name -> import name, where they differ
IMPORT_NAME = {"argon2-cffi": "argon2", "PyYAML": "yaml"}

CHILD = r"""
import importlib.abc, pathlib, sys, time
BLOCKED = set(sys.argv[1].split(","))

class NoHubLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is a hub library; camera devices do not have it")
        return None

sys.meta_path.insert(0, NoHubLibraries())
import paho.mqtt.client as mqtt
from edge.camera_agent import CameraAgent
from storesense.config import parse_config

assets = pathlib.Path(sys.argv[2]) / "storesense_tools" / "demo_assets"
store = sys.argv[3]
cfg = parse_config(f'''
store_id: {store}
cameras:
  - {{id: aisle-1, role: floor, source: "{assets / 'store-aisle-detection.gif'}", fps: 5,
     calibration: "{assets / 'store-aisle-calibration.yaml'}"}}
  - {{id: door-1, role: entrance, source: "{assets / 'face-demographics-walking-and-pause.gif'}",
     fps: 8}}
''')
got = []
sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
sub.on_message = lambda c, u, m: got.append(m.topic)
sub.connect("127.0.0.1", 1883)
sub.subscribe(f"storesense/v1/{store}/edge/+/+", qos=1)
sub.loop_start()
for cam in ("aisle-1", "door-1"):
    CameraAgent(cfg, cfg.camera(cam), home=pathlib.Path(sys.argv[4]) / cam, realtime=False).run()
time.sleep(1.0)
sub.loop_stop()
floor = sum(t.endswith("/floor") for t in got)
print("floor", floor, "faces", sum(t.endswith("/faces") for t in got))
"""


def hub_only_modules() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [
        re.split(r"[=<>~!\[ ]", req, maxsplit=1)[0]
        for req in project["optional-dependencies"]["hub"]
    ]
    return [IMPORT_NAME.get(n, n.replace("-", "_")) for n in names]


def test_camera_roles_run_without_the_hub_libraries(tmp_path: Path) -> None:
    blocked = hub_only_modules()
    # cryptography is a camera dependency now: a door camera seals its face tracks with it
    assert {"fastapi", "matplotlib", "implicit"} <= set(blocked)
    assert "cryptography" not in blocked
    store = f"edgeonly{tmp_path.name[-6:].replace('_', '')}"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(blocked), str(REPO), store, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    counts = out.stdout.split()
    floor, faces = int(counts[counts.index("floor") + 1]), int(counts[counts.index("faces") + 1])
    assert floor > 0 and faces > 0, out.stdout
