"""Calibrate the open-set match threshold and margin on LFW View 2 folds 1-5.

Protocol (docs/calibration.md): enrol the first image of every person with >= 2 images;
probes are their other images (genuine) and every single-image person (strangers, never
enrolled). Embeddings come from the live ``FacePipeline`` (cached under ~/.cache/storesense).
Prints a table of FPIR (strangers matched), DIR (enrolled probes identified correctly) and
rank-1 per threshold and margin, and the largest threshold with FPIR below the target.

    .venv/bin/python scripts/calibrate_threshold.py [--lfw ../shared/data/faces/lfw-dev]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hub.matcher import OpenSetPolicy
from storesense.face_eval import build_index, embed_images, lfw_split

DEFAULT_LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "lfw-dev"
THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.605, 0.02)]
MARGINS = [0.0, 0.05, 0.08, 0.10, 0.12]


def evaluate(lfw: Path) -> dict:
    enrol, probes, all_paths = lfw_split(lfw)
    emb = embed_images(all_paths, label="LFW")
    row = {p: k for k, p in enumerate(all_paths)}
    index, names = build_index([i for i, _ in enrol], emb[[row[p] for _, p in enrol]])
    enrolled = set(names)
    p_emb = emb[[row[p] for _, p in probes]]
    has_face = np.isfinite(p_emb).all(axis=1)
    hits = index.search(p_emb[has_face])
    true = [i for (i, _), f in zip(probes, has_face, strict=True) if f]
    genuine = np.array([t in enrolled for t in true])
    nearest = np.array([names[h.label] for h in hits])
    rank1 = float((nearest[genuine] == np.array(true)[genuine]).mean())
    table = []
    for margin in MARGINS:
        for thr in THRESHOLDS:
            policy = OpenSetPolicy(thr, margin)
            decided = [policy.decide_one(h) for h in hits]
            dec = np.array([names[d] if d is not None else "" for d in decided])
            fpir = float((dec[~genuine] != "").mean())
            dir_ = float((dec[genuine] == np.array(true)[genuine]).mean())
            table.append({"threshold": thr, "margin": margin, "fpir": fpir, "dir": dir_})
    return {
        "enrolled_identities": len(names),
        "genuine_probes": int(genuine.sum()),
        "stranger_probes": int((~genuine).sum()),
        "probes_without_face": int((~has_face).sum()),
        "enrol_images_without_face": len(enrol) - len(names),
        "rank1": rank1,
        "table": table,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--target-fpir", type=float, default=0.01)
    ap.add_argument("--json", type=Path, help="also write the full result here")
    args = ap.parse_args()
    res = evaluate(args.lfw)
    print(
        f"enrolled {res['enrolled_identities']}, genuine probes {res['genuine_probes']}, "
        f"strangers {res['stranger_probes']}, probes without face {res['probes_without_face']}, "
        f"rank-1 {res['rank1']:.4f}"
    )
    print("| threshold | " + " | ".join(f"m={m}: FPIR / DIR" for m in MARGINS) + " |")
    for thr in THRESHOLDS:
        cells = [f"{r['fpir']:.2%} / {r['dir']:.2%}" for r in res["table"] if r["threshold"] == thr]
        print(f"| {thr:.3f} | " + " | ".join(cells) + " |")
    for margin in MARGINS:
        ok = [r for r in res["table"] if r["margin"] == margin and r["fpir"] < args.target_fpir]
        if ok:
            best = max(ok, key=lambda r: r["threshold"])
            print(
                f"margin {margin}: largest threshold with FPIR < {args.target_fpir:.0%}: "
                f"{best['threshold']} (FPIR {best['fpir']:.2%}, DIR {best['dir']:.2%})"
            )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
