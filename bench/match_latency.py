"""1:N match latency of the hub's exact search at 100k and 1M templates.

Random unit-norm 128-d templates, 4 per customer (the search cost depends only on the count),
single queries and a 5-query track batch; p50/p95/p99 over 300 queries after warm-up.

    .venv/bin/python bench/match_latency.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from hub.matcher import TemplateIndex


def _templates(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, 128), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return np.arange(n, dtype=np.int64) // 4, m


def _pct(ms: list[float]) -> str:
    a = np.array(ms)
    return " ".join(f"p{q}={np.percentile(a, q):.2f}" for q in (50, 95, 99)) + " ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    for n in args.sizes:
        labels, matrix = _templates(n)
        t0 = time.perf_counter()
        index = TemplateIndex(labels, matrix)
        build_s = time.perf_counter() - t0
        del matrix
        queries = rng.standard_normal((args.queries, 128), dtype=np.float32)
        for q in queries[:10]:
            index.search(q)
        single = []
        for q in queries:
            t = time.perf_counter()
            index.search(q)
            single.append((time.perf_counter() - t) * 1000)
        batch = []
        for k in range(0, args.queries - 4, 5):
            t = time.perf_counter()
            index.search(queries[k : k + 5])
            batch.append((time.perf_counter() - t) * 1000)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{n:>9,} templates: build {build_s:.2f} s | 1 query {_pct(single)} | "
            f"5-query track {_pct(batch)} | peak RSS {rss_mb:,.0f} MB"
        )


if __name__ == "__main__":
    main()
