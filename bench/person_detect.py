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
    python bench/person_detect.py --layouts before,auto,fallback --thresholds 0.2  # issue 14
    python bench/person_detect.py --layouts auto --grey          # greyscale camera
    python bench/person_detect.py --layouts auto --model edge/models/x.tflite  # a variant
    python bench/person_detect.py --detector nanodet --layouts auto,full --every 2  # issue 14
    taskset -c 1 python bench/person_detect.py --per-call 60   # one call, ssdlite vs nanodet
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from rich.progress import Progress

from edge.floor.geometry import Homography, load_calibration
from edge.floor.person_detect import make_person_detector
from edge.floor.tile_plan import fit_level_camera
from storesense_tools.mot_data import MotSequence, gt_roi, load_sequence, score_frame

DATA = Path(os.environ.get("STORESENSE_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
SEQS = {"pets09": ("mot/pets09-s2l1", True), "tud": ("mot/tud-campus", False)}
PETS_CALIBRATION = Path(__file__).parents[1] / "config" / "calibration" / "pets09-s2l1.yaml"
HEIGHT_BINS = (0, 40, 60, 80, 120, 1e9)  # gt box height in video pixels
TILED: tuple[Literal["ssdlite", "nanodet"], ...] = (
    "ssdlite",
    "nanodet",
)  # networks run on the calibration's windows (same tiling code)


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


def calibration(seq_key: str, seq: MotSequence) -> tuple[Homography, str]:
    """Each clip's own calibration: PETS09 the repo's 12-mark homography; TUD-Campus has no
    world coordinates, so a level camera is fitted to its gt boxes (1.7 m people)."""
    if seq_key == "pets09":
        return load_calibration(PETS_CALIBRATION), PETS_CALIBRATION.name
    b = seq.gt.boxes[~seq.gt.ignore]
    hom, err = fit_level_camera(b, seq.video_size)
    return hom, f"level camera fitted to {len(b)} gt boxes (median height error {err:.1%})"


def layout_options(layout: str, seq_key: str, seq: MotSequence) -> dict:
    """Detector options of a named tile layout (``--layouts``)."""
    if layout == "auto":
        hom, _ = calibration(seq_key, seq)
        return {"homography": hom}
    if layout == "before":  # the PETS09-tuned constants this replaces
        return {"tiles": (4, 1), "tile_band": (0.15, 0.65)}
    if layout == "fallback":  # no calibration
        return {}
    if layout == "full":
        return {"tiles": (1, 1), "tile_band": (0.0, 1.0)}
    raise SystemExit(f"unknown layout {layout!r}")


def run(seq_key: str, args: argparse.Namespace, progress: Progress, layout: str = "") -> None:
    rel, use_roi = SEQS[seq_key]
    seq = load_sequence(DATA / rel)
    roi = gt_roi(seq.gt) if use_roi else None
    opts = parse_opts(args.opt)
    tiled = args.detector in TILED
    if layout and tiled:
        opts = {**layout_options(layout, seq_key, seq), **opts}
        if layout == "auto":
            print(f"\n{seq.info.name} calibration: {calibration(seq_key, seq)[1]}")
    low = min(args.thresholds)
    if tiled:
        opts.setdefault("num_threads", 1)
        if args.model:
            opts["model_path"] = args.model
    det = make_person_detector(args.detector, **{**opts, "score_threshold": low})
    if tiled:
        print(f"  {layout or 'options'}: {det.plan(*seq.video_size).describe()}")  # type: ignore[attr-defined]
    frames, times, found = [], [], []
    n = seq.info.length if args.frames is None else min(args.frames, seq.info.length)
    task = progress.add_task(f"{seq_key} {args.detector}", total=n)
    for i, frame in seq.frames(0, n):
        progress.advance(task)
        if i % args.every:
            continue
        if args.grey:  # a greyscale camera, as OpenCV decodes it: three equal channels
            frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        t0 = time.perf_counter()
        d = det.detect(frame)
        times.append(time.perf_counter() - t0)
        frames.append(i)
        found.append(d)
    progress.remove_task(task)
    ms = np.array(times) * 1000
    print(
        f"\n{seq.info.name}: {len(frames)} frames ({seq.video_size[0]}x{seq.video_size[1]}), "
        f"{args.detector} {layout} {'grey ' if args.grey else ''}"
        f"{ {k: v for k, v in opts.items() if k != 'homography'} }"
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


def per_call_ms(rounds: int) -> None:
    """Median ms of one network call per tiled detector, interleaved so that load changes hit
    both alike (one thread; a real frame window, resize and decode included)."""
    frame = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    dets = {n: make_person_detector(n, num_threads=1, tiles=(1, 1)) for n in TILED}
    times: dict[str, list[float]] = {n: [] for n in TILED}
    for _ in range(rounds):
        for name, det in dets.items():
            t0 = time.perf_counter()
            det._run(rgb)  # type: ignore[attr-defined]
            times[name].append(time.perf_counter() - t0)
    for label, ts in times.items():
        ms = np.array(ts[3:]) * 1000
        print(f"  {label}: one call median {np.median(ms):.1f} ms  p90 {np.percentile(ms, 90):.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", choices=(*TILED, "hog"), default="ssdlite")
    ap.add_argument("--seq", choices=(*SEQS, "all"), default="all")
    ap.add_argument("--opt", action="append", default=[], help="detector option key=json")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6", help="score thresholds")
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--every", type=int, default=1, help="score every Nth frame")
    ap.add_argument("--frames", type=int, help="stop after this many frames")
    ap.add_argument(
        "--layouts",
        default="",
        help="comma list of tile layouts to compare in one run: auto (from each clip's "
        "calibration), before (PETS-tuned 4x1 band 0.15-0.65), fallback (no calibration), full",
    )
    ap.add_argument("--grey", action="store_true", help="feed greyscale frames (3 equal channels)")
    ap.add_argument(
        "--model", type=Path, help="another .tflite of that network (e.g. float16 / int8)"
    )
    ap.add_argument(
        "--per-call", type=int, metavar="N", help="only time N interleaved calls per network"
    )
    args = ap.parse_args(argv)
    if args.per_call:
        cv2.setNumThreads(1)
        print(f"load: {os.getloadavg()} on {os.cpu_count()} cores")
        per_call_ms(args.per_call)
        print(f"load: {os.getloadavg()}")
        return 0
    args.thresholds = [float(t) for t in args.thresholds.split(",")]
    cv2.setNumThreads(1)
    print(f"load: {os.getloadavg()} on {os.cpu_count()} cores")
    with Progress(transient=True) as progress:
        for key in SEQS if args.seq == "all" else (args.seq,):
            for layout in args.layouts.split(",") if args.layouts else [""]:
                run(key, args, progress, layout)
    print(f"load: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
