"""The per-store threshold review: where the store's operating point is, and what to change.

Evidence (``hub.alerts.review.MatchEvidence``): the distances of matches the staff confirmed
(claimed and served, nobody pressed "not this person") and of the "not this person" reports.
Both only exist below the threshold in force, because the hub alerts only there. Hence the
rule this module keeps: **it may recommend a tighter threshold, never a looser one.** Nothing
a store's alerts contain shows the customers the hub did NOT recognise above the threshold, so
loosening is a decision from other evidence (``storesense eval faces`` on a labelled set), made
by a manager on purpose (``faces review --apply --threshold T``), never recommended here.

Decision rule (numbers are the defaults; each reason is printed):
- fewer than ``MIN_ANSWERED`` answered alerts with a distance, or fewer than ``MIN_REPORTS``
  reports: keep (too little to move the operating point on);
- the share of answered alerts that were false matches is at most ``target``: keep;
- else the highest threshold below the current one that brings that share to ``target`` or
  under, placed halfway between the last distance it keeps and the report it excludes; unless
  that loses more than ``MAX_LOSS`` of the confirmed matches — then keep and say the false
  matches sit among genuine ones (a threshold cannot separate them: look at those customers'
  enrolment photos and the door camera instead).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hub.alerts.review import MatchEvidence

TARGET_FALSE_SHARE = 0.02  # at most 1 alert in 50 a "not this person"
MIN_ANSWERED = 30
MIN_REPORTS = 3
MAX_LOSS = 0.20  # never recommend losing more than a fifth of the confirmed matches
BIN = 0.02


@dataclass(frozen=True)
class Recommendation:
    current: float
    threshold: float  # == current: keep
    action: Literal["keep", "tighten"]
    reasons: list[str] = field(default_factory=list)
    confirmed: int = 0
    reports: int = 0
    false_share_now: float | None = None
    false_share_after: float | None = None
    confirmed_lost: int = 0
    reports_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(reports: int, confirmed: int) -> float | None:
    return reports / (reports + confirmed) if reports + confirmed else None


def recommend(
    evidence: MatchEvidence,
    current: float,
    *,
    target: float = TARGET_FALSE_SHARE,
    min_answered: int = MIN_ANSWERED,
    min_reports: int = MIN_REPORTS,
    max_loss: float = MAX_LOSS,
) -> Recommendation:
    """The threshold to use from the store's own evidence (see the module docstring)."""
    conf, rej = sorted(evidence.confirmed), sorted(evidence.rejected)
    n_c, n_r = len(conf), len(rej)
    now = _share(n_r, n_c)
    never_looser = (
        "never looser: the hub alerts only below the threshold in force, so these alerts "
        "cannot show customers missed above it (use storesense eval faces for that)"
    )

    def made(
        threshold: float,
        action: Literal["keep", "tighten"],
        reasons: list[str],
        after: float | None = None,
        lost: int = 0,
        removed: int = 0,
    ) -> Recommendation:
        return Recommendation(
            current=current, threshold=threshold, action=action, reasons=reasons,
            confirmed=n_c, reports=n_r, false_share_now=now, false_share_after=after,
            confirmed_lost=lost, reports_removed=removed,
        )  # fmt: skip

    def keep(*why: str) -> Recommendation:
        return made(current, "keep", [*why, never_looser])

    if n_c + n_r < min_answered:
        return keep(
            f"only {n_c + n_r} answered alert(s) with a distance: at least {min_answered} are "
            "needed to move the operating point"
        )
    assert now is not None
    if now <= target:
        return keep(
            f"{n_r} of {n_c + n_r} answered alerts ({now:.1%}) were 'not this person': within "
            f"the target of {target:.1%}"
        )
    if n_r < min_reports:
        return keep(
            f"{n_r} 'not this person' report(s) ({now:.1%} of answered alerts): at least "
            f"{min_reports} are needed before one wrong match moves the threshold"
        )
    everything = sorted(conf + rej)
    best: Recommendation | None = None
    for r in rej:  # candidate: just below report r, above every distance under it
        below = [d for d in everything if d < r]
        cand = math.floor(((below[-1] + r) / 2 if below else r - 0.005) * 1000) / 1000
        if cand >= current or cand <= 0:
            continue
        kept_r = sum(d < cand for d in rej)
        kept_c = sum(d < cand for d in conf)
        after = _share(kept_r, kept_c)
        if after is not None and after <= target and (best is None or cand > best.threshold):
            best = made(cand, "tighten", [], after, n_c - kept_c, n_r - kept_r)
    if best is None:
        return keep("no threshold below the current one reaches the target")
    loss = best.confirmed_lost / n_c if n_c else 0.0
    if loss > max_loss:
        return keep(
            f"{now:.1%} of answered alerts were 'not this person' (target {target:.1%}), but "
            f"reaching the target needs {best.threshold:.3f}, which would have lost "
            f"{best.confirmed_lost} of {n_c} confirmed customers ({loss:.0%} > {max_loss:.0%}): "
            "the false matches sit among genuine ones; check those customers' enrolment "
            "photos and the door camera instead"
        )
    reasons = [
        f"{n_r} of {n_c + n_r} answered alerts ({now:.1%}) were 'not this person', above the "
        f"target of {target:.1%}",
        f"at {best.threshold:.3f} the store's alerts would have kept {n_r - best.reports_removed}"
        f" report(s) ({best.false_share_after:.1%}) and lost {best.confirmed_lost} of {n_c} "
        f"confirmed customers ({loss:.0%})",
        never_looser,
    ]
    return made(
        best.threshold,
        "tighten",
        reasons,
        best.false_share_after,
        best.confirmed_lost,
        best.reports_removed,
    )


def histogram(evidence: MatchEvidence, current: float, recommended: float | None = None) -> str:
    """Distances in text: one row per ``BIN``, ``#`` confirmed and ``x`` reported, with the
    threshold in force (and the recommended one) marked where it falls."""
    values = evidence.confirmed + evidence.rejected
    if not values:
        return "(no answered alerts with a distance yet)"
    lo = math.floor(min(values) / BIN) * BIN
    hi = max(current, max(values))
    n_bins = max(1, math.ceil((hi - lo) / BIN + 1e-9))
    rows_c = [0] * n_bins
    rows_r = [0] * n_bins
    for d in evidence.confirmed:
        rows_c[min(n_bins - 1, int((d - lo) / BIN))] += 1
    for d in evidence.rejected:
        rows_r[min(n_bins - 1, int((d - lo) / BIN))] += 1
    peak = max(max(rows_c), max(rows_r), 1)
    width = 40
    lines = ["distance      confirmed (#)                              reported (x)"]
    for i in range(n_bins):
        a, b = lo + i * BIN, lo + (i + 1) * BIN
        bar_c = "#" * math.ceil(rows_c[i] * width / peak) if rows_c[i] else ""
        bar_r = "x" * math.ceil(rows_r[i] * width / peak) if rows_r[i] else ""
        marks = []
        if a <= current < b:
            marks.append(f"<- threshold now {current:.3f}")
        if recommended is not None and recommended != current and a <= recommended < b:
            marks.append(f"<- recommended {recommended:.3f}")
        lines.append(
            f"{a:.2f}-{b:.2f}  {bar_c:<{width}} {rows_c[i]:>4}  {bar_r} {rows_r[i] or ''}"
            f"  {' '.join(marks)}".rstrip()
        )
    return "\n".join(lines)
