"""The result sections of docs/accuracy.md (operating points, enrolment photos, per person,
false matches, images with no usable face), each a list of markdown lines, and the helpers
``render`` shares with them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from storesense_tools.accuracy.evaluate import Report
from storesense_tools.accuracy.rows import rel_path
from storesense_tools.accuracy.stats import Rate, fmt_rate, pct


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table, one line a row."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def main_keys(report: Report) -> list[str]:
    """The protocols of the main tables: all but the enrolment-photo variants (``family``)."""
    return [k for k, s in report.searched.items() if not s.protocol.family]


def short_name(path: Path, data_root: Path) -> str:
    """An image's name inside its data set: ``s2/3.pgm``, or ``Tony_Blair_0017`` for LFW-style
    files whose name already repeats their folder (halves the long no-face list)."""
    parts = Path(rel_path(path, data_root)).parts
    if len(parts) == 1 or parts[0] == "/":
        return path.name
    inner = parts[1:]
    if len(inner) == 2 and Path(inner[1]).stem.startswith(inner[0]):
        return Path(inner[1]).stem
    return "/".join(inner)


def operating_point_section(report: Report) -> list[str]:
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
    for k in main_keys(report):
        cells = [
            report.searched[k].protocol.title,
            fmt_rate(report.summaries[k].dir),
            fmt_rate(report.summaries[k].fpir, 2),
        ]
        for op in report.operating_points:
            cells += [fmt_rate(op.per_dataset[k].dir), fmt_rate(op.per_dataset[k].fpir, 2)]
        body.append(cells)
    L += md_table(header, body)
    L.append("")
    others = [k for k in main_keys(report) if k != report.reference]
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
        L += md_table(["target", "thresholds (5 folds)", "DIR (held out)", "FPIR (held out)"], rows)
        L.append("")
    if report.per_fold:
        L += [
            f"**Per fold at the default** ({ref}; a probe belongs to its person's fold; the "
            "gallery is always all enrolled people). The spread between folds is sampling "
            "variation between groups of different people, the only grouping LFW offers:",
            "",
        ]
        L += md_table(
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


def enrolment_section(report: Report) -> list[str]:
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
    L += md_table(["protocol", "gallery people", "DIR", "FPIR", "rank-1"], rows)
    L += ["", "Protocols:", ""]
    L += [
        f"- {report.searched[k].protocol.title}: {report.searched[k].protocol.rule}"
        for keys in fams.values()
        for k in keys
    ]
    L.append("")
    return L


def per_person_section(report: Report) -> list[str]:
    L = [
        "## Who carries the errors: per person",
        "",
        "No data set here has demographic labels, so the nearest thing to a bias analysis it "
        "allows is to ask whether misses are spread evenly over people or pile up on some. "
        "Micro DIR counts images (people with many photos weigh more), macro DIR averages "
        "people. Enrolled people with at least one genuine probe (a probe with no usable face "
        "counts as a miss, as everywhere in this report):",
        "",
    ]
    rows = []
    for k in main_keys(report):
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
    L += md_table(
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
        top_people = sorted(sm.per_person.items(), key=lambda kv: -kv[1].n)[:5]
        L += [
            "",
            f"{report.searched[ref].protocol.title}'s most-photographed enrolled people "
            "(genuine probes identified / genuine probes): "
            + "; ".join(f"`{n}` {r.k}/{r.n}" for n, r in top_people)
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


def errors_section(report: Report) -> list[str]:
    L = ["## Every false match at the default", ""]
    for k in main_keys(report):
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
        for k in main_keys(report)
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


def no_face_section(report: Report) -> list[str]:
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
    for k in main_keys(report):
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
    L += md_table(["data set", "enrolment images refused (FTE)", "probe images", "why"], rows)
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
