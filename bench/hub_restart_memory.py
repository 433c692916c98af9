"""Does a stopped ``HubService`` give its memory back? Start and stop it N times in one process.

Separates restart cost from traffic: the soak (bench/soak.py) restarts the hub while events
flow and the database grows, so its RSS mixes both. Here the hub restarts with a synthetic
gallery and no traffic; RSS and the traced Python heap (tracemalloc) are printed per cycle,
then the top allocation sites that grew between cycle 5 and the last.

    .venv/bin/python bench/hub_restart_memory.py --cycles 30 --customers 3000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.service import HubService
from storesense.config import MqttConfig, StoreConfig
from storesense.paths import template_key_path
from storesense_tools.embedded_broker import free_port
from tests.consent import consent
from tests.mosquitto_proc import MosquittoProcess


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--customers", type=int, default=3000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hub-restart-"))
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = MosquittoProcess(conf, port).start()
    cfg = StoreConfig(store_id="s1", mqtt=MqttConfig(port=port))
    home = tmp / "home"
    home.mkdir()
    first = HubService(cfg, home, client_id="hub-restart")
    gallery = Gallery(first.conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    rng = np.random.default_rng(0)
    for i in range(args.customers):
        v = rng.normal(size=128).astype(np.float32)
        gallery.enrol(
            f"c{i:05d}", f"C {i}", consent("bench"), [(v / np.linalg.norm(v), 0.9, "synthetic")]
        )
    first.conn.close()
    del first, gallery
    gc.collect()
    tracemalloc.start(25)
    base = None
    try:
        for i in range(args.cycles):
            hub = HubService(cfg, home, client_id="hub-restart").start()
            time.sleep(0.2)
            hub.stop()
            del hub
            gc.collect()
            if i == 4:
                base = tracemalloc.take_snapshot()
            traced = tracemalloc.get_traced_memory()[0] / 1e6
            print(f"cycle {i:3d}  rss {_rss_mb():6.1f} MB  traced heap {traced:.3f} MB", flush=True)
        if base is not None:
            for stat in tracemalloc.take_snapshot().compare_to(base, "lineno")[:5]:
                print("grew:", stat)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
