"""1:N match latency of the hub's exact search at 100k and 1M templates.

Random unit-norm 128-d templates, 4 per customer (the search cost depends only on the template
count, not on how they group), unit-norm queries: single queries and 5-query track batches
(one matrix product per batch), p50/p95/p99 over --queries timings each, after warm-up.
Prints markdown rows for docs/benchmarks.md. Run it on an otherwise idle machine: the search
is memory-bandwidth bound, so anything else streaming memory shows up in the tail.

    .venv/bin/python bench/match_latency.py [--sizes 100000 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np

from hub.faces.matcher import TemplateIndex

PER_CUSTOMER = 4
TRACK = 5


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, 128), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def _pct(ms: list[float]) -> dict[str, float]:
    a = np.array(ms)
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 95, 99)}


def _time(fn, args: list) -> list[float]:
    for a in args[:10]:  # warm-up: page in the scratch buffers, spin up BLAS threads
        fn(a)
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench(n: int, n_queries: int, seed: int = 0) -> dict:
    """Latency and memory of one index of ``n`` templates."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) // PER_CUSTOMER
    matrix = _unit_rows(rng, n)
    t0 = time.perf_counter()
    index = TemplateIndex(labels, matrix)
    build_s = time.perf_counter() - t0
    del matrix  # the index keeps its own (pre-scaled) copy; the caller's is not needed
    index_mb = sum(a.nbytes for a in (index.labels, index._neg2, index._sq, index._buf)) / 2**20
    queries = _unit_rows(rng, n_queries)
    single = _time(index.search, list(queries))
    tracks = [queries[(np.arange(TRACK) + k) % n_queries] for k in range(n_queries)]
    batch = _time(index.search, tracks)
    return {
        "n": n,
        "build_s": build_s,
        "single": _pct(single),
        "track": _pct(batch),
        "index_mb": index_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    print(f"numpy {np.__version__}, {platform.machine()}, {args.queries} timings per cell")
    print(
        "| templates | 1 query p50 / p95 / p99 | 5-query track p50 / p95 / p99 (per query p50) "
        "| index memory | peak RSS | build |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        r = bench(n, args.queries)
        s, t = r["single"], r["track"]
        print(
            f"| {n:,} | {s['p50']:.2f} / {s['p95']:.2f} / {s['p99']:.2f} ms "
            f"| {t['p50']:.2f} / {t['p95']:.2f} / {t['p99']:.2f} ms ({t['p50'] / TRACK:.2f}) "
            f"| {r['index_mb']:,.0f} MB | {r['peak_rss_mb']:,.0f} MB | {r['build_s']:.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
