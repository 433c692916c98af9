"""Offline evaluation of the suggestions on a purchase history split by time.

Protocol (docs/suggestions.md): models see purchases strictly before ``cutoff``; the truth is
what each customer bought in ``[cutoff, end)``. Customers count if they bought before and in
the test period. "Usual items" are judged on test items the customer had bought before
(HR@10, NDCG@10); "new for you" on test items the customer had never bought but the shop had
sold before the cut-off (Recall@10 = hits / number of such items). Every method ranks the
same customers against the same truth, including the two baselines: popularity and the
repeat-purchase ranking.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np

from hub.shop.categories import NON_PRODUCT
from hub.shop.pos_store import TIME_FMT
from hub.shop.suggest import (
    Interactions,
    SuggestParams,
    als_unseen,
    fit_als,
    load_interactions,
    new_items,
    popular_unseen,
    usual_items,
)


def test_truth(conn: sqlite3.Connection, start: datetime, end: datetime) -> dict[str, set[str]]:
    """Items each customer bought (not cancelled, products only) in ``[start, end)``."""
    truth: dict[str, set[str]] = {}
    for cid, code in conn.execute(
        "SELECT DISTINCT i.customer_id, l.stock_code FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.cancellation = 0 AND l.quantity > 0 AND p.category <> ? "
        "AND i.invoiced_at >= ? AND i.invoiced_at < ?",
        (NON_PRODUCT, start.strftime(TIME_FMT), end.strftime(TIME_FMT)),
    ):
        truth.setdefault(cid, set()).add(code)
    return truth


def hit_ndcg(ranked: list[int], relevant: set[int], k: int) -> tuple[float, float]:
    hits = [i for i, c in enumerate(ranked[:k]) if c in relevant]
    dcg = sum(1.0 / math.log2(i + 2) for i in hits)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return float(bool(hits)), dcg / idcg


def recall(ranked: list[int], relevant: set[int], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant)


Ranker = Callable[[int], list[int]]


def evaluate(
    conn: sqlite3.Connection,
    cutoff: datetime,
    end: datetime,
    params: SuggestParams | None = None,
    blends: tuple[float, ...] = (0.5,),
) -> dict[str, object]:
    """All methods on one split; returns metrics, customer counts and timings."""
    params = params or SuggestParams()
    k = params.k
    t0 = time.perf_counter()
    inter = load_interactions(conn, cutoff, params)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = fit_als(inter, params)
    t_fit = time.perf_counter() - t0
    col = {c: i for i, c in enumerate(inter.items.tolist())}
    uidx = inter.user_index()
    usual_truth: dict[int, set[int]] = {}
    new_truth: dict[int, set[int]] = {}
    for cid, codes in test_truth(conn, cutoff, end).items():
        u = uidx.get(cid)
        if u is None:
            continue
        seen = set(inter.counts.getrow(u).indices.tolist())
        known = {col[c] for c in codes if c in col}
        if known & seen:
            usual_truth[u] = known & seen
        if known - seen:
            new_truth[u] = known - seen

    global_pop = [int(c) for c in popular_unseen(inter, np.array([], int), k)]

    def als_all(u: int) -> list[int]:
        row = inter.counts.getrow(u)
        ids, _ = model.recommend(u, row, N=k, filter_already_liked_items=False)
        return [int(i) for i in ids]

    def als_new(u: int) -> list[int]:
        return [int(i) for i in als_unseen(model, u, inter.counts.getrow(u), k)[0]]

    def blended(p_b: SuggestParams) -> Ranker:  # one closure per blend weight
        return lambda u: usual_items(inter, u, p_b, model)[0].tolist()

    usual_methods: dict[str, Ranker] = {
        "popularity": lambda u: global_pop,
        "repeat-purchase baseline": lambda u: usual_items(inter, u, params)[0].tolist(),
        "ALS (seen items not filtered)": als_all,
    }
    for b in blends:
        p_b = replace(params, usual_blend=b)
        usual_methods[f"repeat + {b:g}×ALS"] = blended(p_b)
    new_methods: dict[str, Ranker] = {
        "popularity (seen filtered)": lambda u: popular_unseen(
            inter, inter.counts.getrow(u).indices, k
        ).tolist(),
        "repeat-purchase baseline": lambda u: usual_items(inter, u, params)[0].tolist(),
        "ALS (seen filtered)": als_new,
        "shipped: ALS + popularity fallback": lambda u: new_items(inter, u, params, model)[
            0
        ].tolist(),
    }
    usual: dict[str, dict[str, float]] = {}
    new: dict[str, dict[str, float]] = {}
    results: dict[str, Any] = {
        "cutoff": cutoff.strftime(TIME_FMT),
        "end": end.strftime(TIME_FMT),
        "train_customers": len(inter.users),
        "train_items": len(inter.items),
        "train_pairs": int(inter.counts.nnz),
        "usual_customers": len(usual_truth),
        "new_customers": len(new_truth),
        "seconds_load": round(t_load, 2),
        "seconds_als_fit": round(t_fit, 2),
        "usual": usual,
        "new": new,
    }
    for name, rank in usual_methods.items():
        t0 = time.perf_counter()
        hn = np.array([hit_ndcg(rank(u), rel, k) for u, rel in usual_truth.items()])
        usual[name] = {
            "HR@10": round(float(hn[:, 0].mean()), 4),
            "NDCG@10": round(float(hn[:, 1].mean()), 4),
            "ms_per_customer": round(1000 * (time.perf_counter() - t0) / len(hn), 3),
        }
    for name, rank in new_methods.items():
        t0 = time.perf_counter()
        rec = [recall(rank(u), rel, k) for u, rel in new_truth.items()]
        hits = [bool(set(rank(u)[:k]) & rel) for u, rel in new_truth.items()]
        new[name] = {
            "Recall@10": round(float(np.mean(rec)), 4),
            "HR@10": round(float(np.mean(hits)), 4),
            "ms_per_customer": round(500 * (time.perf_counter() - t0) / len(rec), 3),
        }
    return results


def markdown(results: dict[str, Any]) -> str:
    """The two result tables as Markdown, for docs/suggestions.md."""
    out = [
        f"Train: before {results['cutoff']} ({results['train_customers']} customers, "
        f"{results['train_items']} items, {results['train_pairs']} customer-item pairs); "
        f"test: until {results['end']}.",
        "",
        f"Usual items ({results['usual_customers']} customers who re-bought something):",
        "",
        "| method | HR@10 | NDCG@10 |",
        "|---|---|---|",
    ]
    for name, m in results["usual"].items():
        out.append(f"| {name} | {m['HR@10']:.3f} | {m['NDCG@10']:.3f} |")
    out += [
        "",
        f"New for you ({results['new_customers']} customers who bought something new):",
        "",
        "| method | Recall@10 | HR@10 |",
        "|---|---|---|",
    ]
    for name, m in results["new"].items():
        out.append(f"| {name} | {m['Recall@10']:.3f} | {m['HR@10']:.3f} |")
    return "\n".join(out)


__all__ = ["Interactions", "evaluate", "hit_ndcg", "markdown", "recall", "test_truth"]
