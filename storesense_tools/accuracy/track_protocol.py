"""The door-track protocol: a probe is a *track* of k images of one person (k = 1, 2, 3).

A visitor at the door gives several frames; the hub decides per track
(``hub.faces.recognizer.decide_track``: one very confident frame alerts at once, otherwise
agreement over the frames). This module measures that rule, not a re-implementation: every
track is decided by ``decide_track`` on the live ``TemplateIndex`` search results, message by
message as the door sends them (``edge.entrance.face_tracker``'s policy):

- **after** (the shipped policy): the first usable frame alone, then the agreement pair, then
  the final message with every usable frame; single-frame alerts at
  ``RecognitionConfig.single_frame_*``;
- **before** (the policy it replaces): the first message once two usable frames exist, then
  the final; agreement only.

Counting rules: DIR = genuine tracks identified as the right person / *all* genuine tracks
(a track with no usable face is a miss); FPIR = stranger tracks matched to anyone / stranger
tracks with at least one usable face (a stranger the door never sees cannot be a false alarm,
and leaving them out only raises FPIR). Every frame weighs 1 (the embedding cache keeps no
quality score). "Frame" is the position in the track (1 = the first image, usable or not) of
the frame whose message made the hub decide; a decision only at the final message is counted
"at the track's end", which at a real door also waits the tracker's ``max_age_s``.

The single-frame threshold and margin are chosen on data: on four LFW folds (people, not
images, are split), the candidate with the highest one-image DIR whose FPIR stays
<= ``target`` for every k; then counted on the fifth fold, for each fold in turn.
Candidates are the hub policy's own threshold and margin, scaled and raised, applied with
``dataclasses.replace`` through ``confident_policy`` — whatever scoring the policy runs, the
candidates follow it.

``lfw_track_set`` builds the LFW protocol; ``folder_track_set`` does the same for any
``<identity>/<images>`` enrol and probe folders (``storesense eval faces --track-size K``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hub.faces.matcher import NO_LABEL, OpenSetPolicy, SearchHit, TemplateIndex
from hub.faces.recognizer import confident_policy, decide_track
from storesense.config import RecognitionConfig
from storesense_tools.accuracy.protocols import lfw_folds
from storesense_tools.accuracy.stats import Rate, clopper_pearson, fmt_rate
from storesense_tools.face_eval import build_index, embed_images, identity_images, lfw_split

K_MAX = 3
TRACK_SIZES = (1, 2, 3)
MIN_EMBEDDINGS = 2  # the door's agreement message (FaceTracker.min_embeddings)
FPIR_TARGET = 0.01
POLICIES = ("before", "after")


@dataclass(frozen=True)
class TrackGroup:
    """Up to ``K_MAX`` images of one person, in file order; a k-track is the first k."""

    person: str
    genuine: bool  # the person is enrolled
    paths: tuple[Path, ...]
    fold: int = 0  # LFW View 2 fold of the person (0: unknown / not LFW)


@dataclass(frozen=True)
class TrackSet:
    """Who is enrolled and which tracks are probed; ``embed_paths`` is the embedding order."""

    enrol: tuple[tuple[str, Path], ...]
    groups: tuple[TrackGroup, ...]
    embed_paths: tuple[Path, ...]
    rule: str
    # (person, image, fold) of never-enrolled people, one frame each: the per-frame false
    # alarm rate of the single-frame rule is counted on these and on the stranger tracks' frames
    stranger_frames: tuple[tuple[str, Path, int], ...] = ()


@dataclass(frozen=True)
class TrackRow:
    """One track's outcome under one publish/decide policy: the unit every figure counts."""

    policy: str  # "before" | "after"
    k: int
    person: str
    genuine: bool
    fold: int
    usable: int  # frames of the track with a usable face
    decision: str  # the customer alerted on, "" none
    frame: int | None  # position (1-based) of the frame whose message decided a match
    at_end: bool  # the match came only with the track's final message
    rule: str | None  # "single_frame" | "agreement" | None


@dataclass(frozen=True)
class TrackSummary:
    dir: Rate
    fpir: Rate
    wrong: Rate  # genuine tracks alerted as another customer
    no_face: int  # genuine tracks without any usable face
    decided_at: dict[str, int]  # "1", "2", …, "end": identified genuine tracks by frame
    single_frame: int  # identified genuine tracks decided by the single-frame rule

    @property
    def mean_frame(self) -> float:
        """Mean position of the deciding frame over identified tracks ("end" counted as k)."""
        n = sum(self.decided_at.values())
        if not n:
            return math.nan
        return sum(_frame_value(k) * v for k, v in self.decided_at.items()) / n


def _frame_value(key: str) -> float:
    return float(key.split("=")[-1]) if key.startswith("end") else float(key)


@dataclass
class TrackReport:
    """Everything the track section shows; ``render_track_section`` only formats it."""

    track_set: TrackSet
    policy: OpenSetPolicy
    single_frame: tuple[float, float] | None  # configured (threshold, margin) it ran with
    rows: list[TrackRow]
    summaries: dict[tuple[str, int], TrackSummary]
    chosen: dict[int, tuple[float, float] | None] = field(default_factory=dict)  # fold -> pick
    held_out_frames: dict[int, Rate] = field(default_factory=dict)  # fold -> per-frame FPIR
    held_out: dict[int, TrackSummary] = field(default_factory=dict)  # k -> pooled held-out
    recommended: tuple[float, float] | None = None


# ---------------------------------------------------------------------------- protocols
def _slots(paths: Sequence[Path], max_slots: int) -> list[tuple[Path, ...]]:
    """Consecutive, disjoint groups of ``K_MAX`` images, at most ``max_slots`` per person."""
    n = min(len(paths) // K_MAX, max_slots)
    return [tuple(paths[i * K_MAX : (i + 1) * K_MAX]) for i in range(n)]


def lfw_track_set(lfw: Path, *, max_slots: int = 10) -> TrackSet:
    """LFW folds 1–5 as door tracks; the rule is written into the report (``TrackSet.rule``).

    Strangers need several images of one never-enrolled person, so some multi-image people
    are held out of the gallery: of the people with >= 3 images, sorted by name, every second
    one (odd positions) is a stranger. Everyone else with >= 2 images is enrolled with their
    first image (as in ``face_eval.lfw_split``). Genuine tracks: enrolled people with >= 4
    images, their images 2+; stranger tracks: all of a stranger's images. Each person gives
    consecutive groups of 3 images (at most ``max_slots``, so a few much-photographed people
    do not dominate); the k-track is the first k images of a group, so k = 1, 2, 3 count the
    same groups and differ only in the frames the door gets.
    """
    _, _, all_paths = lfw_split(lfw)
    by_id: dict[str, list[Path]] = defaultdict(list)
    for p in all_paths:
        by_id[p.parent.name].append(p)
    folds = lfw_folds(lfw)
    multi = sorted(i for i, ps in by_id.items() if len(ps) >= K_MAX)
    strangers = set(multi[1::2])
    enrol = tuple(
        (i, ps[0]) for i, ps in sorted(by_id.items()) if len(ps) >= 2 and i not in strangers
    )
    groups: list[TrackGroup] = []
    for ident, ps in sorted(by_id.items()):
        if ident in strangers:
            groups += [
                TrackGroup(ident, False, g, folds.get(ident, 0)) for g in _slots(ps, max_slots)
            ]
        elif len(ps) >= K_MAX + 1:
            groups += [
                TrackGroup(ident, True, g, folds.get(ident, 0)) for g in _slots(ps[1:], max_slots)
            ]
    rule = (
        "LFW folds 1–5. Of the people with ≥ 3 images, sorted by name, every second one is "
        "never enrolled (a stranger); every other person with ≥ 2 images is enrolled with "
        "their first image (by file name). Genuine tracks: enrolled people with ≥ 4 images, "
        "their images 2+; stranger tracks: all of a stranger's images. Each person's images, "
        f"in file order, make consecutive groups of 3 (at most {max_slots} per person); a "
        "k-image track is the first k images of a group, so every k counts the same groups."
    )
    singles = tuple((i, ps[0], folds.get(i, 0)) for i, ps in sorted(by_id.items()) if len(ps) == 1)
    rule += (
        f" The single-frame rule's per-frame false alarms are also counted on the {len(singles):,} "
        "single-image people (never enrolled) and on every stranger-track image."
    )
    used = {p for _, p in enrol} | {p for g in groups for p in g.paths} | {p for _, p, _ in singles}
    embed = tuple(p for p in all_paths if p in used)
    return TrackSet(enrol, tuple(groups), embed, rule, singles)


def folder_track_set(enroll_dir: Path, probe_dir: Path, k: int) -> TrackSet:
    """Any ``<identity>/<images>`` folders: consecutive groups of ``k`` probe images per person
    (file order, the remainder left out); a person not in the enrol folder is a stranger."""
    if not 1 <= k <= 10:
        raise ValueError(f"track size must be 1–10 images, got {k}")
    for d in (enroll_dir, probe_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a folder of <identity>/<images>")
    enrol = tuple(identity_images(enroll_dir))
    enrolled = {i for i, _ in enrol}
    by_id: dict[str, list[Path]] = defaultdict(list)
    for ident, p in identity_images(probe_dir):
        by_id[ident].append(p)
    groups = tuple(
        TrackGroup(ident, ident in enrolled, tuple(ps[i : i + k]))
        for ident, ps in sorted(by_id.items())
        for i in range(0, len(ps) - k + 1, k)
    )
    paths = tuple(dict.fromkeys([p for _, p in enrol] + [p for g in groups for p in g.paths]))
    rule = (
        f"enrolled: every image of `{enroll_dir}`; tracks: consecutive groups of {k} images "
        f"per person of `{probe_dir}` (file order); people not enrolled are strangers."
    )
    return TrackSet(enrol, groups, paths, rule)


# ---------------------------------------------------------------------------- deciding
def search_groups(
    ts: TrackSet, emb: np.ndarray
) -> tuple[list[str], list[list[SearchHit | None]], list[tuple[int, SearchHit | None]]]:
    """Gallery from the enrolment images with a face; the live search of every track image.

    The search does not depend on the decision rule, so it runs once and every policy and
    candidate threshold re-decides the same hits.
    """
    row = {p: i for i, p in enumerate(ts.embed_paths)}
    e_emb = emb[[row[p] for _, p in ts.enrol]].reshape(-1, 128)
    index, names = build_index([i for i, _ in ts.enrol], e_emb)
    out: list[list[SearchHit | None]] = []
    for g in ts.groups:
        vecs = emb[[row[p] for p in g.paths]].reshape(-1, 128)
        ok = np.isfinite(vecs).all(axis=1)
        found = iter(index.search(vecs[ok]) if ok.any() else [])
        out.append([next(found) if f else None for f in ok])
    # (fold, hit) of every stranger frame: the single images and the stranger tracks' images
    stranger_imgs = [(p, fold) for _, p, fold in ts.stranger_frames] + [
        (p, g.fold) for g in ts.groups if not g.genuine for p in g.paths
    ]
    found_frames = _search_each(index, emb, row, [p for p, _ in stranger_imgs])
    frames = [(fold, h) for (_, fold), h in zip(stranger_imgs, found_frames, strict=True)]
    return names, out, frames


def _search_each(
    index: TemplateIndex, emb: np.ndarray, row: dict[Path, int], paths: list[Path]
) -> list[SearchHit | None]:
    if not paths:
        return []
    vecs = emb[[row[p] for p in paths]].reshape(-1, 128)
    ok = np.isfinite(vecs).all(axis=1)
    found = iter(index.search(vecs[ok]) if ok.any() else [])
    return [next(found) if f else None for f in ok]


def decide_group(
    hits: Sequence[SearchHit | None],
    policy: OpenSetPolicy,
    confident: OpenSetPolicy | None,
    *,
    first_embeddings: int,
) -> tuple[int | None, int | None, bool, str | None]:
    """(label, frame, at_end, rule) of one track, message by message as the door sends them.

    Messages: when ``first_embeddings`` usable frames exist, when ``MIN_EMBEDDINGS`` exist
    (if later), and the final one with every usable frame. ``hits`` holds None for frames
    without a usable face (they send nothing).
    """
    usable = [(pos, h) for pos, h in enumerate(hits, start=1) if h is not None]
    if not usable:
        return None, None, False, None
    sends = [
        (j, False)
        for j in range(1, len(usable) + 1)
        if j == first_embeddings or (first_embeddings < j == MIN_EMBEDDINGS)
    ]
    sends.append((len(usable), True))
    for n, final in sends:
        frames = [(h, 1.0) for _, h in usable[:n]]
        verdict = decide_track(policy, confident, frames, finished=final)
        if verdict.decision.status == "match":
            return verdict.decision.label, usable[n - 1][0], final, verdict.rule
        if verdict.decision.status == "unknown":
            break
    return None, None, False, None


def _rows(
    ts: TrackSet,
    names: list[str],
    hits: list[list[SearchHit | None]],
    policy: OpenSetPolicy,
    confident: OpenSetPolicy | None,
    name: str,
    ks: Sequence[int],
) -> list[TrackRow]:
    first = 1 if name == "after" else MIN_EMBEDDINGS
    active = confident if name == "after" else None
    out = []
    for g, gh in zip(ts.groups, hits, strict=True):
        for k in ks:
            if k > len(gh):
                continue
            label, frame, at_end, rule = decide_group(
                gh[:k], policy, active, first_embeddings=first
            )
            out.append(
                TrackRow(
                    name,
                    k,
                    g.person,
                    g.genuine,
                    g.fold,
                    sum(h is not None for h in gh[:k]),
                    names[label] if label is not None and label != NO_LABEL else "",
                    frame,
                    at_end,
                    rule,
                )
            )
    return out


def summarise_tracks(rows: Iterable[TrackRow]) -> TrackSummary:
    rows = list(rows)
    g = [r for r in rows if r.genuine]
    s = [r for r in rows if not r.genuine and r.usable]
    hit = [r for r in g if r.decision == r.person]
    at: Counter[str] = Counter()
    for r in hit:
        at[f"end={r.k}" if r.at_end else str(r.frame)] += 1
    return TrackSummary(
        dir=Rate(len(hit), len(g)),
        fpir=Rate(sum(r.decision != "" for r in s), len(s)),
        wrong=Rate(sum(r.decision not in ("", r.person) for r in g), len(g)),
        no_face=sum(r.usable == 0 for r in g),
        decided_at=dict(sorted(at.items())),
        single_frame=sum(r.rule == "single_frame" for r in hit),
    )


# ---------------------------------------------------------------------------- choosing
def candidates(policy: OpenSetPolicy) -> list[tuple[float, float]]:
    """(threshold, margin) pairs, all stricter than ``policy``: its threshold scaled by
    0.60–0.98 and its margin raised by 0–0.08 (the agreement rule itself is no candidate:
    one frame must be held to more than what two agreeing frames need)."""
    thr = sorted({round(policy.threshold * f / 100, 3) for f in range(60, 99, 2)})
    mar = sorted({round(policy.margin + d, 3) for d in (0.0, 0.02, 0.04, 0.06, 0.08)})
    return [(t, m) for t in thr for m in mar if 0 < t < 2 and 0 <= m < 2]


def choose_single_frame(
    ts: TrackSet,
    names: list[str],
    hits: list[list[SearchHit | None]],
    policy: OpenSetPolicy,
    *,
    frames: Sequence[tuple[int, SearchHit | None]] = (),
    target: float = FPIR_TARGET,
    ks: Sequence[int] = TRACK_SIZES,
) -> tuple[dict[int, tuple[float, float] | None], dict[int, TrackSummary], dict[int, Rate]]:
    """Per held-out fold: the pick on the other folds, the pooled held-out figures per k, and
    the held-out per-frame false alarm rate of the single-frame rule.

    The pick maximises one-image DIR on the training folds subject to: track FPIR <=
    ``target`` for every k, and the 95 % upper bound (Clopper-Pearson) of the single-frame
    rule's per-*frame* false alarm rate on the stranger ``frames`` <= ``target`` / ``K_MAX``
    (a stranger whose k frames each had that
    chance stays under ``target``: the union bound; this is what makes the choice bite when
    the tracks alone are too few to see 1 %). Ties: the stricter candidate. Each candidate
    decides every group once; the five rotations only count those decisions per fold.
    """
    folds = sorted({g.fold for g in ts.groups})
    cands = candidates(policy)
    has_face = {
        (gi, k): any(h is not None for h in gh[:k]) for gi, gh in enumerate(hits) for k in ks
    }
    labels: list[dict[tuple[int, int], int | None]] = []
    for t, m in cands:
        conf = dataclasses.replace(policy, threshold=t, margin=m)
        labels.append(
            {
                (gi, k): decide_group(gh[:k], policy, conf, first_embeddings=1)[0]
                for gi, gh in enumerate(hits)
                for k in ks
            }
        )
    chosen: dict[int, tuple[float, float] | None] = {}
    for f in folds:
        train = [gi for gi, g in enumerate(ts.groups) if g.fold != f]
        gen = [gi for gi in train if ts.groups[gi].genuine]
        train_frames = [h for fold, h in frames if fold != f and h is not None]
        best: tuple[float, float, float] | None = None
        pick: tuple[float, float] | None = None
        for (t, m), lab in zip(cands, labels, strict=True):
            conf = dataclasses.replace(policy, threshold=t, margin=m)
            false_frames = sum(conf.decide_one(h) is not None for h in train_frames)
            # the 95 % upper bound, not the point: people never seen are what counts
            upper = clopper_pearson(false_frames, len(train_frames))[1] if train_frames else 0.0
            feasible = upper <= target / K_MAX
            for k in ks:
                s = [gi for gi in train if not ts.groups[gi].genuine and has_face[(gi, k)]]
                false = sum(lab[(gi, k)] is not None for gi in s)
                if false > math.floor(target * len(s) + 1e-9):
                    feasible = False
                    break
            if not feasible:
                continue
            right = sum(
                (x := lab[(gi, 1)]) is not None and names[x] == ts.groups[gi].person for gi in gen
            )
            score = (right / len(gen) if gen else 0.0, -t, m)  # ties: the stricter
            if best is None or score > best:
                best, pick = score, (t, m)
        chosen[f] = pick
    held: dict[int, list[TrackRow]] = defaultdict(list)
    for f in folds:
        pick = chosen[f]
        held_conf = (
            None if pick is None else dataclasses.replace(policy, threshold=pick[0], margin=pick[1])
        )
        sub = [(g, gh) for g, gh in zip(ts.groups, hits, strict=True) if g.fold == f]
        sub_ts = dataclasses.replace(ts, groups=tuple(g for g, _ in sub))
        for r in _rows(sub_ts, names, [gh for _, gh in sub], policy, held_conf, "after", ks):
            held[r.k].append(r)
    per_frame: dict[int, Rate] = {}
    for f in folds:
        pick = chosen[f]
        test = [h for fold, h in frames if fold == f and h is not None]
        if pick is None or not test:
            continue
        held_conf = dataclasses.replace(policy, threshold=pick[0], margin=pick[1])
        per_frame[f] = Rate(sum(held_conf.decide_one(h) is not None for h in test), len(test))
    return chosen, {k: summarise_tracks(rs) for k, rs in sorted(held.items())}, per_frame


# ---------------------------------------------------------------------------- entry points
def evaluate_tracks(
    ts: TrackSet,
    cfg: RecognitionConfig | None = None,
    *,
    emb: np.ndarray | None = None,
    emb_paths: Sequence[Path] | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    ks: Sequence[int] = TRACK_SIZES,
    choose: bool = True,
) -> TrackReport:
    """Rows and summaries for both policies at ``cfg`` (the hub's config by default).

    ``emb`` is an embedding array in ``emb_paths`` order (default ``ts.embed_paths``), e.g.
    the accuracy report's embedding of every LFW image, which holds every image a track set
    uses; without it ``embed_images`` embeds (and caches) just ``ts.embed_paths``.
    ``choose`` also runs the fold-held-out choice of the single-frame threshold (LFW folds).
    """
    cfg = cfg or RecognitionConfig()
    if emb is None:
        emb = embed_images(
            ts.embed_paths, cache_dir=cache_dir, workers=workers, label="tracks", model=cfg.model
        )
    elif emb_paths is not None:
        row = {p: i for i, p in enumerate(emb_paths)}
        missing = [p for p in ts.embed_paths if p not in row]
        if missing:
            raise ValueError(f"{len(missing)} track images have no embedding, e.g. {missing[0]}")
        emb = emb[[row[p] for p in ts.embed_paths]]
    policy = OpenSetPolicy.from_config(cfg)
    confident = confident_policy(policy, cfg)
    names, hits, frames = search_groups(ts, emb)
    rows = _rows(ts, names, hits, policy, confident, "before", ks) + _rows(
        ts, names, hits, policy, confident, "after", ks
    )
    summaries = {
        (p, k): summarise_tracks(r for r in rows if r.policy == p and r.k == k)
        for p in POLICIES
        for k in ks
        if any(r.k == k for r in rows)
    }
    report = TrackReport(
        ts,
        policy,
        None if confident is None else (confident.threshold, confident.margin),
        rows,
        summaries,
    )
    if choose and len({g.fold for g in ts.groups} - {0}) >= 2:
        report.chosen, report.held_out, report.held_out_frames = choose_single_frame(
            ts, names, hits, policy, frames=frames, ks=ks
        )
        picks = [p for p in report.chosen.values() if p is not None]
        # the strictest of the per-fold picks: each was chosen on four folds only
        report.recommended = min(picks, key=lambda p: (p[0], -p[1])) if picks else None
    return report


def run_track_eval(
    enroll_dir: Path,
    probe_dir: Path,
    out_csv: Path,
    k: int,
    cfg: RecognitionConfig | None = None,
    *,
    workers: int | None = None,
) -> dict:
    """``storesense eval faces --track-size K``: rows to ``out_csv``, the JSON summary back."""
    ts = folder_track_set(enroll_dir, probe_dir, k)
    report = evaluate_tracks(ts, cfg, workers=workers, ks=(k,), choose=False)
    write_track_rows(out_csv, report.rows)
    return track_summary_json(report) | {"track_size": k, "tracks": len(ts.groups)}


def write_track_rows(path: Path, rows: Iterable[TrackRow]) -> None:
    """One CSV row per track and policy: what every figure is counted from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["policy", "k", "true_id", "genuine", "fold", "usable", "decision", "frame",
             "at_end", "rule"]
        )  # fmt: skip
        for r in rows:
            w.writerow(
                [r.policy, r.k, r.person, int(r.genuine), r.fold, r.usable, r.decision,
                 "" if r.frame is None else r.frame, int(r.at_end), r.rule or ""]
            )  # fmt: skip


def track_summary_json(report: TrackReport) -> dict:
    """The figures ``storesense eval faces --track-size K`` prints."""
    out: dict = {
        "threshold": report.policy.threshold,
        "margin": report.policy.margin,
        "single_frame": report.single_frame,
    }
    for (p, k), s in report.summaries.items():
        out[f"{p}_k{k}"] = {
            "dir": round(s.dir.value, 4) if s.dir.n else None,
            "fpir": round(s.fpir.value, 4) if s.fpir.n else None,
            "genuine_tracks": s.dir.n,
            "stranger_tracks_with_face": s.fpir.n,
            "no_face_genuine_tracks": s.no_face,
            "decided_at_frame": s.decided_at,
            "single_frame_alerts": s.single_frame,
        }
    return out


# ---------------------------------------------------------------------------- markdown
def _at(s: TrackSummary) -> str:
    n = sum(s.decided_at.values())
    if not n:
        return "–"
    parts = []
    for key, v in s.decided_at.items():
        label = "end" if key.startswith("end") else f"#{key}"
        parts.append(f"{label} {100 * v / n:.0f} %")
    return ", ".join(parts)


def render_track_section(report: TrackReport, *, heading: str = "##") -> str:
    """Markdown for docs/accuracy.md: the rule, before/after per k, the held-out choice."""
    pol = report.policy
    sf = report.single_frame
    lines = [
        f"{heading} Door tracks: one confident frame, or agreement (k = 1, 2, 3 images)",
        "",
        report.track_set.rule,
        "",
        "Decided by the hub's own rule (`hub.faces.recognizer.decide_track`) on the live "
        "search, message by message as the door sends them: **before** = first message once 2 "
        "usable frames exist, agreement only (≥ "
        f"{pol.min_votes} accepted frames, ≥ {100 * pol.min_vote_share:.0f} % of the weight); "
        "**after** = the first usable frame at once, then the agreement pair, then the final "
        "message; one frame alerts alone if it passes the single-frame rule "
        + (
            f"(distance ≤ {sf[0]:.3f}, margin ≥ {sf[1]:.3f}; the agreement rule is "
            f"{pol.threshold:.3f} / {pol.margin:.3f})."
            if sf
            else "(disabled in this configuration)."
        ),
        "DIR counts genuine tracks with no usable face as misses; FPIR is over stranger "
        "tracks with at least one usable face. *Frame* = where in the track the deciding "
        "frame was (#1 = the first image); *end* = only at the track's final message.",
        "",
        "| k | policy | DIR | FPIR | wrong customer | no-face tracks | decided at | "
        "single-frame alerts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (p, k), s in sorted(report.summaries.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(
            f"| {k} | {p} | {fmt_rate(s.dir)} | {fmt_rate(s.fpir, 2)} | {fmt_rate(s.wrong, 2)} | "
            f"{s.no_face} | {_at(s)} | {s.single_frame} |"
        )
    if report.chosen:
        lines += [
            "",
            "**Choosing the single-frame rule on data.** For each LFW fold in turn: on the other "
            "four folds, the (threshold, margin) with the highest one-image DIR whose track FPIR "
            f"stays ≤ {100 * FPIR_TARGET:.0f} % for every k and whose per-frame false alarm rate "
            "on single stranger images stays, at its 95 % upper bound, ≤ "
            f"{100 * FPIR_TARGET / K_MAX:.2f} % (so a "
            f"stranger's {K_MAX} frames stay under {100 * FPIR_TARGET:.0f} %; candidates: the "
            "agreement threshold × 0.60–0.98, its margin + 0–0.08); then counted on the "
            "held-out fold. Picks: "
            + ", ".join(
                f"fold {f}: " + ("none" if c is None else f"{c[0]:.3f} / {c[1]:.3f}")
                for f, c in sorted(report.chosen.items())
            )
            + ".",
            "",
            "| k | held-out DIR (pooled over the 5 folds) | held-out FPIR | decided at |",
            "|---|---|---|---|",
        ]
        for k, s in report.held_out.items():
            lines.append(f"| {k} | {fmt_rate(s.dir)} | {fmt_rate(s.fpir, 2)} | {_at(s)} |")
        if report.held_out_frames:
            pooled = Rate(
                sum(r.k for r in report.held_out_frames.values()),
                sum(r.n for r in report.held_out_frames.values()),
            )
            lines += [
                "",
                "Held-out per-frame false alarms of the single-frame rule (stranger images, "
                f"pooled over the 5 folds): {fmt_rate(pooled, 2)}.",
            ]
        if report.recommended:
            lines += [
                "",
                f"The strictest of the five picks, {report.recommended[0]:.3f} / "
                f"{report.recommended[1]:.3f}, is the recommended default "
                "(`recognition.single_frame_threshold` / `single_frame_margin`).",
            ]
    lines += [
        "",
        "Limits: a track here is k press photos of one person, taken on different days, so its "
        "frames disagree more than consecutive frames at a door do (which favours agreement "
        "less than a door would); door cameras add blur, backlight and downward angles.",
        "",
    ]
    return "\n".join(lines)
