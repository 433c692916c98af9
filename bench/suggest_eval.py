"""Suggestions on the UCI Online Retail history: tune on September, report October.

Run by hand (not in pytest): imports the CSV into a scratch SQLite file with the product's own
importer, picks ALS settings and the usual-items blend on a validation split (train before
2011-09-01, test September), then reports every method on the protocol split (train before
2011-10-01, test October 2011). Prints Markdown for docs/suggestions.md.

    python bench/suggest_eval.py [--csv PATH] [--db /tmp/retail.sqlite3] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from hub.shop.card import customer_card
from hub.shop.pos_import import import_csv
from hub.shop.suggest import SuggestParams, build_suggestions, lookup
from hub.store import db
from storesense.config import StoreConfig
from storesense_tools.retail_eval import evaluate, markdown

DEFAULT_CSV = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "retail"
    / "online-retail-until-2011-10-31.csv.gz"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=str(DEFAULT_CSV))
    ap.add_argument("--db", default="/tmp/storesense-retail-eval.sqlite3")
    ap.add_argument("--quick", action="store_true", help="skip the tuning grid")
    args = ap.parse_args()
    print("load:", os.getloadavg())
    fresh = not Path(args.db).exists()
    conn = db.migrate_db(args.db)
    if fresh:
        rep = import_csv(conn, args.csv)
        print(f"import: {rep.rows} rows in {rep.seconds:.1f} s ({rep.rows_per_s:,.0f} rows/s)")
    val = (datetime(2011, 9, 1), datetime(2011, 10, 1))
    test = (datetime(2011, 10, 1), datetime(2011, 11, 1))
    best = SuggestParams()
    if not args.quick:
        grid = []
        for factors, reg, alpha in itertools.product((32, 64, 128), (0.01, 0.1), (5.0, 20.0)):
            p = replace(best, factors=factors, regularization=reg, alpha=alpha)
            r = evaluate(conn, *val, p, blends=())
            score = r["new"]["ALS (seen filtered)"]["Recall@10"]
            grid.append((score, p))
            print(f"val factors={factors} reg={reg} alpha={alpha}: new Recall@10 {score}")
        best = max(grid, key=lambda g: g[0])[1]
        hl = []
        for half_life in (30.0, 90.0, 180.0, 365.0):
            p = replace(best, half_life_days=half_life)
            r = evaluate(conn, *val, p, blends=())
            ndcg = r["usual"]["repeat-purchase baseline"]["NDCG@10"]
            hl.append((ndcg, p))
            print(f"val half_life={half_life}: usual NDCG@10 {ndcg}")
        best = max(hl, key=lambda g: g[0])[1]
        r = evaluate(conn, *val, best, blends=(0.1, 0.25, 0.5, 1.0))
        blends = {b: r["usual"][f"repeat + {b:g}×ALS"]["NDCG@10"] for b in (0.1, 0.25, 0.5, 1.0)}
        print("val blends (usual NDCG@10):", blends)
        b, ndcg = max(blends.items(), key=lambda kv: kv[1])
        if ndcg > r["usual"]["repeat-purchase baseline"]["NDCG@10"]:
            best = replace(best, usual_blend=b)
        print("chosen on validation:", json.dumps(asdict(best)))
    r = evaluate(conn, *test, best, blends=(best.usual_blend,) if best.usual_blend else (0.5,))
    print()
    print(markdown(r))
    print()
    print(f"load {r['seconds_load']} s, ALS fit {r['seconds_als_fit']} s")
    t0 = time.perf_counter()
    rep = build_suggestions(conn, cutoff=test[0], params=best)
    print(f"build (protocol cut-off): {time.perf_counter() - t0:.1f} s, {asdict(rep)}")
    cids = [r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM pos_invoices LIMIT 500")]
    t0 = time.perf_counter()
    for cid in cids:
        lookup(conn, cid)
    print(f"lookup: {1000 * (time.perf_counter() - t0) / len(cids):.3f} ms per customer")
    cfg = StoreConfig(store_id="bench")
    at = datetime(2011, 10, 31, 18)
    t0 = time.perf_counter()
    for cid in cids[:200]:
        customer_card(conn, cid, cfg, at)
    print(f"customer_card: {1000 * (time.perf_counter() - t0) / 200:.1f} ms per card (mean)")
    print("load:", os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
