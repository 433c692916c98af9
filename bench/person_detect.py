"""Person-detector precision/recall (IoU >= 0.5) and single-thread speed on MOTChallenge clips.

Runs a detector from ``edge/floor/person_detect.py`` over PETS09-S2L1 (gt scaled by 0.625 to the
480x360 ``vtest.avi``; precision scored only inside the hull of the gt foot points, see
``storesense_tools.mot_data.score_frame``) and TUD-Campus (640x480, full frame), at one thread
(``cv2.setNumThreads(1)``, TFLite ``num_threads=1``). Detections are collected once at a low
score threshold and re-thresholded offline: with greedy NMS that is the same as running at
each threshold. Figures are in docs/floor-detection.md.

    python bench/person_detect.py --detector ssdlite
    python bench/person_detect.py --detector ssdlite --opt tiles='[2,1]' --thresholds 0.3,0.4
    python bench/person_detect.py --opt tiles='[2,2]' --opt tile_band='[0,1]'  # before
    python bench/person_detect.py --opt tiles='[1,1]' --opt tile_band='[0,1]'  # whole frame
    python bench/person_detect.py --detector hog --every 5
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from edge.floor.person_detect import make_person_detector
from storesense_tools.mot_data import gt_roi, load_sequence, score_frame

DATA = Path(os.environ.get("STORESENSE_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
SEQS = {"pets09": ("mot/pets09-s2l1", True), "tud": ("mot/tud-campus", False)}
HEIGHT_BINS = (0, 40, 60, 80, 120, 1e9)  # gt box height in video pixels


def parse_opts(items: list[str]) -> dict:
    """``key=value`` pairs, values as JSON where they parse (lists become tuples)."""
    out = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        out[key] = tuple(val) if isinstance(val, list) else val
    return out


def run(seq_key: str, args: argparse.Namespace, progress: Progress) -> None:
    rel, use_roi = SEQS[seq_key]
    seq = load_sequence(DATA / rel)
    roi = gt_roi(seq.gt) if use_roi else None
    opts = parse_opts(args.opt)
    low = min(args.thresholds)
    if args.detector == "ssdlite":
        opts.setdefault("num_threads", 1)
    det = make_person_detector(args.detector, **{**opts, "score_threshold": low})
    frames, times, found = [], [], []
    n = seq.info.length if args.frames is None else min(args.frames, seq.info.length)
    task = progress.add_task(f"{seq_key} {args.detector}", total=n)
    for i, frame in seq.frames(0, n):
        progress.advance(task)
        if i % args.every:
            continue
        t0 = time.perf_counter()
        d = det.detect(frame)
        times.append(time.perf_counter() - t0)
        frames.append(i)
        found.append(d)
    progress.remove_task(task)
    ms = np.array(times) * 1000
    print(
        f"\n{seq.info.name}: {len(frames)} frames ({seq.video_size[0]}x{seq.video_size[1]}), "
        f"{args.detector} {opts}"
    )
    print(
        f"  ms/frame 1 thread: mean {ms.mean():.1f}  p50 {np.median(ms):.1f}  "
        f"p95 {np.percentile(ms, 95):.1f}  -> {1000 / ms.mean():.1f} fps"
    )
    print(
        "  thr     P      R      F1    tp    fp    fn   dc   recall by gt height "
        + " ".join(f"<{int(h)}" if h < 1e9 else "more" for h in HEIGHT_BINS[1:])
    )
    for thr in sorted(args.thresholds):
        tp = fp = fn = dc = 0
        hit_h, all_h = np.zeros(len(HEIGHT_BINS) - 1), np.zeros(len(HEIGHT_BINS) - 1)
        for i, d in zip(frames, found, strict=True):
            keep = d.scores >= thr
            b, _, ign = seq.gt.at(i)
            s = score_frame(d.boxes[keep], b, ign, iou=args.iou, roi=roi)
            tp, fp, fn, dc = tp + s.tp, fp + s.fp, fn + s.fn, dc + s.dont_care
            hts = (b[~ign, 3] - b[~ign, 1]).astype(np.float64)
            bins = np.digitize(hts, HEIGHT_BINS) - 1
            np.add.at(all_h, bins, 1)
            np.add.at(hit_h, bins[s.matched_gt], 1)
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        f1 = 2 * p * r / max(1e-9, p + r)
        by_h = " ".join(f"{h / a:.2f}" if a else "  - " for h, a in zip(hit_h, all_h, strict=True))
        print(f"  {thr:.2f}  {p:.3f}  {r:.3f}  {f1:.3f} {tp:5d} {fp:5d} {fn:5d} {dc:4d}   {by_h}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", choices=("ssdlite", "hog"), default="ssdlite")
    ap.add_argument("--seq", choices=(*SEQS, "all"), default="all")
    ap.add_argument("--opt", action="append", default=[], help="detector option key=json")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6", help="score thresholds")
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--every", type=int, default=1, help="score every Nth frame")
    ap.add_argument("--frames", type=int, help="stop after this many frames")
    args = ap.parse_args(argv)
    args.thresholds = [float(t) for t in args.thresholds.split(",")]
    cv2.setNumThreads(1)
    print(f"load: {os.getloadavg()} on {os.cpu_count()} cores")
    with Progress(transient=True) as progress:
        for key in SEQS if args.seq == "all" else (args.seq,):
            run(key, args, progress)
    print(f"load: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
