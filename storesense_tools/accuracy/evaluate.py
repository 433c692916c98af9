"""Embed, search and decide every protocol with the live pipeline and matcher; build the Report.

Also the held-out check of the operating points and the diagnosis of images without a
usable face.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

from hub.faces.matcher import NO_LABEL, OpenSetPolicy, SearchHit
from storesense.config import RecognitionConfig
from storesense.face_models import DLIB_RESNET, FACE_MODELS
from storesense_tools.accuracy.checkout import calibration
from storesense_tools.accuracy.face_records import FaceRecords, face_records, live_variant, select
from storesense_tools.accuracy.protocols import Protocol, lfw_folds
from storesense_tools.accuracy.render_levers import LeverStudy, lever_study, standard_specs
from storesense_tools.accuracy.render_models import model_study
from storesense_tools.accuracy.rows import ProbeRow, rel_path
from storesense_tools.accuracy.stats import (
    FPIR_TARGETS,
    OperatingPoint,
    Summary,
    fmt_rate,
    policy_at,
    summarise,
    threshold_for_fpir,
)
from storesense_tools.face_eval import build_index, lfw_split


@dataclass
class Searched:
    """A protocol after embedding and 1:N search: everything a decision rule needs.

    Kept separate from the decision so other thresholds (the fixed-FPIR operating points)
    re-decide the same search results instead of searching again.
    """

    protocol: Protocol
    names: list[str]  # gallery identities; SearchHit labels index this
    enrol_no_face: list[tuple[str, Path]]
    offered: list[str]  # identities offered for enrolment
    probes: list[tuple[str, Path]]
    hits: list[SearchHit | None]  # None: the probe image has no usable face

    @property
    def enrolled(self) -> set[str]:
        return set(self.names)


def search(protocol: Protocol, emb: np.ndarray, cohort_size: int = 0) -> Searched:
    """Gallery from the enrolment images with a usable face, search every probe with one.

    ``cohort_size``: keep each hit's cohort (a policy with ``cohort_k`` needs it).
    """
    row = {p: k for k, p in enumerate(protocol.embed_paths)}
    e_emb = emb[[row[p] for _, p in protocol.enrol]].reshape(-1, 128)
    index, names = build_index([i for i, _ in protocol.enrol], e_emb, cohort_size)
    no_face = [
        pair for pair, e in zip(protocol.enrol, e_emb, strict=True) if not np.isfinite(e).all()
    ]
    p_emb = emb[[row[p] for _, p in protocol.probes]].reshape(-1, 128)
    ok = np.isfinite(p_emb).all(axis=1)
    found = iter(index.search(p_emb[ok]) if ok.any() else [])
    hits = [next(found) if f else None for f in ok]
    return Searched(
        protocol,
        names,
        no_face,
        list(dict.fromkeys(i for i, _ in protocol.enrol)),
        list(protocol.probes),
        hits,
    )


def decide(s: Searched, policy: OpenSetPolicy, data_root: Path) -> list[ProbeRow]:
    """Per-probe rows under ``policy`` (the live ``decide_one``: single frame)."""
    enrolled = s.enrolled
    rows = []
    for (ident, path), hit in zip(s.probes, s.hits, strict=True):
        rel = rel_path(path, data_root)
        if hit is None:
            rows.append(
                ProbeRow(
                    s.protocol.key, rel, ident, ident in enrolled, False, "", math.nan, math.nan, ""
                )
            )
            continue
        d = policy.decide_one(hit)
        rows.append(
            ProbeRow(
                s.protocol.key,
                rel,
                ident,
                ident in enrolled,
                True,
                s.names[hit.label] if hit.label != NO_LABEL else "",
                hit.distance,
                hit.second_distance,
                s.names[d] if d is not None else "",
            )
        )
    return rows


def _outside_fold(folds: dict[str, int], fold: int) -> Callable[[str], bool]:
    """Keeps the people not in ``fold``: the ones a threshold for that fold is fitted on."""
    return lambda person: folds.get(person) != fold


def stranger_hits(s: Searched, keep: Callable[[str], bool] = lambda _: True) -> list[SearchHit]:
    """Search results of the stranger probes with a usable face (optionally some people only)."""
    enrolled = s.enrolled
    return [
        h
        for (i, _), h in zip(s.probes, s.hits, strict=True)
        if h is not None and i not in enrolled and keep(i)
    ]


def diagnose_no_face(paths: Sequence[Path], console: Console | None = None) -> dict[Path, str]:
    """Why an image has no usable face: unreadable, no face found, or the gate's reasons.

    Runs only detection, alignment and the gate (no ResNet; a few ms an image), so it is not
    cached. Tells apart a detector miss from a deliberate quality rejection, which matter
    differently: a rejected face is the gate doing its job, a missed one is a recall problem.
    """
    if not paths:
        return {}
    from edge.entrance.face_pipeline import FaceImageError, FacePipeline, load_rgb

    pipe = FacePipeline.for_photos()
    out: dict[Path, str] = {}
    with Progress(transient=True, console=console) as progress:
        task = progress.add_task(
            f"diagnosing {len(paths)} images without a usable face", total=len(paths)
        )
        for p in paths:
            try:
                rgb = load_rgb(p)
            except FaceImageError:
                out[p] = "unreadable"
                progress.advance(task)
                continue
            obs = pipe.analyse_rgb(rgb)
            if not obs:
                out[p] = "no face detected"
            else:
                reasons = sorted({r for o in obs for r in o.quality.reasons})
                out[p] = "gate: " + (", ".join(reasons) if reasons else "passed on re-run")
            progress.advance(task)
    return out


@dataclass
class Report:
    """Everything docs/accuracy.md shows; ``render_markdown`` only formats it."""

    data_root: Path
    policy: OpenSetPolicy
    searched: dict[str, Searched]
    rows: dict[str, list[ProbeRow]]
    summaries: dict[str, Summary]
    no_face_reason: dict[Path, str]
    reference: str | None  # the data set the operating points are chosen on (LFW)
    operating_points: list[OperatingPoint] = field(default_factory=list)
    folds: dict[str, int] = field(default_factory=dict)
    per_fold: dict[int, Summary] = field(default_factory=dict)
    held_out: dict[float, tuple[Summary, list[float | None]]] = field(default_factory=dict)
    label_errors: dict[str, str] = field(default_factory=dict)
    embed_seconds: float = 0.0  # ~0 when every embedding came from the cache
    records: dict[str, FaceRecords] = field(default_factory=dict)  # per protocol key (first)
    models: LeverStudy | None = None  # dlib ResNet and SFace side by side (render_models)
    levers: LeverStudy | None = None
    track_section: str | None = None  # track_protocol.render_track_section, when present


def build_report(
    protocols: Sequence[Protocol],
    policy: OpenSetPolicy,
    data_root: Path,
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
    reference: str | None = "lfw",
    console: Console | None = None,
) -> Report:
    """Embed (cached), search, decide and count every protocol; choose the operating points."""
    console = console or Console(stderr=True)
    emb_cache: dict[tuple[Path, ...], np.ndarray] = {}
    records: dict[str, FaceRecords] = {}
    searched: dict[str, Searched] = {}
    variant = live_variant()
    model = RecognitionConfig().model  # the headline is the door as it ships
    t0 = time.monotonic()
    for p in protocols:
        if p.embed_paths not in emb_cache:
            console.log(
                f"{p.title}: face records of {len(p.embed_paths):,} images, {model} (cached "
                "after the first run)"
            )
            rec = face_records(
                p.embed_paths, workers=workers, cache_dir=cache_dir, label=p.title, model=model
            )
            emb_cache[p.embed_paths] = select(rec, variant)[0]
            records[p.key] = rec
        searched[p.key] = search(p, emb_cache[p.embed_paths], policy.cohort_k)
    embed_seconds = time.monotonic() - t0
    rows = {k: decide(s, policy, data_root) for k, s in searched.items()}
    summaries = {k: summarise(r) for k, r in rows.items()}
    for k, sm in summaries.items():
        console.log(f"{k}: DIR {fmt_rate(sm.dir)}, FPIR {fmt_rate(sm.fpir, 2)}")

    no_face = sorted(
        {p for s in searched.values() for _, p in s.enrol_no_face}
        | {
            p
            for s in searched.values()
            for (_, p), h in zip(s.probes, s.hits, strict=True)
            if h is None
        }
    )
    report = Report(
        data_root,
        policy,
        searched,
        rows,
        summaries,
        diagnose_no_face(no_face, console),
        reference if reference in searched else None,
        embed_seconds=embed_seconds,
        records=records,
    )
    if report.reference is None:
        return report
    ref = searched[report.reference]
    for target in FPIR_TARGETS:
        thr = threshold_for_fpir(stranger_hits(ref), policy.margin, target, policy=policy)
        op_policy = policy_at(policy, thr)
        report.operating_points.append(
            OperatingPoint(
                target,
                thr,
                policy.margin,
                {k: summarise(decide(s, op_policy, data_root)) for k, s in searched.items()},
            )
        )
    lfw = ref.probes[0][1].parents[1] if ref.probes else None
    report.folds = lfw_folds(lfw) if lfw else {}
    if report.folds:
        by_fold: dict[int, list[ProbeRow]] = defaultdict(list)
        for (ident, _), r in zip(ref.probes, rows[report.reference], strict=True):
            by_fold[report.folds.get(ident, 0)].append(r)
        report.per_fold = {f: summarise(r) for f, r in sorted(by_fold.items())}
        report.held_out = held_out_operating_points(ref, policy, report.folds, data_root)
    report.label_errors = dict(calibration().SAME_PERSON)
    if "lfw" in report.records and {"lfw", "lfw-enrol3"} <= set(searched):
        lfw_protocols = {k: searched[k].protocol for k in ("lfw", "lfw-enrol3")}
        paths = lfw_protocols["lfw"].embed_paths
        by_model: dict[str, FaceRecords] = {model: report.records["lfw"]}
        for other in FACE_MODELS:
            if other not in by_model:
                console.log(f"LFW face records, {other}, for the model comparison (cached)")
                by_model[other] = face_records(
                    paths, workers=workers, cache_dir=cache_dir, label=other, model=other
                )
        agg = "centroid" if RecognitionConfig().aggregation == "mean_template" else "min"
        console.log("levers: held-out check of every row (seconds)")
        # The levers were measured on dlib's ResNet (the door's network when issue 13 began),
        # at its own defaults; the model section puts the networks side by side.
        dlib = RecognitionConfig(model=DLIB_RESNET)
        report.levers = lever_study(
            by_model[DLIB_RESNET],
            lfw_protocols,
            report.folds,
            standard_specs(variant, "margin+cohort" if policy.cohort_k else "margin", agg),
            (dlib.threshold, dlib.margin),
        )
        report.models = model_study(
            {m: by_model[m] for m in FACE_MODELS}, lfw_protocols, report.folds, variant, agg
        )
    if lfw is not None and report.reference == "lfw":
        report.track_section = _track_section(lfw, emb_cache[ref.protocol.embed_paths], console)
    return report


def _track_section(lfw: Path, lfw_emb: np.ndarray, console: Console) -> str | None:
    """The door-track section (``track_protocol``, another module's), on the same embeddings.

    Optional by design: the track protocol is its own module; without it the report simply
    has no track section.
    """
    try:
        from storesense_tools.accuracy import track_protocol as tp
    except ImportError:
        return None
    ts = tp.lfw_track_set(lfw)
    emb = lfw_emb if tuple(ts.embed_paths) == tuple(lfw_split(lfw)[2]) else None
    console.log("door tracks: the track protocol (k = 1, 2, 3)")
    return str(tp.render_track_section(tp.evaluate_tracks(ts, emb=emb)))


def held_out_operating_points(
    ref: Searched, policy: OpenSetPolicy, folds: dict[str, int], data_root: Path
) -> dict[float, tuple[Summary, list[float | None]]]:
    """Choose each target's threshold on 4 folds' strangers, count on the 5th, pool the 5.

    The in-sample operating point meets its FPIR target by construction; this says what the
    same recipe delivers on people it was not tuned on (LFW's folds hold disjoint people).
    """
    out = {}
    for target in FPIR_TARGETS:
        rows: list[ProbeRow] = []
        thresholds: list[float | None] = []
        for f in sorted(set(folds.values())):
            thr = threshold_for_fpir(
                stranger_hits(ref, _outside_fold(folds, f)), policy.margin, target, policy=policy
            )
            thresholds.append(thr)
            fold_rows = decide(ref, policy_at(policy, thr), data_root)
            rows += [r for r in fold_rows if folds.get(r.true_id) == f]
        out[target] = (summarise(rows), thresholds)
    return out
