"""Calibrate the open-set match threshold and margin on LFW View 2 folds 1-5.

Protocol (docs/calibration.md): enrol the first image of every person with >= 2 images;
probes are their other images (genuine) and every single-image person (strangers, never
enrolled). Embeddings come from the live ``FacePipeline`` (cached under ~/.cache/storesense,
keyed by the pipeline code and models) and decisions from the live ``OpenSetPolicy``.
Prints FPIR (strangers matched), DIR (enrolled probes identified correctly) and rank-1 per
threshold and margin, the largest threshold under the FPIR target per margin, and every
stranger matched at the configured defaults, flagging the ones that are LFW label errors.

    .venv/bin/python scripts/calibrate_threshold.py [--lfw ../shared/data/faces/lfw-dev]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import beta

from hub.faces.matcher import OpenSetPolicy, SearchHit
from storesense_tools.face_eval import build_index, embed_images, lfw_split

DEFAULT_LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "lfw-dev"
THRESHOLDS = [round(float(t), 2) for t in np.arange(0.35, 0.6001, 0.01)]
MARGINS = [0.0, 0.05, 0.08, 0.10, 0.12]
# Probe image -> the enrolled identity it really shows. From the LFW Errata (data README) plus
# one spelling duplicate found by this script (Hasan_Wirayuda = Hassan_Wirajuda, checked by eye).
# A "stranger" matched to the identity listed here is a correct match, not a false one.
SAME_PERSON = {
    "Carlos_Ruckauf_0001": "Eduardo_Duhalde",
    "Yingfan_Wang_0001": "Wang_Yingfan",
    "Hasan_Wirayuda_0001": "Hassan_Wirajuda",
    "Shinya_Taniguchi_0001": "Takahiro_Mori",
    "Andrew_Gilligan_0001": "Andrew_Caldecott",
    "Martha_Bowen_0002": "Gabrielle_Rose",
}


def upper_95(k: int, n: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound on a rate seen k times in n trials.

    2,200 strangers is a small sample for a 1 % rate: the bound, not the point estimate, is
    what must stay under the target.
    """
    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def evaluate(lfw: Path, policy: OpenSetPolicy) -> dict:
    """Every number in docs/calibration.md, from one embedding pass (cached)."""
    enrol, probes, all_paths = lfw_split(lfw)
    emb = embed_images(all_paths, label="LFW folds 1-5")
    row = {p: k for k, p in enumerate(all_paths)}
    index, names = build_index([i for i, _ in enrol], emb[[row[p] for _, p in enrol]])
    enrolled = set(names)
    p_emb = emb[[row[p] for _, p in probes]]
    has_face = np.isfinite(p_emb).all(axis=1)
    hits: list[SearchHit] = index.search(p_emb[has_face])
    kept = [(i, p) for (i, p), f in zip(probes, has_face, strict=True) if f]
    true = np.array([i for i, _ in kept])
    genuine = np.array([t in enrolled for t in true])
    n_strangers = int((~genuine).sum())
    nearest = np.array([names[h.label] for h in hits])
    table = []
    for margin in MARGINS:
        for thr in THRESHOLDS:
            p = OpenSetPolicy(thr, margin)
            dec = np.array([names[d] if (d := p.decide_one(h)) is not None else "" for h in hits])
            fp = int((dec[~genuine] != "").sum())
            table.append(
                {
                    "threshold": thr,
                    "margin": margin,
                    "fpir": fp / n_strangers,
                    "fpir_upper95": upper_95(fp, n_strangers),
                    "strangers_matched": fp,
                    "dir": float((dec[genuine] == true[genuine]).mean()),
                    "misidentified": float(((dec != "") & (dec != true))[genuine].mean()),
                }
            )
    stranger_matches = []
    for (ident, path), h in zip(kept, hits, strict=True):
        d = policy.decide_one(h)
        if ident not in enrolled and d is not None:
            stem = path.stem
            stranger_matches.append(
                {
                    "probe": stem,
                    "matched": names[d],
                    "distance": round(h.distance, 3),
                    "label_error": SAME_PERSON.get(stem) == names[d],
                }
            )
    return {
        "enrolled_identities": len(names),
        "enrol_images_without_face": len(enrol) - len(names),
        "genuine_probes": int(genuine.sum()),
        "stranger_probes": n_strangers,
        "probes_without_face": int((~has_face).sum()),
        "rank1": float((nearest[genuine] == true[genuine]).mean()),
        "policy": {"threshold": policy.threshold, "margin": policy.margin},
        "stranger_matches_at_policy": stranger_matches,
        "table": table,
    }


def _cell(r: dict) -> str:
    return f"{r['fpir']:.2%} ({r['fpir_upper95']:.2%}) / {r['dir']:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--target-fpir", type=float, default=0.01)
    ap.add_argument("--json", type=Path, help="also write the full result here")
    args = ap.parse_args()
    policy = OpenSetPolicy.from_config()
    res = evaluate(args.lfw, policy)
    print(
        f"enrolled {res['enrolled_identities']} (+{res['enrol_images_without_face']} enrol "
        f"images without a usable face), genuine probes {res['genuine_probes']}, strangers "
        f"{res['stranger_probes']}, probes without face {res['probes_without_face']}, "
        f"rank-1 {res['rank1']:.2%}\n"
    )
    print("FPIR (one-sided 95 % upper bound) / DIR, single frame")
    print("| threshold | " + " | ".join(f"margin {m:g}" for m in MARGINS) + " |")
    print("|---" * (len(MARGINS) + 1) + "|")
    for thr in THRESHOLDS:
        cells = [_cell(r) for r in res["table"] if r["threshold"] == thr]
        print(f"| {thr:.2f} | " + " | ".join(cells) + " |")
    print()
    for margin in MARGINS:
        ok = [
            r
            for r in res["table"]
            if r["margin"] == margin and r["fpir_upper95"] < args.target_fpir
        ]
        if ok:
            best = max(ok, key=lambda r: r["threshold"])
            print(
                f"margin {margin:g}: largest threshold with FPIR upper bound < "
                f"{args.target_fpir:.0%}: {best['threshold']:.2f} ({_cell(best)})"
            )
    at = [
        r
        for r in res["table"]
        if r["threshold"] == policy.threshold and r["margin"] == policy.margin
    ]
    if at:
        print(f"\nconfigured default {policy.threshold} / {policy.margin}: {_cell(at[0])}")
    matches = res["stranger_matches_at_policy"]
    errors = sum(m["label_error"] for m in matches)
    print(f"strangers matched at the default: {len(matches)} ({errors} are LFW label errors)")
    for m in matches:
        flag = "  <- same person, label error" if m["label_error"] else ""
        print(f"  {m['probe']} -> {m['matched']} at {m['distance']}{flag}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
