"""Suggestion lookup latency on the real UCI Online Retail data: what the customer card waits for.

Sets up a store home the way an operator would, with the real commands: ``storesense pos
import`` of the whole UCI file, then ``storesense suggest build`` (cut-off: now, as the
nightly timer runs it, or ``--cutoff``, which leaves the customers who bought only after it
out of the build so the best-seller fallback is timed too). Then, for every customer in the
purchase data, in a shuffled order, on one connection (the card reads through the web app's
per-request connection, which it opens once per view):

* ``lookup``: ``hub.shop.suggest.lookup``, the primary-key read of the two precomputed lists — the
  live lookup the card makes;
* ``card suggestions``: what the card does with it (``customer_profile._suggestions``): the
  lookup, dropping items bought since the build, product names and categories;
* ``whole card``: ``customer_profile.customer_card`` (baskets, totals, loyalty, suggestions),
  for scale.

p50 / p95 / p99 / max per step after ``--warmup`` untimed passes over the first customers.
The progress bar (stderr, a terminal only) advances outside the timed calls; ``--quiet`` for a
figure to copy.

    .venv/bin/python bench/suggest_lookup_latency.py [--cutoff 2011-10-01] [--quiet]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.shop.card import _suggestions, customer_card
from hub.shop.suggest import last_build, lookup
from hub.store import db
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense_tools.cli import main as storesense
from storesense_tools.cli_floor import progress_bar

DEFAULT_CSV = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "retail"
    / "online-retail-until-2011-10-31.csv.gz"
)


def _setup(home: Path, csv: Path, cutoff: str | None) -> None:
    """Import once (a home that already has the receipts is reused), build every time. The
    commands' own output goes to /dev/null: stdout is the table."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        _commands(home, csv, cutoff)


def _commands(home: Path, csv: Path, cutoff: str | None) -> None:
    conn = db.migrate_db(hub_db_path(home))
    have = conn.execute("SELECT COUNT(*) FROM pos_invoices").fetchone()[0]
    conn.close()
    if not have:
        t = time.perf_counter()
        if storesense(["--home", str(home), "pos", "import", "--csv", str(csv), "--no-progress"]):
            raise SystemExit("pos import failed")
        print(f"pos import: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    argv = ["--home", str(home), "suggest", "build"] + (["--cutoff", cutoff] if cutoff else [])
    t = time.perf_counter()
    if storesense(argv):
        raise SystemExit("suggest build failed")
    print(f"suggest build: {time.perf_counter() - t:.1f} s", file=sys.stderr)


def _time(
    name: str, fn: Callable[[str], object], ids: list[str], progress: Progress, warmup: int
) -> np.ndarray:
    for cid in ids[:warmup]:
        fn(cid)
    out = np.empty(len(ids))
    task = progress.add_task(name, total=len(ids))
    for i, cid in enumerate(ids):
        t = time.perf_counter()
        fn(cid)
        out[i] = time.perf_counter() - t
        if i % 64 == 0:
            progress.update(task, completed=i)
    progress.remove_task(task)
    return out * 1000


def _row(name: str, ms: np.ndarray) -> str:
    p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99))
    return f"| {name} | {p50:.3f} | {p95:.3f} | {p99:.3f} | {ms.max():.2f} | {ms.mean():.3f} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--home", type=Path, default=Path("/tmp/storesense-suggest-bench"))
    ap.add_argument("--cutoff", help="build from purchases before this time (default: now)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    if not args.csv.is_file():
        print(f"UCI Online Retail not found at {args.csv}", file=sys.stderr)
        return 1
    args.home.mkdir(parents=True, exist_ok=True)
    _setup(args.home, args.csv, args.cutoff)

    conn = db.connect(hub_db_path(args.home))
    build = last_build(conn)
    cutoff = build["cutoff"]
    ids = [r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM pos_invoices")]
    in_build = {
        r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM suggestions")
    }  # fmt: skip
    random.Random(args.seed).shuffle(ids)
    cfg = parse_config("store_id: bench\n")
    now = datetime(2011, 11, 1)  # the day after the data ends
    progress = progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        quiet=args.quiet,
    )
    with progress:
        t_lookup = _time("lookup", lambda c: lookup(conn, c, 10), ids, progress, args.warmup)
        t_card_s = _time(
            "card suggestions", lambda c: _suggestions(conn, c, 10, cutoff), ids, progress, 0
        )
        t_card = _time("whole card", lambda c: customer_card(conn, c, cfg, now), ids, progress, 0)
    fallback = np.array([c not in in_build for c in ids])
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"{len(ids)} customers ({int(fallback.sum())} not in the build: best-seller "
        f"fallback), build cut-off {cutoff}, {build['customers']} customers x "
        f"{build['items']} items; load average {load}\n"
    )
    print("| step | p50 ms | p95 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---|---|---|---|")
    print(_row("lookup (`hub.shop.suggest.lookup`)", t_lookup))
    if fallback.any():
        print(_row("  lookup, customers in the build", t_lookup[~fallback]))
        print(_row("  lookup, fallback customers", t_lookup[fallback]))
    print(_row("card suggestions (lookup + bought-since filter + names)", t_card_s))
    print(_row("whole card (`customer_card`)", t_card))
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
