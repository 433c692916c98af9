"""The statistics of the report: rates with exact intervals, per-protocol summaries and the
threshold that holds a target false-match rate (the fixed-FPIR operating points).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scipy.stats import beta

from hub.faces.matcher import NO_LABEL, OpenSetPolicy, SearchHit
from storesense_tools.accuracy.rows import ProbeRow

# The false-match rates the operating points are chosen for.
FPIR_TARGETS = (0.001, 0.01)


@dataclass(frozen=True)
class Rate:
    """k events in n independent trials, with its two-sided 95 % Clopper-Pearson interval.

    Exact (binomial) rather than normal-approximation intervals because the interesting rates
    are near 0 (strangers matched) with small n (ORL, the small sets), where Wald intervals
    collapse to zero width and claim a certainty the data does not have.
    """

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return clopper_pearson(self.k, self.n)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact binomial interval; (nan, nan) for no trials."""
    if n <= 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def pct(x: float, digits: int = 1) -> str:
    """``12.3 %``; ``–`` for undefined rates (no trials)."""
    return "–" if not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def fmt_rate(r: Rate, digits: int = 1) -> str:
    """``56.3 % [54.5–58.1] (1,610 of 2,861)``: the point, its 95 % CI and the counts.

    The counts travel with every figure so a reader sees what a percentage is worth.
    """
    if r.n == 0:
        return "– (0 trials)"
    lo, hi = r.ci
    return (
        f"{pct(r.value, digits)} [{100 * lo:.{digits}f}–{100 * hi:.{digits}f}] ({r.k:,} of {r.n:,})"
    )


@dataclass(frozen=True)
class Summary:
    """The figures of one protocol at one policy, counted from its rows."""

    dir: Rate  # genuine probes identified as the right person
    fpir: Rate  # stranger probes matched to anyone
    wrong: Rate  # genuine probes matched to another customer
    rank1: Rate  # nearest customer right, whatever the threshold
    genuine_people: int
    stranger_people: int
    stranger_people_matched: int
    no_face_genuine: int
    no_face_stranger: int
    per_person: dict[str, Rate] = field(default_factory=dict)


def summarise(rows: Sequence[ProbeRow]) -> Summary:
    """The protocol's rates; the counting rules of issue 13.

    A genuine probe (the person is enrolled) with no usable face is a **miss**: it stays in
    the DIR, rank-1 and wrong-customer denominators and is never identified — a store
    experiences it as a customer not recognised, and leaving it out flattered the door. A
    stranger probe with no usable face cannot be matched; FPIR is counted over the strangers
    *with* a face (leaving the faceless ones out is the conservative side). Both kinds of
    faceless probe are also counted on their own.
    """
    g = [r for r in rows if r.genuine]
    s = [r for r in rows if r.has_face and not r.genuine]
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in g:
        per[r.true_id][0] += r.has_face and r.decision == r.true_id
        per[r.true_id][1] += 1
    return Summary(
        dir=Rate(sum(r.has_face and r.decision == r.true_id for r in g), len(g)),
        fpir=Rate(sum(r.decision != "" for r in s), len(s)),
        wrong=Rate(sum(r.has_face and r.decision not in ("", r.true_id) for r in g), len(g)),
        rank1=Rate(sum(r.has_face and r.nearest == r.true_id for r in g), len(g)),
        genuine_people=len({r.true_id for r in g}),
        stranger_people=len({r.true_id for r in s}),
        stranger_people_matched=len({r.true_id for r in s if r.decision}),
        no_face_genuine=sum(not r.has_face and r.genuine for r in rows),
        no_face_stranger=sum(not r.has_face and not r.genuine for r in rows),
        per_person={k: Rate(a, n) for k, (a, n) in per.items()},
    )


def threshold_for_fpir(
    hits: Sequence[SearchHit],
    margin: float,
    target: float,
    *,
    policy: OpenSetPolicy | None = None,
) -> float | None:
    """Largest threshold (3 decimals) at which at most ``floor(target × n)`` strangers match.

    A stranger matches at threshold t under ``margin`` iff its nearest distance is ≤ t and the
    runner-up is at least ``margin`` farther (``OpenSetPolicy.decide_one``), so the k+1-th
    smallest such distance is the first one that must stay out. Rounded *down* so the
    reported threshold is a value one would configure and still keeps the count. None: the
    margin alone keeps FPIR under the target at any threshold.
    """
    n = len(hits)
    allowed = math.floor(target * n + 1e-9)
    if policy is not None:  # every other condition of the policy (margin, cohort) as is
        wide = replace(policy, threshold=1.999, margin=margin)
        scores = sorted(h.distance for h in hits if wide.decide_one(h) is not None)
    else:
        scores = sorted(
            h.distance
            for h in hits
            if h.label != NO_LABEL and h.second_distance - h.distance >= margin
        )
    if allowed >= len(scores):
        return None
    return math.floor(scores[allowed] * 1000 - 1e-6) / 1000


@dataclass
class OperatingPoint:
    """A threshold chosen on LFW strangers for a target FPIR, applied to every data set."""

    target: float
    threshold: float | None
    margin: float
    per_dataset: dict[str, Summary]


def policy_at(policy: OpenSetPolicy, threshold: float | None) -> OpenSetPolicy:
    """The hub's policy with another threshold (``None``: the widest the policy accepts)."""
    return replace(policy, threshold=threshold if threshold is not None else 1.999)
