"""1:N face search and the open-set decision. Pure numpy: no database, no MQTT.

Search is exact: squared Euclidean distance to every template from one BLAS matrix-vector
product against a matrix pre-scaled by -2, plus the templates' precomputed squared norms
(|g|² − 2 g·q; the query's own |q|² is added to the two winners only). Memory bandwidth bounds
it: 1M templates are 512 MB of float32 read once per query (see docs/benchmarks.md).

The decision is open-set, never "nearest wins": a face matches a customer only if it is within
``threshold`` AND the nearest *different* customer is at least ``margin`` farther; a track
matches only if enough of its frames, weighted by quality, agree on the same customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DIM = 128
NO_LABEL = -1


@dataclass(frozen=True, slots=True)
class SearchHit:
    """Nearest customer and nearest *different* customer (label -1 / inf distance if none)."""

    label: int
    distance: float
    second_label: int
    second_distance: float


class TemplateIndex:
    """Exact index; build a new one when the gallery changes (cheap: one copy).

    Not thread-safe: a scratch buffer is reused per query. The hub calls it from one thread.
    """

    def __init__(self, labels: np.ndarray, matrix: np.ndarray) -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if matrix.ndim != 2 or (matrix.size and matrix.shape[1] != DIM):
            raise ValueError(f"template matrix must be (N, {DIM}), got {matrix.shape}")
        if len(labels) != len(matrix):
            raise ValueError("one label per template row is required")
        if not np.isfinite(matrix).all():
            raise ValueError("template matrix contains NaN or infinity")
        self.labels = labels
        self._neg2 = np.ascontiguousarray(matrix * -2.0, dtype=np.float32)
        self._sq = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
        self._buf = np.empty(len(matrix), dtype=np.float32)
        # rows of each label, to mask a customer's templates when looking for the runner-up
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        self._rows = {int(labels[g[0]]): g for g in np.split(order, bounds) if len(g)}

    def __len__(self) -> int:
        return len(self.labels)

    def search(self, queries: np.ndarray) -> list[SearchHit]:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != DIM:
            raise ValueError(f"queries must be (Q, {DIM}), got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("query contains NaN or infinity")
        if len(self.labels) == 0:
            return [SearchHit(NO_LABEL, float("inf"), NO_LABEL, float("inf")) for _ in q]
        if len(q) == 1:
            np.matmul(self._neg2, q[0], out=self._buf)
            return [self._hit(self._buf, q[0])]
        # A track's few queries in one matrix product: the gallery is read once, not Q times.
        partial = q @ self._neg2.T
        return [self._hit(row, qi) for row, qi in zip(partial, q, strict=True)]

    def _hit(self, d2: np.ndarray, q: np.ndarray) -> SearchHit:
        """``d2`` holds -2 g·q per template (overwritten); finds best and runner-up customer."""
        qq = float(q @ q)
        np.add(d2, self._sq, out=d2)
        best_row = int(np.argmin(d2))
        label = int(self.labels[best_row])
        best = _dist(d2[best_row], qq)
        own = self._rows[label]
        if len(own) == len(d2):
            return SearchHit(label, best, NO_LABEL, float("inf"))
        d2[own] = np.inf
        second_row = int(np.argmin(d2))
        return SearchHit(label, best, int(self.labels[second_row]), _dist(d2[second_row], qq))


def _dist(partial_sq: float, qq: float) -> float:
    return float(np.sqrt(max(float(partial_sq) + qq, 0.0)))


@dataclass(frozen=True)
class OpenSetPolicy:
    threshold: float
    margin: float
    min_votes: int = 2
    min_vote_share: float = 0.6

    def decide_one(self, hit: SearchHit) -> int | None:
        """The customer label this single face is accepted as, or None (unknown / ambiguous)."""
        if hit.label == NO_LABEL or hit.distance > self.threshold:
            return None
        if hit.second_distance - hit.distance < self.margin:
            return None
        return hit.label


@dataclass(frozen=True)
class Decision:
    status: Literal["match", "unknown", "pending"]
    label: int | None
    votes: int
    weight_share: float
    best_distance: float | None


@dataclass
class TrackVote:
    """Quality-weighted agreement over the frames of one track."""

    policy: OpenSetPolicy
    _weights: dict[int | None, float] = field(default_factory=dict)
    _votes: dict[int | None, int] = field(default_factory=dict)
    _best: dict[int, float] = field(default_factory=dict)
    _total: float = 0.0
    _frames: int = 0

    def add(self, hit: SearchHit, weight: float) -> None:
        w = max(float(weight), 1e-3)  # a zero-quality frame still counts against a match
        label = self.policy.decide_one(hit)
        self._weights[label] = self._weights.get(label, 0.0) + w
        self._votes[label] = self._votes.get(label, 0) + 1
        self._total += w
        self._frames += 1
        if label is not None:
            self._best[label] = min(self._best.get(label, np.inf), hit.distance)
        elif hit.label != NO_LABEL:
            self._best.setdefault(NO_LABEL, np.inf)
            self._best[NO_LABEL] = min(self._best[NO_LABEL], hit.distance)

    def decide(self, *, finished: bool) -> Decision:
        accepted = {k: v for k, v in self._weights.items() if k is not None}
        nearest = min(self._best.values()) if self._best else None
        if accepted:
            label = max(accepted, key=accepted.__getitem__)
            share = accepted[label] / self._total
            votes = self._votes[label]
            if votes >= self.policy.min_votes and share >= self.policy.min_vote_share:
                return Decision("match", label, votes, share, self._best[label])
        else:
            label, share, votes = None, 0.0, 0
        if finished:
            return Decision("unknown", None, votes, share, nearest)
        return Decision("pending", None, votes, share, nearest)
