"""Claim races while the hub and the broker are killed with SIGKILL: the counts (issue 15).

Runs ``tests.hub.test_claim_race_kill.run_races`` larger than the test does: the real hub
daemon (``storesense hub run``) and a real Mosquitto with persistence (``--autosave`` seconds),
``--claimers`` phones pressing Accept on each of ``--alerts`` alerts (pressing again when no
answer comes), and ``--hub-kills`` / ``--broker-kills`` ``kill -9`` at random moments, each
followed by a restart. Prints the presses, the answers by outcome, the kills and every
mismatch between the answers, the table, the audit log and what phones see (a connected one
and one connecting at the end); exit 1 on any mismatch.

    .venv/bin/python bench/claim_race_kill.py                       # 500 alerts x 20 claimers
    .venv/bin/python bench/claim_race_kill.py --alerts 100 --claimers 10 --hub-kills 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's tests/
from tests.hub.test_claim_race_kill import run_races


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=500)
    ap.add_argument("--claimers", type=int, default=20)
    ap.add_argument("--hub-kills", type=int, default=5)
    ap.add_argument("--broker-kills", type=int, default=5)
    ap.add_argument("--autosave", type=int, default=5, help="broker autosave_interval, s")
    ap.add_argument("--pace", type=float, default=0.1, help="mean pause between alerts, s")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--keep", type=Path, help="an empty folder to keep the logs and databases in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="claim-kill-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        counts = run_races(
            folder,
            n_alerts=args.alerts,
            n_claimers=args.claimers,
            hub_kills=args.hub_kills,
            broker_kills=args.broker_kills,
            autosave_s=args.autosave,
            pace_s=args.pace,
            seed=args.seed,
        )
    print(counts.line())
    for line in counts.mismatches:
        print("  mismatch:", line)
    return 1 if counts.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
