"""Door→alert latency on loopback: first usable face frame → alert on the first phone.

Runs the real demo stack (embedded broker, hub, entrance agent on the bundled clip in real
time, three phones) for the given time and reports percentiles over every alert. Each arrival
plays the clip once, so the latency includes the edge's wait for a track's first embeddings.

    .venv/bin/python bench/door_to_alert.py --seconds 120
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from storesense_tools.demo import run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_demo(
            home=Path(tmp) / "home", seconds=args.seconds, out_dir=Path(tmp) / "out", headless=True
        )
    lat = np.array([a["latency_ms"] for a in summary["alerts"] if a["latency_ms"] is not None])
    hub = np.array([a["hub_latency_ms"] for a in summary["alerts"]])
    vanish = np.array(
        [
            a["claim_to_all_phones_closed_ms"]
            for a in summary["alerts"]
            if a["claim_to_all_phones_closed_ms"] is not None
        ]
    )
    report = {
        "arrivals": summary["arrivals"],
        "alerts": len(summary["alerts"]),
        "door_to_phone_ms": _pct(lat),
        "door_to_hub_commit_ms": _pct(hub),
        "claim_to_alert_gone_on_all_phones_ms": _pct(vanish),
    }
    print(json.dumps(report, indent=2))


def _pct(a: np.ndarray) -> dict[str, float] | None:
    if a.size == 0:
        return None
    return {
        k: round(float(np.percentile(a, q)), 1) for k, q in (("p50", 50), ("p95", 95), ("max", 100))
    } | {"n": int(a.size)}


if __name__ == "__main__":
    main()
