"""Suggestions for the customer card: "usual items" and "new for you", computed offline.

Computed by a nightly job (``storesense suggest build``, systemd timer) or on demand, written
to the ``suggestions`` table in one transaction, and served by a primary-key lookup, so the
phone never waits for a model. Two lists:

* usual items: the repeat-purchase ranking — each customer's own items scored by
  ``Σ 2^(-age/half_life)`` over the invoices that contained them, i.e. how often *and* how
  recently; ``usual_blend`` > 0 adds the ALS score of those items (docs/suggestions.md has
  the comparison that set the default);
* new for you: implicit-feedback ALS (``implicit``, Hu/Koren/Volinsky 2008) over
  customer × item purchase counts, items already bought filtered out; customers with a thin
  history (< ``min_items`` distinct items) or unknown to the model get the recent
  best-sellers they have not bought (popularity fallback).

Cancellations, returns and non-products (postage, fees) are not purchases here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from hub.faces import profiles
from hub.shop.categories import NON_PRODUCT
from hub.shop.pos_store import TIME_FMT
from hub.store import db

if TYPE_CHECKING:  # implicit ships no types: this is Any to mypy, a name to the reader
    from implicit.als import AlternatingLeastSquares

log = logging.getLogger(__name__)
POPULAR = "*"  # customer_id of the stored popularity list


@dataclass(frozen=True)
class SuggestParams:
    """Defaults chosen on a September 2011 validation split (docs/suggestions.md)."""

    k: int = 10
    half_life_days: float = 180.0
    popularity_days: int = 30
    min_items: int = 3
    factors: int = 64
    regularization: float = 0.01
    iterations: int = 15
    alpha: float = 5.0
    usual_blend: float = 0.5
    seed: int = 7


@dataclass
class Interactions:
    """Purchases before a cut-off as sparse customer × item matrices (same index space)."""

    users: np.ndarray  # customer ids (str), row order
    items: np.ndarray  # stock codes (str), column order
    counts: sp.csr_matrix  # invoices containing the item
    recency: sp.csr_matrix  # Σ 2^(-age/half_life) over those invoices
    popularity: np.ndarray  # distinct buyers per item in the last popularity_days

    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.users.tolist())}


def load_interactions(
    conn: sqlite3.Connection, cutoff: datetime, params: SuggestParams
) -> Interactions:
    """Every (customer, item, invoice) purchase strictly before ``cutoff``."""
    rows = conn.execute(
        "SELECT DISTINCT i.customer_id, l.stock_code, i.invoice_no, "
        "julianday(?) - julianday(i.invoiced_at) FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no "
        "JOIN pos_products p ON p.stock_code = l.stock_code "
        "WHERE i.cancellation = 0 AND l.quantity > 0 AND p.category <> ? "
        "AND i.invoiced_at < ?",
        (cutoff.strftime(TIME_FMT), NON_PRODUCT, cutoff.strftime(TIME_FMT)),
    ).fetchall()
    if not rows:
        empty = sp.csr_matrix(np.zeros((0, 0), dtype=np.float32))
        return Interactions(np.array([], str), np.array([], str), empty, empty, np.zeros(0))
    cust, code, _inv, age = zip(*rows, strict=True)
    users, u = np.unique(np.array(cust), return_inverse=True)
    items, it = np.unique(np.array(code), return_inverse=True)
    # Ages from the newest purchase, not from the cut-off: the ranking is the same (the decay
    # is exponential) and an old history neither underflows nor loses its best-sellers.
    age_d = np.asarray(age, dtype=np.float64)
    age_d -= age_d.min()
    shape = (len(users), len(items))
    counts = sp.csr_matrix((np.ones(len(u), np.float32), (u, it)), shape=shape)
    decay = np.exp2(-age_d / params.half_life_days).astype(np.float32)
    recency = sp.csr_matrix((decay, (u, it)), shape=shape)
    recent = age_d <= params.popularity_days
    buyers = sp.csr_matrix(
        (np.ones(int(recent.sum()), np.float32), (u[recent], it[recent])), shape=shape
    )
    buyers.data[:] = 1.0  # duplicates were summed: one vote per customer
    popularity = np.asarray(buyers.sum(axis=0), dtype=np.float32).ravel()  # as summed
    popularity += np.asarray(counts.sum(axis=0)).ravel() * 1e-6  # stable tie-break
    counts.sum_duplicates()
    recency.sum_duplicates()
    return Interactions(users, items, counts, recency, popularity)


def fit_als(inter: Interactions, params: SuggestParams) -> AlternatingLeastSquares:
    """ALS on confidence ``alpha × log1p(count)``; single-threaded BLAS inside (implicit
    parallelises itself and warns that a BLAS thread pool on top slows it down)."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    conf = inter.counts.copy()
    conf.data = (params.alpha * np.log1p(conf.data)).astype(np.float32)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            iterations=params.iterations,
            random_state=params.seed,
        )
        model.fit(conf, show_progress=False)
    return model


def _top(scores: np.ndarray, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")[:k]
    return cols[order], scores[order]


def usual_items(
    inter: Interactions,
    u: int,
    params: SuggestParams,
    model: AlternatingLeastSquares | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Item columns and scores of one customer's usual items (only items bought before)."""
    row = inter.recency.getrow(u)
    cols, scores = row.indices, row.data.astype(np.float64)
    if params.usual_blend > 0 and model is not None and len(cols):
        uf = model.user_factors[u]
        als = model.item_factors[cols] @ uf
        scores = scores / max(scores.max(), 1e-9) + params.usual_blend * als
    return _top(scores, cols, params.k)


def popular_unseen(inter: Interactions, seen: np.ndarray, k: int) -> np.ndarray:
    pop = inter.popularity.copy()
    pop[seen] = -np.inf
    order = np.argsort(-pop, kind="stable")[:k]
    return order[np.isfinite(pop[order])]


def new_items(
    inter: Interactions, u: int, params: SuggestParams, model: AlternatingLeastSquares | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Items the customer never bought: ALS, or popularity for a thin history."""
    row = inter.counts.getrow(u)
    if model is None or row.nnz < params.min_items:
        cols = popular_unseen(inter, row.indices, params.k)
        return cols, inter.popularity[cols], "popular"
    return (*als_unseen(model, u, row, params.k), "als")


def als_unseen(
    model: AlternatingLeastSquares, u: int, row: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """ALS top-k among items the customer never bought, each at most once.

    ``implicit`` 0.7 fills a list it cannot fill: with ``N`` above the catalogue it pads with
    item 0 scored 0.0 (on a 6-item catalogue "new for you" showed the customer's own top item
    four times), and a short unseen set is padded with bought items scored -FLT_MAX. So ``N``
    is capped at the catalogue and the answer is filtered here, not trusted: no bought item,
    no -FLT_MAX pad, no repeat.
    """
    n_items = model.item_factors.shape[0]
    ids, scores = model.recommend(
        u, row, N=max(1, min(k, n_items)), filter_already_liked_items=True
    )
    return unique_unseen(np.asarray(ids), np.asarray(scores), row.indices, k)


def unique_unseen(
    ids: np.ndarray, scores: np.ndarray, seen: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` of ``ids`` (in order) that are not in ``seen``, each once, dropping
    the -FLT_MAX padding ``implicit`` uses for "no item"."""
    bought = {int(i) for i in np.asarray(seen).tolist()}
    keep: list[int] = []
    taken: set[int] = set()
    for pos, (i, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True)):
        if s <= -1e37 or int(i) in bought or int(i) in taken:
            continue
        taken.add(int(i))
        keep.append(pos)
        if len(keep) == k:
            break
    idx = np.asarray(keep, dtype=np.int64)
    return ids[idx].astype(np.int64), scores[idx]


@dataclass
class BuildReport:
    cutoff: str
    customers: int
    items: int
    als_customers: int
    popular_customers: int
    seconds_load: float
    seconds_fit: float
    seconds_total: float
    params: dict[str, object]


def build_suggestions(
    conn: sqlite3.Connection,
    cutoff: datetime | None = None,
    params: SuggestParams | None = None,
) -> BuildReport:
    """Recompute every customer's two lists from purchases before ``cutoff`` (default now)
    and swap them into the ``suggestions`` table in one transaction."""
    params = params or SuggestParams()
    cutoff = cutoff or datetime.now().replace(microsecond=0)
    t0 = time.perf_counter()
    inter = load_interactions(conn, cutoff, params)
    t1 = time.perf_counter()
    model = fit_als(inter, params) if len(inter.users) >= 2 and len(inter.items) >= 2 else None
    t2 = time.perf_counter()
    rows: list[tuple[str, str, int, str, float, str]] = []
    n_als = 0
    usual_src = "repeat+als" if params.usual_blend > 0 and model is not None else "repeat"
    for u, cid in enumerate(inter.users.tolist()):
        cols, scores = usual_items(inter, u, params, model)
        rows += [
            (cid, "usual", r, inter.items[c], float(s), usual_src)
            for r, (c, s) in enumerate(zip(cols, scores, strict=True))
        ]
        cols, scores, src = new_items(inter, u, params, model)
        n_als += src == "als"
        rows += [
            (cid, "new", r, inter.items[c], float(s), src)
            for r, (c, s) in enumerate(zip(cols, scores, strict=True))
        ]
    for r, c in enumerate(popular_unseen(inter, np.array([], int), params.k)):
        rows.append((POPULAR, "new", r, inter.items[c], float(inter.popularity[c]), "popular"))
    report = BuildReport(
        cutoff=cutoff.strftime(TIME_FMT),
        customers=len(inter.users),
        items=len(inter.items),
        als_customers=n_als,
        popular_customers=len(inter.users) - n_als,
        seconds_load=round(t1 - t0, 3),
        seconds_fit=round(t2 - t1, 3),
        seconds_total=0.0,
        params=asdict(params),
    )
    with db.write(conn):
        conn.execute("DELETE FROM suggestions")
        conn.executemany("INSERT INTO suggestions VALUES (?,?,?,?,?,?)", rows)
        report.seconds_total = round(time.perf_counter() - t0, 3)
        conn.execute(
            "INSERT INTO suggestion_builds(built_at, cutoff, customers, items, seconds, detail) "
            "VALUES (?,?,?,?,?,?)",
            (
                time.time(),
                report.cutoff,
                report.customers,
                report.items,
                report.seconds_total,
                json.dumps(asdict(report)),
            ),
        )
    log.info("suggestions built: %s", report)
    return report


@dataclass(frozen=True)
class Suggestion:
    stock_code: str
    score: float
    source: str  # "repeat" | "repeat+als" | "als" | "popular"


def lookup(
    conn: sqlite3.Connection, customer_id: str, k: int = 10
) -> tuple[list[Suggestion], list[Suggestion]]:
    """The precomputed ``(usual, new_for_you)`` lists; a customer not in the last build gets
    no usual items and the stored best-sellers."""
    rows = conn.execute(
        "SELECT list, stock_code, score, source FROM suggestions WHERE customer_id = ? "
        "AND rank < ? ORDER BY list, rank",
        (customer_id, k),
    ).fetchall()
    usual = [Suggestion(r[1], r[2], r[3]) for r in rows if r[0] == "usual"]
    new = [Suggestion(r[1], r[2], r[3]) for r in rows if r[0] == "new"]
    if not rows:  # not in the last build (no purchases before its cut-off)
        new = [
            Suggestion(r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT stock_code, score, source FROM suggestions WHERE customer_id = ? "
                "AND list = 'new' AND rank < ? ORDER BY rank",
                (POPULAR, k),
            )
        ]
    return usual, new


def last_build(conn: sqlite3.Connection) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT built_at, cutoff, customers, items, seconds FROM suggestion_builds "
        "ORDER BY build_id DESC LIMIT 1"
    ).fetchone()


class NoBuild(LookupError):
    """No ``suggest build`` has run on this database: there is nothing to serve or export."""


def _build_k_cutoff(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """The last build's items per list (its ``SuggestParams.k``) and cut-off; None if none.

    A lookup asking for more than k gets at most k, so a caller that promises k items (the
    export) checks against it instead of silently handing out shorter lists."""
    row = conn.execute(
        "SELECT detail, cutoff FROM suggestion_builds ORDER BY build_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return int(json.loads(row[0])["params"]["k"]), str(row[1])


def all_customers(conn: sqlite3.Connection) -> list[str]:
    """Every customer a card can be opened for: anyone with a receipt, plus enrolled customers
    without one (the face room's list, ``hub.faces.profiles.enrolled_ids``), sorted. Receipts
    unlinked by erasure (owner ``erased-…``, see ``pos_store.forget_customer_purchases``) lead
    to nobody and are left out."""
    buyers = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT customer_id FROM pos_invoices WHERE customer_id NOT LIKE 'erased-%'"
        )
    }
    # str order is code-point order: SQLite's BINARY collation on UTF-8, as ORDER BY sorts ids
    return sorted(buyers.union(profiles.enrolled_ids(conn)))


def served_lists(
    conn: sqlite3.Connection, k: int
) -> Iterator[tuple[str, list[Suggestion], list[Suggestion]]]:
    """``(customer_id, usual, new_for_you)`` for every customer, as the card serves them.

    Same path as the phone: ``lookup`` (its fallback gives a customer missing from the last
    build the stored best-sellers), then the card's rule that an item bought since the
    build's cut-off is no longer "new for you" (``customer_profile._suggestions``). The
    purchases since the cut-off are read in one query instead of one per customer, which is
    what makes a whole-store export take seconds. Checks come first, not at the first
    ``next()``: ``ValueError`` for a ``k`` outside 1..(what the build stored), ``NoBuild``
    before any build.
    """
    if k < 1:
        raise ValueError(f"ask for at least 1 item per list, not {k}")
    info = _build_k_cutoff(conn)
    if info is None:
        raise NoBuild("no suggestions built yet: run `storesense suggest build` first")
    built_k, cutoff = info
    if k > built_k:
        raise ValueError(f"the last build stored {built_k} items per list; ask for 1 to {built_k}")
    since: dict[str, set[str]] = {}
    for cid, code in conn.execute(
        "SELECT DISTINCT i.customer_id, l.stock_code FROM pos_invoices i "
        "JOIN pos_lines l ON l.invoice_no = i.invoice_no WHERE i.invoiced_at >= ?",
        (cutoff,),
    ):
        since.setdefault(cid, set()).add(code)
    return _serve(conn, all_customers(conn), k, since)


def _serve(
    conn: sqlite3.Connection, customers: list[str], k: int, since: dict[str, set[str]]
) -> Iterator[tuple[str, list[Suggestion], list[Suggestion]]]:
    for cid in customers:
        usual, new = lookup(conn, cid, k)
        bought = since.get(cid)
        if bought:
            new = [s for s in new if s.stock_code not in bought]
        yield cid, usual, new
