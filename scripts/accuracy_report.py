"""Accuracy and bias report for door recognition: generates docs/accuracy.md.

Why a generated report and not hand-written figures: recognising people at a shop door is a
biometric decision about them, so the rates we quote (customers recognised, strangers wrongly
matched) must come from the code that runs at the door, with their uncertainty, the number of
people behind them and the limits of the data, and must be re-creatable by anyone with one
command. Hand-copied numbers drift from the code; this file is the only source of
docs/accuracy.md.

What runs: the live edge ``FacePipeline`` through ``storesense.face_eval.embed_images`` (the
same embeddings and cache as ``scripts/calibrate_threshold.py`` and the tests), the live
``TemplateIndex`` search and the live ``OpenSetPolicy.decide_one`` at the hub's configured
threshold and margin. Every figure is computed from per-probe rows (``ProbeRow``), so the
rates can be checked by counting rows (``--rows`` writes them as CSV).

    .venv/bin/python scripts/accuracy_report.py [--data DIR] [--out docs/accuracy.md] [--rows F.csv]

The first run embeds ~6,600 images on both cores (≈ 8 min on the 2-core dev VM when it is not
busy with other work); later runs read the cached embeddings and take under a minute.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np
from rich.console import Console
from rich.progress import Progress
from scipy.stats import beta

from hub.matcher import NO_LABEL, OpenSetPolicy, SearchHit
from storesense.face_eval import build_index, embed_images, lfw_split

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "accuracy.md"
FPIR_TARGETS = (0.001, 0.01)
# Code whose change changes the figures: a modified copy of these is flagged in the report.
RESULT_CODE = (
    "edge/face_",
    "edge/models/",
    "hub/matcher.py",
    "storesense/face_eval.py",
    "storesense/config.py",
    "scripts/accuracy_report.py",
    "scripts/calibrate_threshold.py",
)


def default_data_root() -> Path:
    """``$STORESENSE_SHARED_DATA/faces`` or ``<checkout>/../shared/data/faces``.

    Resolved the same way as ``tests/conftest.py`` and ``calibrate_threshold.DEFAULT_LFW`` so the
    image paths, and therefore the embedding cache keys, are the same for all three.
    """
    env = os.environ.get("STORESENSE_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return (base / "faces").resolve()


def _calibration() -> ModuleType:
    """scripts/calibrate_threshold.py as a module (scripts/ is not a package).

    Reused rather than copied: its list of LFW label errors and its one-sided bound are what
    docs/calibration.md quotes, and the two documents must agree.
    """
    if "calibrate_threshold" in sys.modules:
        return sys.modules["calibrate_threshold"]
    spec = importlib.util.spec_from_file_location(
        "calibrate_threshold", Path(__file__).resolve().parent / "calibrate_threshold.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["calibrate_threshold"] = mod  # before exec: dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class Protocol:
    """Which images are enrolled, which are probes; strangers are probe people not in the gallery.

    ``embed_paths`` is the embedding order (it is the cache key), a superset of the enrol and
    probe images, so several protocols over one data folder share one embedding pass.
    """

    key: str
    title: str
    enrol: tuple[tuple[str, Path], ...]
    probes: tuple[tuple[str, Path], ...]
    embed_paths: tuple[Path, ...]
    rule: str  # the protocol in words, for the report
    quotable: bool = True
    caveat: str = ""
    family: str = ""  # protocols of one family differ only in the number of enrolment images
    n_enrol: int = 1


def read_manifest(folder: Path) -> list[tuple[str, Path]]:
    """``(identity, path)`` of every labelled image in ``folder/manifest.csv``, file order."""
    with (folder / "manifest.csv").open(newline="") as fh:
        return [(r["identity"], folder / r["path"]) for r in csv.DictReader(fh) if r["identity"]]


def split_by_identity(
    pairs: Sequence[tuple[str, Path]],
    enrolled: Iterable[str],
    n_enrol: int = 1,
    min_images: int = 1,
    first_probe: int | None = None,
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Enrol the first ``n_enrol`` images of each ``enrolled`` person, probe the rest.

    Everybody else is a stranger and all their images are probes. ``first_probe`` (0-based)
    skips images so that protocols with different ``n_enrol`` probe exactly the same images;
    people with fewer than ``min_images`` images are left out altogether.
    """
    by_id: dict[str, list[Path]] = defaultdict(list)
    for ident, path in pairs:
        by_id[ident].append(path)
    enrolled = set(enrolled)
    start = n_enrol if first_probe is None else first_probe
    enrol, probes = [], []
    for ident, paths in by_id.items():
        if len(paths) < min_images and ident in enrolled:
            continue
        if ident in enrolled:
            enrol += [(ident, p) for p in paths[:n_enrol]]
            probes += [(ident, p) for p in paths[start:]]
        else:
            probes += [(ident, p) for p in paths]
    return enrol, probes


def orl_protocol(
    orl: Path,
    enrolled: Sequence[int],
    strangers: Sequence[int],
    enrol_images: Sequence[int],
    probe_images: Sequence[int],
    *,
    key: str = "orl",
    title: str = "ORL",
    embed_all: bool = False,
    family: str = "",
) -> Protocol:
    """ORL subjects ``s<N>``: ``enrol_images`` of ``enrolled`` are enrolled, ``probe_images``
    of them are genuine probes, all 10 images of ``strangers`` are stranger probes.

    ``embed_all`` embeds all 400 images (one cache shared by every ORL protocol of the report);
    a test on a few subjects leaves it off and embeds only what it uses.
    """

    def path(s: int, i: int) -> Path:
        return orl / f"s{s}" / f"{i}.pgm"

    enrol = tuple((f"orl_s{s}", path(s, i)) for s in enrolled for i in enrol_images)
    probes = tuple((f"orl_s{s}", path(s, i)) for s in enrolled for i in probe_images) + tuple(
        (f"orl_s{s}", path(s, i)) for s in strangers for i in range(1, 11)
    )
    if embed_all:
        embed = tuple(p for _, p in read_manifest(orl))
    else:
        embed = tuple(dict.fromkeys(p for _, p in enrol + probes))
    return Protocol(
        key=key,
        title=title,
        enrol=enrol,
        probes=probes,
        embed_paths=embed,
        rule=(
            f"`s{enrolled[0]}`–`s{enrolled[-1]}` enrolled with image(s) "
            f"{_ranges(enrol_images)}, their images {_ranges(probe_images)} are genuine probes; "
            f"`s{strangers[0]}`–`s{strangers[-1]}` are never enrolled, all 10 images each are "
            "stranger probes (the data README's split)."
        ),
        quotable=True,
        caveat="40 lab volunteers, 1992–94, frontal, dark background: too easy to rank models.",
        family=family,
        n_enrol=len(enrol_images),
    )


def _ranges(xs: Sequence[int]) -> str:
    xs = list(xs)
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}–{xs[-1]}"
    return ", ".join(map(str, xs))


def lfw_protocols(lfw: Path) -> list[Protocol]:
    """LFW folds 1-5: the calibration protocol (``face_eval.lfw_split``) and an enrolment variant.

    Main: the first image of each person with >= 2 images is enrolled, the rest are genuine
    probes; single-image people are strangers. Variant (people with >= 4 images only): 1 or 3
    enrolment images, genuine probes are images 4+ in both, so the two rows differ only in
    the number of enrolment photos.
    """
    enrol, probes, all_paths = lfw_split(lfw)
    embed = tuple(all_paths)
    caveat = (
        "press photos of public figures, 2002–03; LFW's own disclaimer warns against using it to "
        "conclude commercial suitability"
    )
    main = Protocol(
        key="lfw",
        title="LFW folds 1–5",
        enrol=tuple(enrol),
        probes=tuple(probes),
        embed_paths=embed,
        rule=(
            "the first image (by file name) of each person with ≥ 2 images is enrolled; their "
            "other images are genuine probes; every single-image person is a stranger "
            "(docs/calibration.md's protocol, `storesense.face_eval.lfw_split`)."
        ),
        caveat=caveat,
    )
    pairs = [(p.parent.name, p) for p in all_paths]
    counts = Counter(i for i, _ in pairs)
    many = sorted(i for i, c in counts.items() if c >= 4)
    singles = {i for i, c in counts.items() if c == 1}
    out = [main]
    for k in (1, 3):
        e, p = split_by_identity(
            [(i, q) for i, q in pairs if i in singles or counts[i] >= 4], many, k, 4, first_probe=3
        )
        out.append(
            Protocol(
                key=f"lfw-enrol{k}",
                title=f"LFW, people with ≥ 4 images, {k} enrolment image{'s' * (k > 1)}",
                enrol=tuple(e),
                probes=tuple(p),
                embed_paths=embed,
                rule=(
                    f"the first {k} image(s) of each person with ≥ 4 images enrolled; images "
                    "4+ are genuine probes; single-image people are strangers; people with 2–3 "
                    "images are left out."
                ),
                caveat=caveat,
                family="LFW",
                n_enrol=k,
            )
        )
    return out


def held_out_split(pairs: Sequence[tuple[str, Path]]) -> tuple[list[str], list[str]]:
    """Sorted identities: the last third (rounded) are never enrolled, the rest enrolled.

    A fixed, written-down rule instead of a random draw: the small sets have 8-13 people, and
    the report must say exactly who is a stranger.
    """
    ids = sorted(dict.fromkeys(i for i, _ in pairs))
    n_strangers = max(1, round(len(ids) / 3))
    return ids[:-n_strangers], ids[-n_strangers:]


def small_set_protocol(
    folder: Path, key: str, title: str, extra_strangers: Sequence[Path] = ()
) -> Protocol:
    """deepface / face-api.js: first image (manifest order) of two thirds of the people enrolled.

    ``extra_strangers`` are unlabelled single-person images known not to show any labelled
    person; they become stranger probes with an identity of their own (their file stem).
    """
    pairs = read_manifest(folder)
    enrolled, strangers = held_out_split(pairs)
    enrol, probes = split_by_identity(pairs, enrolled)
    probes += [(f"unlabelled:{p.stem}", p) for p in extra_strangers]
    rule = (
        f"enrolled: {', '.join(f'`{i}`' for i in enrolled)} with their first image "
        f"(manifest order), their other images are genuine probes; never enrolled: "
        f"{', '.join(f'`{i}`' for i in strangers)} (the last third of the sorted identities), "
        "all their images are stranger probes"
    )
    return Protocol(
        key=key,
        title=title,
        enrol=tuple(enrol),
        probes=tuple(probes),
        embed_paths=tuple(dict.fromkeys([p for _, p in pairs] + list(extra_strangers))),
        rule=rule,
        quotable=False,
        caveat=(
            "celebrities who may be in the dlib model's training data and a handful of people: "
            "the data README says not to quote accuracy from this set; shown as a smoke check"
        ),
    )


def standard_protocols(data: Path) -> list[Protocol]:
    """Every protocol of the report, for the data sets present under ``data``."""
    out: list[Protocol] = []
    if (data / "orl").is_dir():
        orl = data / "orl"
        s_enrol, s_strange = list(range(1, 31)), list(range(31, 41))
        out.append(orl_protocol(orl, s_enrol, s_strange, [1, 2], range(3, 11), embed_all=True))
        for k in (1, 2, 3):
            out.append(
                orl_protocol(
                    orl,
                    s_enrol,
                    s_strange,
                    list(range(1, k + 1)),
                    range(4, 11),
                    key=f"orl-enrol{k}",
                    title=f"ORL, {k} enrolment image{'s' * (k > 1)}",
                    embed_all=True,
                    family="ORL",
                )
            )
    if (data / "lfw-dev").is_dir():
        out += lfw_protocols(data / "lfw-dev")
    if (data / "deepface").is_dir():
        p = small_set_protocol(data / "deepface", "deepface", "deepface")
        out.append(
            _with_rule(
                p,
                p.rule + "; the two group photos (`couple.jpg`, `selfie-many-people.jpg`) are left "
                "out: nobody knows who is in them. Note `img11_reflection.jpg` is a mirrored "
                "`img11.jpg` (both genuine probes of `deepface_id01`).",
            )
        )
    if (data / "faceapi-bbt").is_dir():
        bbt = data / "faceapi-bbt"
        expressions = sorted(p for p in bbt.glob("*.jpg") if not p.name.startswith("bbt"))
        p = small_set_protocol(bbt, "bbt", "face-api.js BBT crops", expressions)
        out.append(
            _with_rule(
                p,
                p.rule + f"; plus the {len(expressions)} unlabelled expression samples "
                f"({', '.join(f'`{q.name}`' for q in expressions)}: stock portraits of "
                f"{len(expressions)} other people, checked by eye, none of them a cast member) "
                "as strangers. The group "
                "stills `bbt1–5.jpg` are left out: they show the cast.",
            )
        )
    return out


def _with_rule(p: Protocol, rule: str) -> Protocol:
    return replace(p, rule=rule)


# --------------------------------------------------------------------------- evaluation


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


@dataclass(frozen=True)
class ProbeRow:
    """One probe image's outcome: the unit every rate in the report is counted from."""

    dataset: str
    probe: str  # path relative to the data root
    true_id: str
    genuine: bool  # the person is in the gallery
    has_face: bool
    nearest: str
    distance: float
    second_distance: float
    decision: str  # "" = not matched

    @property
    def outcome(self) -> str:
        if not self.has_face:
            return "no usable face"
        if self.genuine:
            if self.decision == self.true_id:
                return "identified"
            return "wrong customer" if self.decision else "missed"
        return "false match" if self.decision else "rejected"


def search(protocol: Protocol, emb: np.ndarray) -> Searched:
    """Gallery from the enrolment images with a usable face, search every probe with one."""
    row = {p: k for k, p in enumerate(protocol.embed_paths)}
    e_emb = emb[[row[p] for _, p in protocol.enrol]].reshape(-1, 128)
    index, names = build_index([i for i, _ in protocol.enrol], e_emb)
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
        rel = _rel(path, data_root)
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


def short_name(path: Path, data_root: Path) -> str:
    """An image's name inside its data set: ``s2/3.pgm``, or ``Tony_Blair_0017`` for LFW-style
    files whose name already repeats their folder (halves the long no-face list)."""
    parts = Path(_rel(path, data_root)).parts
    if len(parts) == 1 or parts[0] == "/":
        return path.name
    inner = parts[1:]
    if len(inner) == 2 and Path(inner[1]).stem.startswith(inner[0]):
        return Path(inner[1]).stem
    return "/".join(inner)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
    """Rates over probes with a usable face; images without one are counted apart.

    A probe with no usable face is neither a match nor a false match (the door would see no
    one), so it leaves both denominators and is reported on its own line.
    """
    g = [r for r in rows if r.has_face and r.genuine]
    s = [r for r in rows if r.has_face and not r.genuine]
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in g:
        per[r.true_id][0] += r.decision == r.true_id
        per[r.true_id][1] += 1
    return Summary(
        dir=Rate(sum(r.decision == r.true_id for r in g), len(g)),
        fpir=Rate(sum(r.decision != "" for r in s), len(s)),
        wrong=Rate(sum(r.decision not in ("", r.true_id) for r in g), len(g)),
        rank1=Rate(sum(r.nearest == r.true_id for r in g), len(g)),
        genuine_people=len({r.true_id for r in g}),
        stranger_people=len({r.true_id for r in s}),
        stranger_people_matched=len({r.true_id for r in s if r.decision}),
        no_face_genuine=sum(not r.has_face and r.genuine for r in rows),
        no_face_stranger=sum(not r.has_face and not r.genuine for r in rows),
        per_person={k: Rate(a, n) for k, (a, n) in per.items()},
    )


def stranger_hits(s: Searched, keep: Callable[[str], bool] = lambda _: True) -> list[SearchHit]:
    """Search results of the stranger probes with a usable face (optionally some people only)."""
    enrolled = s.enrolled
    return [
        h
        for (i, _), h in zip(s.probes, s.hits, strict=True)
        if h is not None and i not in enrolled and keep(i)
    ]


def threshold_for_fpir(hits: Sequence[SearchHit], margin: float, target: float) -> float | None:
    """Largest threshold (3 decimals) at which at most ``floor(target × n)`` strangers match.

    A stranger matches at threshold t under ``margin`` iff its nearest distance is ≤ t and the
    runner-up is at least ``margin`` farther (``OpenSetPolicy.decide_one``), so the k+1-th
    smallest such distance is the first one that must stay out. Rounded *down* so the
    reported threshold is a value one would configure and still keeps the count. None: the
    margin alone keeps FPIR under the target at any threshold.
    """
    n = len(hits)
    allowed = math.floor(target * n + 1e-9)
    scores = sorted(
        h.distance for h in hits if h.label != NO_LABEL and h.second_distance - h.distance >= margin
    )
    if allowed >= len(scores):
        return None
    return math.floor(scores[allowed] * 1000 - 1e-6) / 1000


def lfw_folds(lfw: Path) -> dict[str, int]:
    """Identity -> View 2 fold (1-5) from ``people-folds1-5.txt`` (count, then name<TAB>n)."""
    path = lfw / "people-folds1-5.txt"
    if not path.exists():
        return {}
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    out: dict[str, int] = {}
    pos, fold = 1, 0
    while pos < len(lines):
        fold += 1
        count = int(lines[pos])
        for ln in lines[pos + 1 : pos + 1 + count]:
            out[ln.split("\t")[0]] = fold
        pos += 1 + count
    return out


def diagnose_no_face(paths: Sequence[Path], console: Console | None = None) -> dict[Path, str]:
    """Why an image has no usable face: unreadable, no face found, or the gate's reasons.

    Runs only detection, alignment and the gate (no ResNet; a few ms an image), so it is not
    cached. Tells apart a detector miss from a deliberate quality rejection, which matter
    differently: a rejected face is the gate doing its job, a missed one is a recall problem.
    """
    if not paths:
        return {}
    from edge.face_pipeline import FaceImageError, FacePipeline, load_rgb

    pipe = FacePipeline()
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


# --------------------------------------------------------------------------- the report


@dataclass
class OperatingPoint:
    """A threshold chosen on LFW strangers for a target FPIR, applied to every data set."""

    target: float
    threshold: float | None
    margin: float
    per_dataset: dict[str, Summary]


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
    searched: dict[str, Searched] = {}
    t0 = time.monotonic()
    for p in protocols:
        if p.embed_paths not in emb_cache:
            console.log(
                f"{p.title}: embedding {len(p.embed_paths):,} images (cached after the first run)"
            )
            emb_cache[p.embed_paths] = embed_images(
                p.embed_paths, workers=workers, cache_dir=cache_dir, label=p.title
            )
        searched[p.key] = search(p, emb_cache[p.embed_paths])
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
    )
    if report.reference is None:
        return report
    ref = searched[report.reference]
    for target in FPIR_TARGETS:
        thr = threshold_for_fpir(stranger_hits(ref), policy.margin, target)
        op_policy = _policy_at(policy, thr)
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
    report.label_errors = dict(_calibration().SAME_PERSON)
    return report


def _policy_at(policy: OpenSetPolicy, threshold: float | None) -> OpenSetPolicy:
    """The hub's policy with another threshold (``None``: the widest the policy accepts)."""
    return OpenSetPolicy(
        threshold if threshold is not None else 1.999,
        policy.margin,
        policy.min_votes,
        policy.min_vote_share,
    )


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
                stranger_hits(ref, lambda i, f=f: folds.get(i) != f), policy.margin, target
            )
            thresholds.append(thr)
            fold_rows = decide(ref, _policy_at(policy, thr), data_root)
            rows += [r for r in fold_rows if folds.get(r.true_id) == f]
        out[target] = (summarise(rows), thresholds)
    return out


# --------------------------------------------------------------------------- markdown


def git_state() -> tuple[str, list[str]]:
    """HEAD commit and the modified files among the code that determines the figures."""

    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    head = run("rev-parse", "HEAD").strip() or "unknown"
    dirty = [
        ln[3:] for ln in run("status", "--porcelain").splitlines() if ln[3:].startswith(RESULT_CODE)
    ]
    return head, dirty


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _data_folders(report: Report) -> list[str]:
    """The data folders the report read, relative to the data root, in protocol order."""
    out: dict[str, None] = {}
    for s in report.searched.values():
        for p in s.protocol.embed_paths[:1]:
            out[Path(_rel(p, report.data_root)).parts[0]] = None
    return list(out)


def _main_keys(report: Report) -> list[str]:
    return [k for k, s in report.searched.items() if not s.protocol.family]


def render_markdown(report: Report, meta: dict[str, str]) -> str:
    """docs/accuracy.md. ``meta``: command, date, commit, dirty, runtime (free text)."""
    pol = report.policy
    L: list[str] = []
    L += [
        "# Door recognition: accuracy and bias report",
        "",
        "<!-- Generated by scripts/accuracy_report.py; do not edit by hand: re-run it. -->",
        "",
        f"Generated by `{meta.get('command', '')}` on {meta.get('date', '')} from commit "
        f"`{meta.get('commit', '')}`"
        + (f" (uncommitted changes in {meta['dirty']})" if meta.get("dirty") else "")
        + f"; {meta.get('runtime', '')}.",
        f"Data: `{report.data_root}/` — "
        + ", ".join(f"`{d}/`" for d in _data_folders(report))
        + " (sources, licences and formats: the `README.md` there; nothing is copied into "
        "the repository).",
        f"Decision rule: the hub's `OpenSetPolicy` at its configured defaults, **threshold "
        f"{pol.threshold:g}, margin {pol.margin:g}**, one image per decision (`decide_one`); "
        "embeddings from the live edge `FacePipeline` (BlazeFace with fallbacks, dlib 5-point "
        "alignment, quality gate, dlib ResNet 128-d). Face choice in an image: the usable face "
        "nearest the centre.",
        "",
        "How to read the figures: **DIR** (detection and identification rate) = enrolled "
        "customers' probe images identified as the right person; **FPIR** (false positive "
        "identification rate) = images of strangers (never enrolled) matched to anyone. Each is "
        "given as `rate [95 % CI] (k of n)`, the interval two-sided exact (Clopper–Pearson). "
        "Probes with no usable face are in neither denominator and are counted apart. The "
        "intervals treat probes as independent; several probes of one person are not, so the "
        "real uncertainty is somewhat wider, above all for DIR.",
        "",
        "## Summary at the default threshold and margin",
        "",
    ]
    L += _md_table(
        [
            "data set",
            "enrolled people (of offered)",
            "DIR: enrolled probes identified",
            "by people",
            "wrong customer",
            "FPIR: stranger probes matched",
            "by people (matched)",
            "no usable face: genuine + stranger probes",
            "quote?",
        ],
        (
            [
                s.protocol.title,
                f"{len(s.names):,} (of {len(s.offered):,})",
                fmt_rate(sm.dir),
                f"{sm.genuine_people:,}",
                f"{sm.wrong.k:,}",
                fmt_rate(sm.fpir, 2),
                f"{sm.stranger_people:,} ({sm.stranger_people_matched:,})",
                f"{sm.no_face_genuine:,} + {sm.no_face_stranger:,}",
                "yes" if s.protocol.quotable else "no (smoke check)",
            ]
            for k in _main_keys(report)
            for s, sm in [(report.searched[k], report.summaries[k])]
        ),
    )
    L += [
        "",
        "Rank-1 (the nearest customer is the right one, no threshold): "
        + "; ".join(
            f"{report.searched[k].protocol.title} {fmt_rate(report.summaries[k].rank1)}"
            for k in _main_keys(report)
        )
        + ". The gap between rank-1 and DIR is the price of the open-set rule: a face must be "
        "close *and* clearly closer to one customer than to any other before the door says a "
        "name.",
        "",
        "One-sided 95 % upper bounds on FPIR (the form docs/calibration.md quotes against its "
        "< 1 % target): "
        + "; ".join(
            f"{report.searched[k].protocol.title} "
            f"{pct(_calibration().upper_95(sm.fpir.k, sm.fpir.n), 2)}"
            for k in _main_keys(report)
            for sm in [report.summaries[k]]
            if sm.fpir.n
        )
        + ".",
        "",
    ]
    L += _protocol_section(report)
    L += _operating_point_section(report)
    L += _enrolment_section(report)
    L += _per_person_section(report)
    L += _errors_section(report)
    L += _no_face_section(report)
    L += _limits_section(report)
    L += [
        "## Reproduce",
        "",
        "```bash",
        ".venv/bin/python scripts/accuracy_report.py            # writes docs/accuracy.md",
        ".venv/bin/python scripts/accuracy_report.py --rows /tmp/probes.csv   # + per-probe rows",
        "```",
        "",
        "Embeddings are cached by `storesense.face_eval.embed_images` (shared with "
        "`scripts/calibrate_threshold.py` and the tests) under `~/.cache/storesense/` or "
        "`--cache-dir`, keyed by the edge pipeline code, the detector models and the file list; "
        "a pipeline change recomputes them — but the key does not cover the quality-gate "
        "defaults in `storesense/config.py` or the dlib model files, so delete the cache after "
        "changing those. Measured on the 2-core dev VM: a first run without a "
        "cache took 7 min 40 s (6.5 min of it LFW) with other work light on the machine, and "
        "30 min while a full test suite and a soak benchmark shared both cores; a cached run "
        "takes under a minute (the no-face diagnosis re-runs detection on those images). The "
        "threshold and margin are read from "
        "`RecognitionConfig`, so a changed default changes this report on the next run. "
        "`tests/scripts/test_accuracy_report.py` checks the counting on a real ORL subset.",
        "",
    ]
    return "\n".join(L)


def _protocol_section(report: Report) -> list[str]:
    L = ["## Protocol: who is enrolled, who is probed, who is a stranger", ""]
    for k in _main_keys(report):
        s = report.searched[k]
        p = s.protocol
        n_g = sum(i in s.enrolled for i, _ in s.probes)
        L.append(
            f"- **{p.title}**: {p.rule} Enrolment images: {len(p.enrol):,}, of {len(s.offered):,} "
            f"people; probe images: {len(s.probes):,} ({n_g:,} of enrolled people, "
            f"{len(s.probes) - n_g:,} of strangers). *{p.caveat}*"
        )
    L += [
        "",
        "An enrolment image with no usable face leaves that person out of the gallery, and "
        "their probe images then count as stranger probes — as at the store, where a customer "
        "whose enrolment photo was refused is a stranger to the door. Galleries hold one template "
        "per enrolment image; a probe is compared with every template.",
        "",
    ]
    return L


def _operating_point_section(report: Report) -> list[str]:
    if not report.operating_points or report.reference is None:
        return []
    ref = report.searched[report.reference].protocol.title
    pol = report.policy
    L = [
        f"## At fixed false-match rates (thresholds chosen on {ref} strangers)",
        "",
        f"The threshold is the largest (3 decimals) at which at most the target share of {ref}'s "
        f"stranger probes is matched, at the default margin {pol.margin:g}; the same threshold is "
        "then applied to every data set. On "
        f"{ref} itself the FPIR meets the target by construction (chosen and measured on the "
        "same people), so read its DIR there and the held-out check below for FPIR.",
        "",
    ]
    header = ["data set", f"default {pol.threshold:g}: DIR", "FPIR"]
    for op in report.operating_points:
        t = f"{op.threshold:.3f}" if op.threshold is not None else "any"
        header += [f"FPIR ≤ {pct(op.target)} (threshold {t}): DIR", "FPIR"]
    body = []
    for k in _main_keys(report):
        cells = [
            report.searched[k].protocol.title,
            fmt_rate(report.summaries[k].dir),
            fmt_rate(report.summaries[k].fpir, 2),
        ]
        for op in report.operating_points:
            cells += [fmt_rate(op.per_dataset[k].dir), fmt_rate(op.per_dataset[k].fpir, 2)]
        body.append(cells)
    L += _md_table(header, body)
    L.append("")
    others = [k for k in _main_keys(report) if k != report.reference]
    if others:
        notes = []
        for op in report.operating_points:
            worst = max(
                others,
                key=lambda k: op.per_dataset[k].fpir.value if op.per_dataset[k].fpir.n else -1.0,
            )
            w = op.per_dataset[worst].fpir
            if w.n:
                notes.append(
                    f"the FPIR ≤ {pct(op.target)} threshold gives {pct(w.value, 2)} on "
                    f"{report.searched[worst].protocol.title} ({w.k} of {w.n})"
                )
        if notes:
            L += [
                "Applied elsewhere, " + "; ".join(notes) + ". A threshold tuned on one "
                "population and one kind of photo does not carry its false-match rate to "
                "another; the store has to re-check it on its own camera.",
                "",
            ]
    if report.held_out:
        L += [
            f"**Held-out check** ({ref}, 5 folds of disjoint people): for each fold the threshold "
            "is chosen on the other four folds' strangers and counted on this fold's probes; "
            "the five folds are pooled.",
            "",
        ]
        rows = []
        for target, (sm, thrs) in report.held_out.items():
            ts = [t for t in thrs if t is not None]
            rng = f"{min(ts):.3f}–{max(ts):.3f}" if ts else "any"
            rows.append([f"FPIR ≤ {pct(target)}", rng, fmt_rate(sm.dir), fmt_rate(sm.fpir, 2)])
        L += _md_table(
            ["target", "thresholds (5 folds)", "DIR (held out)", "FPIR (held out)"], rows
        )
        L.append("")
    if report.per_fold:
        L += [
            f"**Per fold at the default** ({ref}; a probe belongs to its person's fold; the "
            "gallery is always all enrolled people). The spread between folds is sampling "
            "variation between groups of different people, the only grouping LFW offers:",
            "",
        ]
        L += _md_table(
            ["fold", "DIR", "FPIR", "genuine / stranger people"],
            (
                [
                    str(f) if f else "not in people-folds1-5.txt",
                    fmt_rate(sm.dir),
                    fmt_rate(sm.fpir, 2),
                    f"{sm.genuine_people:,} / {sm.stranger_people:,}",
                ]
                for f, sm in report.per_fold.items()
            ),
        )
        L.append("")
    return L


def _enrolment_section(report: Report) -> list[str]:
    fams: dict[str, list[str]] = defaultdict(list)
    for k, s in report.searched.items():
        if s.protocol.family:
            fams[s.protocol.family].append(k)
    if not fams:
        return []
    L = [
        "## More enrolment photos",
        "",
        "The store may keep several enrolment photos per customer. Same probes, same strangers, "
        "only the number of enrolment images changes:",
        "",
    ]
    rows = []
    for keys in fams.values():
        for k in keys:
            s, sm = report.searched[k], report.summaries[k]
            rows.append(
                [
                    s.protocol.title,
                    f"{len(s.names):,}",
                    fmt_rate(sm.dir),
                    fmt_rate(sm.fpir, 2),
                    fmt_rate(sm.rank1),
                ]
            )
    L += _md_table(["protocol", "gallery people", "DIR", "FPIR", "rank-1"], rows)
    L += ["", "Protocols:", ""]
    L += [
        f"- {report.searched[k].protocol.title}: {report.searched[k].protocol.rule}"
        for keys in fams.values()
        for k in keys
    ]
    L.append("")
    return L


def _per_person_section(report: Report) -> list[str]:
    L = [
        "## Who carries the errors: per person",
        "",
        "No data set here has demographic labels, so the nearest thing to a bias analysis it "
        "allows is to ask whether misses are spread evenly over people or pile up on some. "
        "Micro DIR counts images (people with many photos weigh more), macro DIR averages "
        "people. Enrolled people with at least one genuine probe with a usable face:",
        "",
    ]
    rows = []
    for k in _main_keys(report):
        sm = report.summaries[k]
        per = list(sm.per_person.values())
        if not per:
            continue
        macro = float(np.mean([r.value for r in per]))
        never = sum(r.k == 0 for r in per)
        always = sum(r.k == r.n for r in per)
        top = sorted(per, key=lambda r: -r.n)[:10]
        top_share = sum(r.n for r in top) / sum(r.n for r in per) if len(per) > 10 else math.nan
        rows.append(
            [
                report.searched[k].protocol.title,
                f"{len(per):,}",
                pct(sm.dir.value),
                pct(macro),
                f"{never:,} ({pct(never / len(per))})",
                f"{always:,} ({pct(always / len(per))})",
                pct(top_share),
            ]
        )
    L += _md_table(
        [
            "data set",
            "people",
            "micro DIR",
            "macro DIR",
            "never identified",
            "always identified",
            "probes from the 10 most-photographed",
        ],
        rows,
    )
    ref = report.reference
    if ref:
        sm = report.summaries[ref]
        top = sorted(sm.per_person.items(), key=lambda kv: -kv[1].n)[:5]
        L += [
            "",
            f"{report.searched[ref].protocol.title}'s most-photographed enrolled people "
            "(genuine probes with a usable face, DIR): "
            + "; ".join(f"`{n}` {r.k}/{r.n}" for n, r in top)
            + ".",
        ]
        many = sorted((r.value, n, r) for n, r in sm.per_person.items() if r.n >= 10)
        if len(many) >= 2:
            (lo, lo_name, lo_r), (hi, hi_name, hi_r) = many[0], many[-1]
            L[-1] += (
                f" Among the {len(many)} people with ≥ 10 genuine probes, DIR runs from "
                f"{pct(lo)} (`{lo_name}`, {lo_r.k}/{lo_r.n}) to {pct(hi)} (`{hi_name}`, "
                f"{hi_r.k}/{hi_r.n}): how well the door knows someone depends strongly on the "
                "person (and on their enrolment photo), which is exactly where a group "
                "difference would show if the data had group labels."
            )
    L.append("")
    return L


def _errors_section(report: Report) -> list[str]:
    L = ["## Every false match at the default", ""]
    for k in _main_keys(report):
        fm = [r for r in report.rows[k] if r.outcome in ("false match", "wrong customer")]
        title = report.searched[k].protocol.title
        if not fm:
            L.append(f"- {title}: none.")
            continue
        items = []
        for r in fm:
            stem = Path(r.probe).stem
            flag = ""
            if report.label_errors.get(stem) == r.decision:
                flag = " — **LFW label error: the same person**"
            kind = "stranger" if r.outcome == "false match" else "enrolled, wrong customer"
            items.append(f"`{stem}` ({kind}) → `{r.decision}` at {r.distance:.3f}{flag}")
        L.append(f"- {title}: " + "; ".join(items) + ".")
    n_err = sum(
        report.label_errors.get(Path(r.probe).stem) == r.decision
        for k in _main_keys(report)
        for r in report.rows[k]
        if r.outcome == "false match"
    )
    if n_err:
        L += [
            "",
            f"{n_err} of the strangers matched are known LFW label errors (the probe shows "
            "the enrolled person; list in `scripts/calibrate_threshold.py`). They are counted "
            "as false matches above, as the labels say; docs/calibration.md gives the FPIR "
            "without them.",
        ]
    L.append("")
    return L


def _no_face_section(report: Report) -> list[str]:
    L = [
        "## Images with no usable face",
        "",
        "Not detected, or detected and refused by the quality gate (too small, blurry, not "
        "frontal, bad landmarks) — the gate refuses on purpose so a poor face cannot vote. "
        "Failure to enrol (FTE) is a fairness figure in its own right: a person the camera "
        "cannot enrol never gets the service.",
        "",
    ]
    rows = []
    lists: list[str] = []
    concentration: list[str] = []
    for k in _main_keys(report):
        s = report.searched[k]
        imgs = [p for _, p in s.enrol_no_face] + [
            p for (_, p), h in zip(s.probes, s.hits, strict=True) if h is None
        ]
        reasons = Counter(report.no_face_reason.get(p, "?") for p in imgs)
        fte = Rate(len(s.enrol_no_face), len(s.protocol.enrol))
        rows.append(
            [
                s.protocol.title,
                fmt_rate(fte),
                f"{len(imgs) - len(s.enrol_no_face):,} of {len(s.probes):,}",
                "; ".join(f"{r}: {n}" for r, n in reasons.most_common()) or "–",
            ]
        )
        enrol_imgs = {p for _, p in s.enrol_no_face}
        by_reason: dict[str, list[str]] = defaultdict(list)
        for p in imgs:
            tag = " (enrolment)" if p in enrol_imgs else ""
            by_reason[report.no_face_reason.get(p, "?")].append(
                f"`{short_name(p, report.data_root)}`{tag}"
            )
        if not imgs:
            continue
        ident_of = {q: i for i, q in (*s.protocol.enrol, *s.probes)}
        total = Counter(ident_of.values())
        lost = Counter(ident_of[q] for q in imgs)
        several = [i for i, n in total.items() if n >= 4]
        if several:
            worst = max(several, key=lambda i: (lost[i] / total[i], lost[i]))
            half = sum(lost[i] / total[i] >= 0.5 for i in several)
            concentration.append(
                f"{s.protocol.title}: {len(imgs)} images of {len(lost)} people; {half} of the "
                f"{len(several)} people with ≥ 4 images lost half or more of theirs (most: "
                f"`{worst}`, {lost[worst]} of {total[worst]})"
            )
        sub = [f"- {r} ({len(v)}): {', '.join(v)}" for r, v in sorted(by_reason.items())]
        if len(imgs) <= 40:
            lists += [f"- {s.protocol.title}, {len(imgs)} images:", *("  " + x for x in sub), ""]
        else:  # folded: LFW's list is long
            lists += [
                f"<details><summary>{s.protocol.title}, {len(imgs)} images</summary>",
                "",
                *sub,
                "",
                "</details>",
                "",
            ]
    L += _md_table(["data set", "enrolment images refused (FTE)", "probe images", "why"], rows)
    if concentration:
        L += [
            "",
            "Who they belong to: "
            + "; ".join(concentration)
            + ". Refusals are not spread evenly over people; the gate's thresholds (face size, "
            "frontal pose, sharpness) can exclude particular people — those photographed "
            "small, or who hold their head a certain way, or whose features the landmark model "
            "places poorly — and this data cannot say whether that tracks any demographic "
            "group.",
        ]
    if lists:
        L += ["", "The images, by reason (`(enrolment)`: an enrolment image):", "", *lists]
    else:
        L.append("")
    return L


def _limits_section(report: Report) -> list[str]:
    """The limits, with the report's own counts where they make a point concrete."""
    pol = report.policy
    lfw = report.searched.get("lfw")
    L = [
        "## Limits of this data — read before quoting",
        "",
        "**Who is in it.**",
        "",
        "- *LFW* is news photographs of public figures from 2002–03 (politicians, athletes, "
        "actors and others in the news), kept only where a Viola–Jones detector found a face, "
        "so every image already holds a detectable, mostly frontal face. LFW's own disclaimer "
        "(data README) says it has few children, few people over 80, relatively few women, "
        "and that many ethnicities are under-represented or missing; it also says LFW should "
        "not be "
        "used to conclude that an algorithm is fit for commercial use. The dlib model's author "
        "states that LFW identities were kept out of its training data. Nobody has counted "
        "who is in these five folds; this report does not either.",
        "- *ORL* is 40 volunteers photographed at one Cambridge lab in 1992–94: greyscale, "
        "frontal, dark background, small changes of expression, pose and glasses. No "
        "description of who they are comes with it. Too easy and too small to rank anything.",
        "- *deepface* (13 people) and the *face-api.js* crops (8 actors) are actors and tech "
        "executives who may be in the dlib model's training data, with 2–9 images each: smoke "
        "checks only "
        "(the data README says not to quote them).",
        "",
        "**What bias analysis is and is not possible here.** None of these sets carries age, "
        "sex, skin-tone or ethnicity labels, and no manifest has any other per-image or "
        "per-person attribute, so this report **cannot say whether error rates differ between "
        "demographic groups** — neither that they do nor that they do not; no subset offered "
        "an attribute to break down by. What it does show: the spread between groups of "
        "different people (LFW folds), how concentrated the misses are (per person), "
        "failure-to-enrol, and how the rates move with capture conditions (lab greyscale, "
        "press photos, tight crops, high-resolution photos). Guessing people's sex or "
        "ethnicity from their faces or names to fill the gap would stack a second, itself "
        "biased, classifier on top of the first, and was not done. A real demographic check "
        "needs an evaluation set whose attributes were self-reported with consent, or at "
        "least a comparison with published demographic evaluations of comparable algorithms "
        "(NIST FRVT, NISTIR 8280, found false-match differentials between groups of an order "
        "of magnitude or more for many algorithms); one of these must happen before the door "
        "recognises the public, and a store pilot with consenting volunteers should re-check "
        "it on the store's own camera.",
        "",
        "**Single frame vs the door's track vote.** Every figure above decides on one image. "
        f"The door votes over a track (≥ {pol.min_votes} accepted frames, ≥ "
        f"{pct(pol.min_vote_share, 0)} of the quality weight, and no second customer with "
        f"{pol.min_votes} accepted frames of their own): that makes a stranger match rarer, and "
        "can lose or gain identifications depending on how many good frames a visitor gives. "
        "Frames of one walk-in are strongly correlated, so single-image rates cannot be "
        "multiplied into track rates; measuring the vote needs labelled door video, which none "
        "of this data is.",
        "",
        "**A shop door is not a press photo.** The entrance camera looks down from above the "
        "door; faces are small and moving (blur), the street behind the door backlights them, "
        "and visitors wear hats, hoods, masks and sunglasses. The faces here are large, "
        "frontal and evenly lit (ORL in a lab, LFW by press photographers), so DIR here is an "
        "upper bound for one door frame, and these photos cannot show whether the door's "
        "lighting hurts some people more than others. FPIR also grows with the number of "
        "enrolled customers"
        + (
            f": LFW's gallery has {len(lfw.names):,} people, and a larger store gallery gives "
            "every stranger more chances to resemble someone (docs/calibration.md measures "
            "the growth)"
            if lfw is not None
            else ""
        )
        + ". Re-measure on the store's own consented data (`storesense eval faces`) before "
        "relying on any figure here.",
        "",
        "**Statistics.** The intervals assume independent probes; genuine probes of one person "
        "are not independent, and a few heavily photographed people contribute a large share "
        "of LFW's genuine probes (see *per person*). The fixed-FPIR thresholds are chosen on "
        "the strangers they are then counted on (hence the held-out check). LFW's known label "
        "errors are kept as labelled and counted as errors.",
        "",
    ]
    return L


# --------------------------------------------------------------------------- CLI


def write_rows(path: Path, rows: Iterable[ProbeRow]) -> None:
    """Per-probe CSV, for auditing any figure by counting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "dataset",
                "probe",
                "true_id",
                "genuine",
                "has_face",
                "nearest",
                "distance",
                "second_distance",
                "decision",
                "outcome",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.dataset,
                    r.probe,
                    r.true_id,
                    int(r.genuine),
                    int(r.has_face),
                    r.nearest,
                    "" if math.isnan(r.distance) else f"{r.distance:.4f}",
                    "" if not math.isfinite(r.second_distance) else f"{r.second_distance:.4f}",
                    r.decision,
                    r.outcome,
                ]
            )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=default_data_root(),
        help="the shared faces folder (default: %(default)s)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--rows", type=Path, help="also write every per-probe row to this CSV")
    ap.add_argument("--cache-dir", type=Path, help="embedding cache root (default ~/.cache)")
    ap.add_argument("--workers", type=int, help="embedding processes (default: up to 2)")
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    t0 = time.monotonic()
    data = args.data.resolve()
    if not data.is_dir():
        console.print(f"[red]no data at {data}[/red] (set --data or STORESENSE_SHARED_DATA)")
        return 2
    protocols = standard_protocols(data)
    if not protocols:
        console.print(f"[red]none of orl/, lfw-dev/, deepface/, faceapi-bbt/ in {data}[/red]")
        return 2
    policy = OpenSetPolicy.from_config()
    report = build_report(
        protocols, policy, data, cache_dir=args.cache_dir, workers=args.workers, console=console
    )
    commit, dirty = git_state()
    argv_shown = " ".join(sys.argv[1:] if argv is None else argv)
    meta = {
        "command": (".venv/bin/python scripts/accuracy_report.py " + argv_shown).strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit[:12],
        "dirty": ", ".join(f"`{d}`" for d in dirty),
        "runtime": f"run time {time.monotonic() - t0:.0f} s (embedding and search "
        f"{report.embed_seconds:.0f} s; near 0 when cached) on {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(report, meta))
    if args.rows:
        write_rows(args.rows, (r for rs in report.rows.values() for r in rs))
    console.log(f"wrote {args.out} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
