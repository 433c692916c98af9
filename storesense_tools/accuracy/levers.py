"""The accuracy levers of issue 13, each measured on its own with a held-out-fold check.

What a lever is here: one change to how an image becomes an embedding (``face_records.Variant``:
gate thresholds, second detection pass, flip averaging), how a customer's several templates
become one distance (``AGGREGATIONS``), or how a distance becomes a decision (``RULES``: the
fixed margin, or score normalisation against the enrolled gallery as a cohort).

How a lever is judged (the same recipe for every row, so rows compare): LFW folds 1–5 hold
disjoint people. For each fold, the rule's structural parameter (margin, cohort size …) and
its threshold are chosen on the *other four* folds — the threshold as the loosest that keeps
at most ``TRAIN_FPIR`` of their strangers matched, the structural parameter as the one with
the best DIR there — and counted on the held-out fold; the five held-out folds are pooled.
DIR counts probes with no usable face as misses (issue 13: a store experiences them as
customers not recognised); FPIR counts strangers with a usable face (a faceless stranger
cannot be matched, and leaving them out of the denominator is the conservative choice).

Everything is numpy over a (probes × customers) distance matrix: LFW is ~5k × 800, so a full
held-out check of one row takes well under a second once the embeddings exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hub.faces.matcher import cohort_stats

TRAIN_FPIR = 0.005  # chosen for half the 1 % budget on the training folds (docs/calibration.md)
COHORT_KS = (5, 10, 20, 40)
MARGINS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10)


@dataclass(frozen=True)
class Split:
    """A protocol as arrays: gallery templates with labels, probes with truth and folds."""

    names: list[str]  # customer label -> identity
    g_emb: np.ndarray  # (T, 128)
    g_label: np.ndarray  # (T,) int
    g_quality: np.ndarray  # (T,) quality weight of the template (for weighted aggregation)
    p_emb: np.ndarray  # (P, 128), NaN rows: no usable face
    p_true: np.ndarray  # (P,) int: customer label, -1 for a stranger
    p_fold: np.ndarray  # (P,) int: LFW fold of the probe's person
    p_ident: list[str] = field(default_factory=list)


def make_split(
    enrol: Sequence[tuple[str, Path]],
    probes: Sequence[tuple[str, Path]],
    emb_of: Callable[[Path], np.ndarray],
    folds: dict[str, int],
    quality_of: Callable[[Path], float] = lambda _: 1.0,
) -> Split:
    """Gallery of the enrolment images with a usable face; everybody else is a stranger."""
    e = [(i, p, emb_of(p)) for i, p in enrol]
    e = [(i, p, v) for i, p, v in e if np.isfinite(v).all()]
    names = sorted({i for i, _, _ in e})
    pos = {n: k for k, n in enumerate(names)}
    g_emb = np.array([v for _, _, v in e], np.float64).reshape(-1, 128)
    g_label = np.array([pos[i] for i, _, _ in e], np.int64)
    g_quality = np.array([quality_of(p) for _, p, _ in e], np.float64)
    p_emb = np.array([emb_of(p) for _, p in probes], np.float64).reshape(-1, 128)
    p_true = np.array([pos.get(i, -1) for i, _ in probes], np.int64)
    p_fold = np.array([folds.get(i, 0) for i, _ in probes], np.int64)
    return Split(names, g_emb, g_label, g_quality, p_emb, p_true, p_fold, [i for i, _ in probes])


# --------------------------------------------------------------------------- aggregation


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def customer_distances(s: Split, agg: str, probes: np.ndarray | None = None) -> np.ndarray:
    """(P, C) distance of each probe (NaN row: no face) to each customer under ``agg``.

    ``min``: the nearest template (the hub's TemplateIndex); ``mean``: mean over the
    customer's templates; ``trimmed``: mean without the farthest one (when ≥ 3); ``centroid``:
    distance to the mean template; ``qcentroid``: to the quality-weighted mean template.
    """
    q = s.p_emb if probes is None else probes
    ok = np.isfinite(q).all(1)
    c = len(s.names)
    out = np.full((len(q), c), np.nan)
    if agg in ("centroid", "qcentroid"):
        w = s.g_quality if agg == "qcentroid" else np.ones(len(s.g_label))
        cent = np.zeros((c, 128))
        np.add.at(cent, s.g_label, s.g_emb * w[:, None])
        tot = np.bincount(s.g_label, weights=w, minlength=c)
        cent /= np.maximum(tot, 1e-12)[:, None]
        out[ok] = _pairwise(q[ok], cent)
        return out
    d = _pairwise(q[ok], s.g_emb)  # (P_ok, T)
    res = np.full((d.shape[0], c), np.inf if agg == "min" else 0.0)
    if agg == "min":
        np.minimum.at(res.T, s.g_label, d.T)
    else:
        # templates of one customer are few (≤ 3 here): loop over customers by group
        order = np.argsort(s.g_label, kind="stable")
        bounds = np.flatnonzero(np.diff(s.g_label[order])) + 1
        for grp in np.split(order, bounds):
            dd = np.sort(d[:, grp], axis=1)
            if agg == "trimmed" and dd.shape[1] >= 3:
                dd = dd[:, :-1]
            res[:, s.g_label[grp[0]]] = dd.mean(1)
    out[ok] = res
    return out


def gallery_cohort(s: Split, agg: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: mean and std of its distances to its ``k`` nearest *other* customers.

    The template side of adaptive S-norm: a customer who sits in a crowded part of face
    space (many look-alikes in the gallery) has a small mean, and a probe's distance to them
    means less. Computed from the gallery alone, so it is known at enrolment time.
    """
    per_template = customer_distances(s, agg, s.g_emb)  # (T, C)
    c = len(s.names)
    mat = np.full((c, c), np.inf)
    np.minimum.at(mat, s.g_label, per_template)
    np.fill_diagonal(mat, np.inf)
    return cohort_stats(mat, k)


# --------------------------------------------------------------------------- decision rules


@dataclass(frozen=True)
class Scored:
    """Per probe: nearest customer, its distance, and a score (higher = more sure; -inf: veto)."""

    nearest: np.ndarray  # (P,) int, -1 for no face
    distance: np.ndarray  # (P,)
    score: np.ndarray  # (P,)


def _nearest_two(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = np.isfinite(d).all(1)
    nearest = np.full(len(d), -1)
    d1 = np.full(len(d), np.nan)
    d2 = np.full(len(d), np.nan)
    if ok.any():
        part = np.argsort(d[ok], axis=1)[:, :2]
        nearest[ok] = part[:, 0]
        rows = np.flatnonzero(ok)
        d1[ok] = d[rows, part[:, 0]]
        d2[ok] = d[rows, part[:, 1]] if d.shape[1] > 1 else np.inf
    return nearest, d1, d2


def score_margin(d: np.ndarray, margin: float) -> Scored:
    """The hub's rule: score = −distance, vetoed unless the runner-up is ``margin`` farther."""
    nearest, d1, d2 = _nearest_two(d)
    score = np.where((d2 - d1) >= margin - 1e-12, -d1, -np.inf)
    score[nearest < 0] = -np.inf
    return Scored(nearest, d1, score)


def score_snorm(
    d: np.ndarray, k: int, gallery: tuple[np.ndarray, np.ndarray] | None = None
) -> Scored:
    """Cohort-normalised score: how many cohort standard deviations closer than the cohort.

    Probe side: the cohort is the probe's ``k`` nearest customers other than the nearest
    one, z_q = (mean − d1) / std. With ``gallery`` (adaptive S-norm), the nearest customer's
    own cohort statistics give z_g likewise, and the score is the mean of the two.
    """
    nearest, d1, _ = _nearest_two(d)
    ok = nearest >= 0
    score = np.full(len(d), -np.inf)
    if ok.any():
        rows = np.flatnonzero(ok)
        dd = d[ok].copy()
        dd[np.arange(len(rows)), nearest[ok]] = np.inf
        mu, sd = cohort_stats(dd, k)
        z = (mu - d1[ok]) / sd
        if gallery is not None:
            gm, gs = gallery
            z = 0.5 * (z + (gm[nearest[ok]] - d1[ok]) / gs[nearest[ok]])
        score[ok] = z
    return Scored(nearest, d1, score)


# --------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Counts:
    """Held-out (or in-sample) counts of one row; DIR counts faceless genuine probes as misses."""

    dir_k: int
    dir_n: int  # every genuine probe, with or without a face
    fpir_k: int
    fpir_n: int  # stranger probes with a usable face
    rank1_k: int
    rank1_n: int  # genuine probes with a usable face
    no_face: int  # genuine + stranger probes without a usable face
    n_probes: int

    @property
    def dir(self) -> float:
        return self.dir_k / self.dir_n if self.dir_n else math.nan

    @property
    def fpir(self) -> float:
        return self.fpir_k / self.fpir_n if self.fpir_n else math.nan


def count(s: Split, sc: Scored, theta: float, mask: np.ndarray | None = None) -> Counts:
    """Counts over the probes in ``mask`` (all by default) at score threshold ``theta``."""
    m = np.ones(len(s.p_true), bool) if mask is None else mask
    face = sc.nearest >= 0
    # a vetoed probe (score -inf) is never accepted, not even at theta = -inf: that theta is
    # what ``theta_for_fpir`` returns when a rule vetoes nearly every stranger, and counting
    # the vetoed as matches there would report rank-1 as DIR (and every stranger as a match)
    accept = face & np.isfinite(sc.score) & (sc.score >= theta)
    gen = m & (s.p_true >= 0)
    strg = m & (s.p_true < 0)
    return Counts(
        dir_k=int((gen & accept & (sc.nearest == s.p_true)).sum()),
        dir_n=int(gen.sum()),
        fpir_k=int((strg & face & accept).sum()),
        fpir_n=int((strg & face).sum()),
        rank1_k=int((gen & face & (sc.nearest == s.p_true)).sum()),
        rank1_n=int((gen & face).sum()),
        no_face=int((m & ~face).sum()),
        n_probes=int(m.sum()),
    )


def theta_for_fpir(s: Split, sc: Scored, mask: np.ndarray, target: float) -> float:
    """Smallest score threshold at which at most ``floor(target × n)`` masked strangers match."""
    strg = mask & (s.p_true < 0) & (sc.nearest >= 0)
    n = int(strg.sum())
    allowed = math.floor(target * n + 1e-9)
    scores = np.sort(sc.score[strg & np.isfinite(sc.score)])[::-1]
    if allowed >= len(scores):
        return -math.inf if not len(scores) else float(np.nextafter(scores[-1], -np.inf))
    # accept iff score >= theta: put theta just above the (allowed+1)-th highest stranger
    return float(np.nextafter(scores[allowed], np.inf))


@dataclass
class HeldOut:
    """One lever row: pooled held-out counts, the per-fold choices, and the all-folds choice."""

    name: str
    counts: Counts
    choices: list[tuple[object, float]]  # per held-out fold: (structural param, theta)
    final: tuple[object, float]  # the same recipe on all five folds: what would ship
    in_sample: Counts  # the final choice counted on all five folds (for reference)


def held_out(
    name: str,
    s: Split,
    scorers: dict[object, Scored],
    target: float = TRAIN_FPIR,
) -> HeldOut:
    """Choose (param, theta) on four folds, count on the fifth; pool; then fit on all five."""
    folds = sorted({int(f) for f in s.p_fold if f > 0})

    def choose(train: np.ndarray) -> tuple[object, float]:
        best: tuple[float, object, float] | None = None
        for param, sc in scorers.items():
            th = theta_for_fpir(s, sc, train, target)
            c = count(s, sc, th, train)
            key = c.dir
            if best is None or key > best[0] + 1e-12:
                best = (key, param, th)
        assert best is not None
        return best[1], best[2]

    choices = []
    pooled: list[Counts] = []
    for f in folds:
        param, th = choose(s.p_fold != f)
        choices.append((param, th))
        pooled.append(count(s, scorers[param], th, s.p_fold == f))
    total = Counts(*(sum(getattr(c, a) for c in pooled) for a in Counts.__dataclass_fields__))
    final = choose(np.ones(len(s.p_fold), bool))
    return HeldOut(name, total, choices, final, count(s, scorers[final[0]], final[1]))


def score_margin_cohort(d: np.ndarray, margin: float, k: int, min_z: float) -> Scored:
    """The margin rule complemented by the cohort: also vetoed unless z_q >= ``min_z``.

    Keeps the hub's distance threshold as the score (so a store's threshold still means a
    distance) and adds the cohort test as one more condition, like the margin.
    """
    base = score_margin(d, margin)
    z = score_snorm(d, k).score
    return Scored(base.nearest, base.distance, np.where(z >= min_z, base.score, -np.inf))


def score_snorm_capped(d: np.ndarray, k: int, cap: float) -> Scored:
    """S-norm score, vetoed beyond the absolute distance ``cap`` (no match is that far)."""
    sn = score_snorm(d, k)
    return Scored(sn.nearest, sn.distance, np.where(sn.distance <= cap, sn.score, -np.inf))


# --------------------------------------------------------------------------- the lever study

RuleFamily = str  # "margin" | "snorm" | "asnorm" | "margin+cohort" | "fixed"


def scorers_for(
    s: Split, agg: str, family: RuleFamily, fixed: tuple[float, float] | None = None
) -> dict[object, Scored]:
    """The structural-parameter grid of one rule family (each scored once, thresholds later)."""
    d = customer_distances(s, agg)
    if family == "fixed":  # today's default, not re-chosen: (threshold, margin)
        assert fixed is not None
        return {("margin", fixed[1]): score_margin(d, fixed[1])}
    if family == "margin":
        return {("margin", m): score_margin(d, m) for m in MARGINS}
    if family == "snorm":
        return {("snorm", k): score_snorm(d, k) for k in COHORT_KS}
    if family == "asnorm":
        return {("asnorm", k): score_snorm(d, k, gallery_cohort(s, agg, k)) for k in COHORT_KS}
    if family == "margin+cohort":
        return {
            ("margin+cohort", m, k, z): score_margin_cohort(d, m, k, z)
            for m in (0.0, 0.04, 0.08)
            for k in (10, 20)
            for z in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
        }
    raise ValueError(f"unknown rule family {family!r}")


def fixed_row(name: str, s: Split, threshold: float, margin: float, agg: str = "min") -> HeldOut:
    """A fixed rule counted per fold without any choice (the old and the shipped defaults)."""
    sc = score_margin(customer_distances(s, agg), margin)
    folds = sorted({int(f) for f in s.p_fold if f > 0})
    pooled = [count(s, sc, -threshold, s.p_fold == f) for f in folds]
    total = Counts(*(sum(getattr(c, a) for c in pooled) for a in Counts.__dataclass_fields__))
    choice = (("margin", margin), -threshold)
    return HeldOut(name, total, [choice] * len(folds), choice, count(s, sc, -threshold))
