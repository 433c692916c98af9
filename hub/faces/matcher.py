"""1:N face search and the open-set decision. Pure numpy: no database, no MQTT.

Search is exact: squared Euclidean distance to every template from one BLAS matrix-vector
product against a matrix pre-scaled by -2, plus the templates' precomputed squared norms
(|g|² − 2 g·q; the two winners' distances are then recomputed directly). Memory bandwidth
bounds it: 1M templates are 512 MB of float32 read once per query, or once per track batch
(see docs/benchmarks.md).

The decision is open-set, never "nearest wins": a face matches a customer only if it is within
``threshold`` AND the nearest *different* customer is at least ``margin`` farther; a track
matches only if enough of its frames, weighted by quality, agree on the same customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from storesense.config import RecognitionConfig

DIM = 128
NO_LABEL = -1
_BATCH = 8  # queries per pass over the gallery; bounds the scratch buffer to 8 x N float32
_ROWS_PER_BLOCK = 4096  # 2 MB of templates: one core's L2 on the dev VM (see _products)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """Nearest customer and nearest *different* customer (label -1 / inf distance if none).

    ``cohort``: distances to the nearest customers other than ``label``, ascending (the
    runner-up first), as many as the index's ``cohort_size``; ``None`` when the index keeps
    no cohort. Score normalisation (``OpenSetPolicy.cohort_k``) reads it.
    """

    label: int
    distance: float
    second_label: int
    second_distance: float
    cohort: tuple[float, ...] | None = None


class TemplateIndex:
    """Exact index; build a new one when the gallery changes (cheap: one copy).

    Not thread-safe: a scratch buffer is reused per query. The hub calls it from one thread.
    """

    def __init__(self, labels: np.ndarray, matrix: np.ndarray, cohort_size: int = 0) -> None:
        """
        Args:
            labels: customer label (>= 0) of each template row.
            matrix: (N, 128) templates.
            cohort_size: keep, per hit, the distances to this many nearest *other*
                customers (``SearchHit.cohort``) for score normalisation; 0: none (the
                search then costs what it always did; with a cohort, one more pass over the
                per-template distances, see bench/face_levers_cost.py).
        """
        if cohort_size < 0:
            raise ValueError("cohort_size must be >= 0")
        self.cohort_size = int(cohort_size)
        matrix = np.asarray(matrix, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if matrix.ndim != 2 or (matrix.size and matrix.shape[1] != DIM):
            raise ValueError(f"template matrix must be (N, {DIM}), got {matrix.shape}")
        if len(labels) != len(matrix):
            raise ValueError("one label per template row is required")
        if not np.isfinite(matrix).all():
            raise ValueError("template matrix contains NaN or infinity")
        if labels.ndim != 1 or (labels.size and labels.min() < 0):
            raise ValueError(f"labels must be a 1-D array of ids >= 0 ({NO_LABEL} means none)")
        self.labels = labels
        # x -2 is exact in binary floating point, so g is recoverable bit for bit: no 2nd copy.
        self._neg2 = np.ascontiguousarray(matrix * -2.0, dtype=np.float32)
        self._sq = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
        # Preallocated: a fresh 4 MB (1M templates) buffer per query costs page faults.
        self._buf = np.empty((_BATCH, len(matrix)), dtype=np.float32)
        # rows of each label, to mask a customer's templates when looking for the runner-up
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        self._rows = {int(labels[g[0]]): g for g in np.split(order, bounds) if len(g)}
        # per-customer minimum over a label-sorted copy: one reduceat per query (cohort only)
        self._order = order
        self._starts = np.concatenate([[0], bounds]).astype(np.int64) if len(order) else order

    def __len__(self) -> int:
        return len(self.labels)

    def search(self, queries: np.ndarray) -> list[SearchHit]:
        """One hit per query row ((Q, 128) or (128,)); pass a track's frames together.

        Non-finite queries raise ValueError instead of returning a garbage nearest customer:
        argmin would silently return the first NaN as the "nearest" customer.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != DIM:
            raise ValueError(f"queries must be (Q, {DIM}), got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("query contains NaN or infinity")
        if len(self.labels) == 0:
            none = () if self.cohort_size else None
            return [SearchHit(NO_LABEL, float("inf"), NO_LABEL, float("inf"), none) for _ in q]
        hits: list[SearchHit] = []
        for start in range(0, len(q), _BATCH):
            block = q[start : start + _BATCH]
            if len(block) == 1:  # matrix-vector: BLAS sgemv, the single-frame hot path
                np.matmul(self._neg2, block[0], out=self._buf[0])
            else:
                self._products(block)
            hits.extend(self._hit(self._buf[k], qk) for k, qk in enumerate(block))
        return hits

    def _products(self, block: np.ndarray) -> None:
        """-2 g·q for a track's few queries, reading the gallery from memory once, not Q times.

        Row blocks small enough to stay in L2 get one sgemv per query: the first pulls the rows
        from memory, the others read them from cache. A plain ``block @ G.T`` (sgemm) is slower
        for a handful of queries: OpenBLAS first packs (copies) the whole gallery. 1M
        templates, 5 queries: 26 ms vs 35 ms for sgemm and 60 ms for 5 separate searches.
        """
        rows = len(self._neg2)
        for s in range(0, rows, _ROWS_PER_BLOCK):
            g = self._neg2[s : s + _ROWS_PER_BLOCK]
            for k, qk in enumerate(block):
                np.matmul(g, qk, out=self._buf[k, s : s + _ROWS_PER_BLOCK])

    def _hit(self, d2: np.ndarray, q: np.ndarray) -> SearchHit:
        """``d2`` holds -2 g·q per template (overwritten); finds best and runner-up customer."""
        np.add(d2, self._sq, out=d2)
        best_row = int(np.argmin(d2))
        label = int(self.labels[best_row])
        best = self._exact_distance(best_row, q)
        own = self._rows[label]
        if len(own) == len(d2):
            return SearchHit(label, best, NO_LABEL, float("inf"), () if self.cohort_size else None)
        d2[own] = np.inf
        second_row = int(np.argmin(d2))
        second = self._exact_distance(second_row, q)
        cohort = self._cohort(d2, q, second) if self.cohort_size else None
        return SearchHit(label, best, int(self.labels[second_row]), second, cohort)

    def _cohort(self, d2: np.ndarray, q: np.ndarray, second: float) -> tuple[float, ...]:
        """Distances to the ``cohort_size`` nearest other customers (own rows already inf).

        ``d2`` is |g|² − 2g·q per template; adding |q|² gives squared distances (to ~1e-6,
        plenty for a cohort mean and spread). The runner-up's exact distance goes first so
        the cohort agrees with ``second_distance`` to the last digit.
        """
        per_customer = np.minimum.reduceat(d2[self._order], self._starts)
        k = min(self.cohort_size, len(per_customer) - 1)
        if k <= 0:
            return ()
        near = np.partition(per_customer, k - 1)[:k]
        near = np.sort(np.sqrt(np.maximum(near + float(q @ q), 0.0)))
        return (second, *(float(x) for x in near[1:]))

    def _exact_distance(self, row: int, q: np.ndarray) -> float:
        """Direct |g - q| in float64 for a winner: |g|² - 2g·q + |q|² loses ~1e-6 to cancellation,
        which is harmless for ranking but would make reported distances differ from dlib's."""
        g = self._neg2[row].astype(np.float64) * -0.5
        return float(np.linalg.norm(g - q))


Aggregation = Literal["nearest", "mean_template"]


def customer_rows(
    labels: np.ndarray, matrix: np.ndarray, aggregation: Aggregation
) -> tuple[np.ndarray, np.ndarray]:
    """The rows a ``TemplateIndex`` searches for ``aggregation`` (``RecognitionConfig``).

    ``nearest``: every template (a probe's distance to a customer is to their nearest one).
    ``mean_template``: one row per customer, the mean of their templates. Why: a customer's
    few enrolment photos each carry their own pose, light and expression; their mean keeps
    what the photos share — the person — and averages the rest away, so a probe lands closer
    to the right customer and no closer to the wrong ones. On LFW folds 1–5 with 3 enrolment
    photos it raised held-out DIR by 5–10 points at the same FPIR, more than any other lever
    (docs/accuracy.md, "Levers"). A customer with one template is unchanged.
    """
    labels = np.asarray(labels, dtype=np.int64)
    matrix = np.asarray(matrix, dtype=np.float32)
    if aggregation == "nearest" or len(labels) == 0:
        return labels, matrix
    if aggregation != "mean_template":
        raise ValueError(f"unknown template aggregation {aggregation!r}")
    uniq, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(uniq), matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, matrix)
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    return uniq, (sums / counts[:, None]).astype(np.float32)


COHORT_STD_FLOOR = 0.01  # a cohort of near-identical distances must not blow a z-score up


def cohort_stats(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's ``k`` smallest finite distances.

    The cohort of score normalisation: for a probe, its distances to the customers *other*
    than the nearest one (the caller masks that one with ``inf``); for a customer, its
    distances to the other customers. Rows with no finite value get NaN (a score built on
    them is never accepted); the standard deviation is floored at ``COHORT_STD_FLOOR``.
    """
    d = np.atleast_2d(np.asarray(distances, dtype=np.float64))
    if k < 1:
        raise ValueError("a cohort needs k >= 1")
    kk = min(k, d.shape[1])
    if kk == 0:
        nan = np.full(len(d), np.nan)
        return nan, nan.copy()
    part = np.partition(d, kk - 1, axis=1)[:, :kk]
    finite = np.isfinite(part)
    n = finite.sum(axis=1)
    vals = np.where(finite, part, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = vals.sum(axis=1) / n
        var = np.where(finite, (part - mu[:, None]) ** 2, 0.0).sum(axis=1) / n
    sd = np.maximum(np.sqrt(var), COHORT_STD_FLOOR)
    sd[n == 0] = np.nan
    return mu, sd


@dataclass(frozen=True)
class OpenSetPolicy:
    """Open-set acceptance rule; values normally come from ``RecognitionConfig``.

    ``threshold`` and ``margin`` were calibrated together on LFW (docs/calibration.md): the
    margin is what keeps strangers out of a large gallery, so changing one without the other
    moves the false-match rate a lot.
    """

    threshold: float
    margin: float
    min_votes: int = 2
    min_vote_share: float = 0.6
    # Score normalisation against the enrolled gallery as a cohort (0: off). A face is also
    # refused unless it is at least ``min_cohort_z`` cohort standard deviations closer to
    # its customer than the mean of its ``cohort_k`` nearest other customers (``cohort_z``):
    # the fixed margin looks at the runner-up only, the cohort at the crowd around the probe.
    cohort_k: int = 0
    min_cohort_z: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.threshold < 2 and 0 <= self.margin < 2):
            raise ValueError("threshold must be in (0, 2) and margin in [0, 2)")
        if self.min_votes < 1 or not 0 < self.min_vote_share <= 1:
            raise ValueError("min_votes must be >= 1 and min_vote_share in (0, 1]")
        if self.cohort_k < 0 or not np.isfinite(self.min_cohort_z):
            raise ValueError("cohort_k must be >= 0 and min_cohort_z finite")

    @classmethod
    def from_config(cls, cfg: RecognitionConfig | None = None) -> OpenSetPolicy:
        """The policy the hub runs with, so evaluation and the door cannot drift apart."""
        from storesense.config import RecognitionConfig

        cfg = cfg or RecognitionConfig()
        return cls(
            cfg.threshold,
            cfg.margin,
            cfg.min_votes,
            cfg.min_vote_share,
            getattr(cfg, "cohort_k", 0),
            getattr(cfg, "min_cohort_z", 0.0),
        )

    def decide_one(self, hit: SearchHit) -> int | None:
        """The customer label this single face is accepted as, or None (unknown / ambiguous).

        Raises ``ValueError`` if the policy normalises against a cohort and ``hit`` carries
        none (an index built without ``cohort_size``): silently skipping the test would run
        the door at a looser rule than the one configured.
        """
        if hit.label == NO_LABEL or hit.distance > self.threshold:
            return None
        if hit.second_distance - hit.distance < self.margin:
            return None
        if self.cohort_k and cohort_z(hit, self.cohort_k) < self.min_cohort_z:
            return None
        return hit.label


def cohort_z(hit: SearchHit, k: int) -> float:
    """(mean − distance) / std over the hit's ``k`` nearest other customers; +inf if < 2.

    A gallery of one or two customers has no crowd to normalise against; the threshold and
    the margin still apply there.
    """
    if hit.cohort is None:
        raise ValueError(
            "this policy normalises scores against a cohort: build the TemplateIndex with "
            f"cohort_size >= {k}"
        )
    c = np.asarray(hit.cohort[:k], dtype=np.float64)
    c = c[np.isfinite(c)]
    if len(c) < 2:
        return float("inf")
    return float((c.mean() - hit.distance) / max(float(c.std()), COHORT_STD_FLOOR))


@dataclass(frozen=True)
class Decision:
    """A track's verdict; ``votes``/``weight_share`` are the leading customer's, for the log."""

    status: Literal["match", "unknown", "pending"]
    label: int | None
    votes: int
    weight_share: float
    best_distance: float | None


MIN_FRAME_WEIGHT = 1e-3  # a zero-quality frame still counts (a little) against a match


@dataclass
class TrackVote:
    """Quality-weighted agreement over the frames of one track.

    Every frame's weight enters the denominator, accepted or not, so a few blurry frames that
    happen to fall inside the threshold cannot outvote sharp frames that say "nobody". A match
    also needs a clear leader: if a second customer gathers ``min_votes`` accepted frames too,
    the track most likely merged two people (or met a look-alike) and it stays unresolved;
    a wrong alert costs more than a missed one.
    """

    policy: OpenSetPolicy
    _weights: dict[int | None, float] = field(default_factory=dict)
    _votes: dict[int | None, int] = field(default_factory=dict)
    _best: dict[int, float] = field(default_factory=dict)
    _total: float = 0.0
    _frames: int = 0

    def add(self, hit: SearchHit, weight: float) -> None:
        """One frame's search result and its quality score in [0, 1] (clipped; NaN = minimum)."""
        w = float(weight)
        w = MIN_FRAME_WEIGHT if not np.isfinite(w) else min(max(w, MIN_FRAME_WEIGHT), 1.0)
        label = self.policy.decide_one(hit)
        self._weights[label] = self._weights.get(label, 0.0) + w
        self._votes[label] = self._votes.get(label, 0) + 1
        self._total += w
        self._frames += 1
        if label is not None:
            self._best[label] = min(self._best.get(label, np.inf), hit.distance)
        elif hit.label != NO_LABEL:
            self._best[NO_LABEL] = min(self._best.get(NO_LABEL, np.inf), hit.distance)

    def decide(self, *, finished: bool) -> Decision:
        """``match`` as soon as the evidence suffices; ``unknown`` only once the track ended."""
        accepted = sorted(((w, k) for k, w in self._weights.items() if k is not None), reverse=True)
        nearest = min(self._best.values()) if self._best else None
        label, share, votes = None, 0.0, 0
        if accepted:
            label = accepted[0][1]
            share = accepted[0][0] / self._total
            votes = self._votes[label]
            clear_leader = len(accepted) == 1 or (
                accepted[1][0] < accepted[0][0]
                and self._votes[accepted[1][1]] < self.policy.min_votes
            )
            if (
                clear_leader
                and votes >= self.policy.min_votes
                and share >= self.policy.min_vote_share
            ):
                return Decision("match", label, votes, share, self._best[label])
        status: Literal["unknown", "pending"] = "unknown" if finished else "pending"
        return Decision(status, None, votes, share, nearest)
