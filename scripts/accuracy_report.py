"""Accuracy and bias report for door recognition: generates docs/accuracy.md.

The command line only: the protocols, the evaluation, the statistics and the markdown are in
``storesense_tools.accuracy`` (its docstring says why the report is generated and what runs).

    .venv/bin/python scripts/accuracy_report.py [--data DIR] [--out docs/accuracy.md] [--rows F.csv]

The first run embeds ~6,600 images on both cores (≈ 8 min on the 2-core dev VM when it is not
busy with other work); later runs read the cached embeddings and take under a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hub.faces.matcher import OpenSetPolicy
from storesense_tools.accuracy.checkout import REPO, default_data_root, git_state
from storesense_tools.accuracy.evaluate import build_report
from storesense_tools.accuracy.protocols import standard_protocols
from storesense_tools.accuracy.render import render_markdown
from storesense_tools.accuracy.rows import write_rows

DEFAULT_OUT = REPO / "docs" / "accuracy.md"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=default_data_root(),
        help="the shared faces folder (default: %(default)s)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--rows", type=Path, help="also write every per-probe row to this CSV")
    ap.add_argument("--cache-dir", type=Path, help="embedding cache root (default ~/.cache)")
    ap.add_argument("--workers", type=int, help="embedding processes (default: up to 2)")
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    t0 = time.monotonic()
    data = args.data.resolve()
    if not data.is_dir():
        console.print(f"[red]no data at {data}[/red] (set --data or STORESENSE_SHARED_DATA)")
        return 2
    protocols = standard_protocols(data)
    if not protocols:
        console.print(f"[red]none of orl/, lfw-dev/, deepface/, faceapi-bbt/ in {data}[/red]")
        return 2
    policy = OpenSetPolicy.from_config()
    report = build_report(
        protocols, policy, data, cache_dir=args.cache_dir, workers=args.workers, console=console
    )
    commit, dirty = git_state()
    argv_shown = " ".join(sys.argv[1:] if argv is None else argv)
    meta = {
        "command": (".venv/bin/python scripts/accuracy_report.py " + argv_shown).strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit[:12],
        "dirty": ", ".join(f"`{d}`" for d in dirty),
        "runtime": f"run time {time.monotonic() - t0:.0f} s (embedding and search "
        f"{report.embed_seconds:.0f} s; near 0 when cached) on {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(report, meta))
    if args.rows:
        write_rows(args.rows, (r for rs in report.rows.values() for r in rs))
    console.log(f"wrote {args.out} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
