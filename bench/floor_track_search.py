"""Track-level operating point of the floor camera, chosen with a cross-clip hold-out (issue 14).

Run by hand (not in pytest); figures go to docs/floor-tracking.md::

    python bench/floor_track_search.py                 # detect once (cached), then the search
    python bench/floor_track_search.py --cache DIR --top 5

Why a tracker-level search: the tracker confirms a person over frames, so the detector boxes it
is fed may be weaker than a per-frame report threshold would allow (a one-frame false positive
is never confirmed), and a track coasting through a short miss keeps its person. The levers:
the tracker's score bands (``high_score``, ``low_score``, ``new_track_score``), how many
consecutive matches confirm a track (``confirm_hits``), how long a lost track is kept for
re-association (``max_lost_s``), the detector's ``box_scale`` width, and whether the track
output also carries confirmed tracks coasted up to ``out_coast_s`` (the camera counts them;
``storesense track``'s output then carries them too).

Why a hold-out: there are only two clips with ground truth, and every earlier constant was
picked on both. So each clip chooses once and the other scores the choice: choose on PETS09,
score on TUD-Campus, and the other way round. Neither direction's scores on the choosing clip
are held out, and the report says which is which.

Detections: SSDLite as the floor role runs it, but the boxes are kept down to score 0.05 so the
low bands can be searched; the tracker sees only boxes >= ``low_score``. Filtering after NMS
equals NMS at the higher threshold (a box is suppressed only by higher-scoring ones); the
body-part filter still sees the weaker full-frame boxes, so it is close, not identical. The
tiling is ``bench/mot_eval.py``'s (no calibration passed: the fallback full frame + 2x2), so the
figures are comparable with its table. ``box_scale`` is re-applied to the cached boxes (it acts
after NMS, so that is exact).

Scoring: P and R are per frame, Hungarian at IoU >= 0.5 with MOTChallenge's ignore rows, as
motmetrics' CLEAR-MOT counts them without the identity bookkeeping; the chosen variants are
re-scored with bench/mot_eval.py's motmetrics code (MOTA, IDF1, ID switches, P, R). Count error
per 1 s interval is bench/floor_count_eval.py's, with the shipped coasting rule.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from floor_count_eval import count_scores  # noqa: E402
from mot_eval import DATA, mot_scores  # noqa: E402
from person_detect import calibration  # noqa: E402

from edge.boxes import iou_matrix  # noqa: E402
from edge.floor.person_detect import Detections, make_person_detector, rescale_boxes  # noqa: E402
from edge.floor.person_tracker import PersonTracker, TrackedPerson, TrackerConfig  # noqa: E402
from edge.floor.pipeline import FLOOR_COAST_S  # noqa: E402
from storesense_tools.mot_data import MotSequence, load_sequence  # noqa: E402

CLIPS = ("pets09-s2l1", "tud-campus")
CACHE_SCORE = 0.05
SHIPPED_BOX_W = 0.75  # SsdlitePersonDetector's box_scale width the cached boxes carry


def detect_low(
    seq: MotSequence,
    cache: Path,
    layout: str = "fallback",
    flip: bool = False,
    nms_iou: float = 0.4,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-frame SSDLite boxes >= CACHE_SCORE (one thread), cached. ``layout`` "fallback": no
    calibration (full frame + 2x2, as bench/mot_eval.py); "auto": tiles planned from the clip's
    calibration as bench/person_detect.py gets it (PETS09 the repo's marks, TUD-Campus a level
    camera fitted to its gt boxes), every tile every frame. ``flip``: the full frame also runs
    mirrored (``flip_full``). ``nms_iou``: the detector's NMS overlap (0.4 its default)."""
    suffix = (
        ("" if layout == "fallback" else f"-{layout}")
        + ("-flip" if flip else "")
        + ("" if nms_iou == 0.4 else f"-nms{nms_iou}")
    )
    path = cache / f"{seq.info.name}-ssdlite-s{CACHE_SCORE}{suffix}.npz"
    if path.exists():
        z = np.load(path)
        return [(z[f"b{i}"], z[f"s{i}"]) for i in range(int(z["n"]))]
    opts: dict[str, object] = {"flip_full": flip, "nms_iou": nms_iou}
    if layout == "auto":
        key = "pets09" if seq.info.name.lower().startswith("pets") else "tud"
        opts["homography"] = calibration(key, seq)[0]
    det = make_person_detector("ssdlite", score_threshold=CACHE_SCORE, num_threads=1, **opts)
    out, t0 = [], time.perf_counter()
    for _, frame in seq.frames():
        d = det.detect(frame)
        out.append((np.array(d.boxes), np.array(d.scores)))
    print(f"  {seq.info.name}: {len(out)} frames detected in {time.perf_counter() - t0:.1f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"b{i}": b for i, (b, _) in enumerate(out)}
    arrays |= {f"s{i}": s for i, (_, s) in enumerate(out)}
    np.savez(path, n=len(out), **arrays)
    return out


@dataclass(frozen=True)
class Variant:
    """One operating point: tracker settings, box width scale, coasted boxes in the output."""

    cfg: TrackerConfig
    box_w: float = SHIPPED_BOX_W
    out_coast_s: float = 0.0

    def label(self) -> str:
        c = self.cfg
        return (
            f"high {c.high_score:.2f} low {c.low_score:.2f} new {c.new_track_score:.2f} "
            f"confirm {c.confirm_hits} lost {c.max_lost_s:.1f}s boxw {self.box_w:.2f} "
            f"out_coast {self.out_coast_s:.1f}s"
        )


# The operating point before this search (high_score 0.30, box width 0.75), kept explicit so
# the comparison still means "before" now that the defaults are the chosen point.
SHIPPED = Variant(replace(TrackerConfig(), high_score=0.3), SHIPPED_BOX_W)


def run(
    dets: list[tuple[np.ndarray, np.ndarray]],
    fps: float,
    size: tuple[int, int],
    cfg: TrackerConfig,
    box_w: float,
    out_coasts: list[float],
) -> tuple[dict[float, list[list[TrackedPerson]]], list[list[TrackedPerson]]]:
    """One tracker pass -> track output per ``out_coast_s``, and the counted people (shipped
    coasting rule) of the same pass."""
    tracker = PersonTracker(cfg)
    k = box_w / SHIPPED_BOX_W
    outs: dict[float, list[list[TrackedPerson]]] = {c: [] for c in out_coasts}
    counted: list[list[TrackedPerson]] = []
    for i, (b, s) in enumerate(dets):
        keep = s >= cfg.low_score
        boxes = rescale_boxes(b[keep], (k, 1.0)) if k != 1.0 else b[keep]
        seen = tracker.update(i / fps, Detections(boxes, s[keep]))
        for c in out_coasts:
            outs[c].append(seen + tracker.coasting(c, size))
        counted.append(seen + tracker.coasting(FLOOR_COAST_S, size))
    return outs, counted


def quick_pr(seq: MotSequence, tracks: list[list[TrackedPerson]]) -> tuple[float, float]:
    """Per-frame P and R at IoU >= 0.5 (ignore rows as in bench/mot_eval.py)."""
    from scipy.optimize import linear_sum_assignment

    tp = fp = n_gt = 0
    for i, people in enumerate(tracks):
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        gb, _, ign = seq.gt.at(i)
        if ign.any() and len(boxes):
            boxes = boxes[~(iou_matrix(boxes, gb[ign]) >= 0.5).any(axis=1)]
        gt = gb[~ign]
        n_gt += len(gt)
        hits = 0
        if len(gt) and len(boxes):
            iou = iou_matrix(gt, boxes)
            r, c = linear_sum_assignment(-iou)
            hits = int((iou[r, c] >= 0.5).sum())
        tp += hits
        fp += len(boxes) - hits
    return tp / max(tp + fp, 1), tp / max(n_gt, 1)


def grid(args: argparse.Namespace) -> list[tuple[TrackerConfig, float]]:
    out = []
    for hi, lo, new, conf, lost, bw in itertools.product(
        args.high, args.low, args.new, args.confirm, args.lost, args.box_w
    ):
        if not lo < hi or new < hi:
            continue
        cfg = replace(
            TrackerConfig(),
            high_score=hi,
            low_score=lo,
            new_track_score=new,
            confirm_hits=conf,
            max_lost_s=lost,
        )
        out.append((cfg, bw))
    return out


def levers(chosen: list[Variant]) -> list[tuple[str, Variant]]:
    """The shipped point, each lever moved on its own, and the given combinations."""
    base = SHIPPED.cfg
    one = [
        ("high_score 0.25", Variant(replace(base, high_score=0.25))),
        ("high_score 0.20", Variant(replace(base, high_score=0.2))),
        ("low_score 0.05", Variant(replace(base, low_score=0.05))),
        ("new_track_score 0.35", Variant(replace(base, new_track_score=0.35))),
        (
            "new_track_score 0.35, confirm 3",
            Variant(replace(base, new_track_score=0.35, confirm_hits=3)),
        ),
        ("confirm_hits 3", Variant(replace(base, confirm_hits=3))),
        ("confirm_hits 4", Variant(replace(base, confirm_hits=4))),
        ("max_lost_s 3", Variant(replace(base, max_lost_s=3.0))),
        ("box width 0.85", Variant(base, box_w=0.85)),
        ("box width 0.95", Variant(base, box_w=0.95)),
        ("coasted in output 0.3 s", Variant(base, out_coast_s=0.3)),
        ("coasted in output 0.6 s", Variant(base, out_coast_s=0.6)),
    ]
    combined = [(f"combined {i + 1}", v) for i, v in enumerate(chosen)]
    return [("before (high 0.30, box width 0.75)", SHIPPED), *one, *combined]


def print_full(label: str, v: Variant, seqs: dict[str, MotSequence], dets: dict) -> None:
    """bench/mot_eval.py's motmetrics scores and the count error of one variant, both clips."""
    for name, seq in seqs.items():
        outs, counted = run(
            dets[name], seq.info.frame_rate, seq.video_size, v.cfg, v.box_w, [v.out_coast_s]
        )
        s = mot_scores(seq, outs[v.out_coast_s], roi=False)
        c = count_scores(seq, counted, 1.0)
        print(
            f"  {label:32s} {name:12s} MOTA {s['mota']:.3f} IDF1 {s['idf1']:.3f} "
            f"IDsw {s['num_switches']:3.0f} P {s['precision']:.3f} R {s['recall']:.3f} "
            f"count error {c['count_mae']:.3f} (bias {c['bias']:+.3f})",
            flush=True,
        )


PIPELINES = (  # name, high_score, SSDLite box width, tile refresh frames, coasting s
    ("before (high 0.30, box 0.75, coast 1)", 0.3, 0.75, 3, 1.0),
    ("after (high 0.25, box 0.85, coast 0.75)", 0.25, 0.85, 3, FLOOR_COAST_S),
    ("after, idle tiles every 5th frame", 0.25, 0.85, 5, FLOOR_COAST_S),
)


def pipeline_scores(seqs: dict[str, MotSequence]) -> None:
    """The camera's own path, every frame: FloorPipeline with the clip's calibration (tiles
    planned from it), tile skipping, its coasting; seen people scored as MOT tracks, seen +
    coasted as counts; the agent thread's CPU time per frame beside them."""
    from edge.floor.pipeline import FloorPipeline

    for label, high, box_w, refresh, coast in PIPELINES:
        for name, seq in seqs.items():
            key = "pets09" if name.startswith("pets") else "tud"
            hom = calibration(key, seq)[0]
            det = make_person_detector(
                "ssdlite", score_threshold=0.1, box_scale=(box_w, 1.0), num_threads=1
            )
            pipe = FloorPipeline(
                det,
                hom,
                tracker=replace(TrackerConfig(), high_score=high),
                coast_s=coast,
                tile_refresh_frames=refresh,
            )
            seen: list[list[TrackedPerson]] = []
            counted: list[list[TrackedPerson]] = []
            cpu0 = time.thread_time()
            n = 0
            for i, frame in seq.frames():
                ff = pipe.process(frame, i / seq.info.frame_rate)
                seen.append([p for p in ff.people if p.coasted_s == 0])
                counted.append(list(ff.people))
                n += 1
            cpu = (time.thread_time() - cpu0) / max(n, 1)
            s = mot_scores(seq, seen, roi=False)
            c = count_scores(seq, counted, 1.0)
            assert pipe.scheduler is not None
            print(
                f"  {label:36s} {name:12s} MOTA {s['mota']:.3f} IDF1 {s['idf1']:.3f} "
                f"IDsw {s['num_switches']:3.0f} P {s['precision']:.3f} R {s['recall']:.3f} "
                f"count error {c['count_mae']:.3f} (bias {c['bias']:+.3f}); tiles run "
                f"{pipe.scheduler.share_run:.0%}, {1000 * cpu:.1f} ms CPU/frame "
                f"(frame {seq.video_size[0]}x{seq.video_size[1]})",
                flush=True,
            )


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/storesense-mot-cache"))
    ap.add_argument("--high", type=floats, default=floats("0.2,0.25,0.3"))
    ap.add_argument("--low", type=floats, default=floats("0.05,0.1"))
    ap.add_argument("--new", type=floats, default=floats("0.3,0.35,0.45"))
    ap.add_argument("--confirm", type=lambda t: [int(x) for x in t.split(",")], default=[2, 3, 4])
    ap.add_argument("--lost", type=floats, default=floats("2,3"))
    ap.add_argument("--box-w", type=floats, default=floats("0.75,0.85"))
    ap.add_argument("--out-coast", type=floats, default=floats("0,0.3,0.6"))
    ap.add_argument(
        "--count-slack", type=float, default=0.05, help="count error allowed above shipped"
    )
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--detect-only", action="store_true")
    ap.add_argument("--layout", choices=["fallback", "auto"], default="fallback")
    ap.add_argument("--nms", type=float, default=0.4, help="detector NMS IoU for the cache")
    ap.add_argument(
        "--flip", action="store_true", help="detections with the full frame mirrored too"
    )
    ap.add_argument(
        "--levers",
        action="store_true",
        help="no search: the shipped point, each lever on its own and --combo, full scores",
    )
    ap.add_argument(
        "--pipeline",
        action="store_true",
        help="no search: the real FloorPipeline (calibrated tiles, tile skipping) before/after",
    )
    ap.add_argument(
        "--combo",
        action="append",
        default=[],
        help="high,low,new,confirm,lost,box_w,out_coast (with --levers; repeatable)",
    )
    args = ap.parse_args()
    cv2.setNumThreads(1)
    seqs = {n: load_sequence(DATA / n) for n in CLIPS}
    if args.pipeline:
        print(f"load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        pipeline_scores(seqs)
        print(f"load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    dets = {n: detect_low(s, args.cache, args.layout, args.flip, args.nms) for n, s in seqs.items()}
    print(f"layout {args.layout}, full frame mirrored too: {args.flip}, NMS IoU {args.nms}")
    if args.detect_only:
        return 0
    print(f"load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.levers:
        combos = []
        for text in args.combo:
            hi, lo, new, conf, lost, bw, oc = floats(text)
            cfg = replace(
                TrackerConfig(),
                high_score=hi,
                low_score=lo,
                new_track_score=new,
                confirm_hits=int(conf),
                max_lost_s=lost,
            )
            combos.append(Variant(cfg, bw, oc))
        for label, v in levers(combos):
            print_full(label, v, seqs, dets)
        print(f"load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    variants = grid(args)
    # results[clip][Variant] = (P, R, count error)
    results: dict[str, dict[Variant, tuple[float, float, float]]] = {n: {} for n in CLIPS}
    t0 = time.perf_counter()
    for name, seq in seqs.items():
        fps = seq.info.frame_rate
        for cfg, bw in [(SHIPPED.cfg, SHIPPED.box_w), *variants]:
            outs, counted = run(dets[name], fps, seq.video_size, cfg, bw, args.out_coast)
            ce = count_scores(seq, counted, 1.0)["count_mae"]
            for c, tracks in outs.items():
                p, r = quick_pr(seq, tracks)
                results[name][Variant(cfg, bw, c)] = (p, r, ce)
        print(f"  {name}: {len(results[name])} variants in {time.perf_counter() - t0:.0f} s")
    chosen = {}
    for choose, score in (CLIPS, CLIPS[::-1]):
        res = results[choose]
        p0, r0, c0 = res[SHIPPED]
        ok = [v for v, (p, r, c) in res.items() if p >= p0 and c <= c0 + args.count_slack]
        ok.sort(key=lambda v: (res[v][1], res[v][0]), reverse=True)
        print(
            f"\nchoose on {choose} (rule: max R with P >= shipped {p0:.3f} and count error <= "
            f"{c0:.3f} + {args.count_slack}); score on {score} (held out)"
        )
        print(
            f"  shipped   {choose}: P {p0:.3f} R {r0:.3f} cnt {c0:.3f} | {score}: "
            + "P {:.3f} R {:.3f} cnt {:.3f}".format(*results[score][SHIPPED])
        )
        for v in ok[: args.top]:
            print(
                f"  {v.label()}\n      {choose}: P {res[v][0]:.3f} R {res[v][1]:.3f} "
                f"cnt {res[v][2]:.3f} | held out {score}: "
                + "P {:.3f} R {:.3f} cnt {:.3f}".format(*results[score][v])
            )
        mm_best = max(res, key=lambda v: min(res[v][0], res[v][1]))
        print(
            f"  (max min(P,R) on {choose}: {mm_best.label()} -> "
            + "{:.3f}/{:.3f}; held out {:.3f}/{:.3f})".format(
                *res[mm_best][:2], *results[score][mm_best][:2]
            )
        )
        if ok:
            chosen[choose] = ok[0]
    print("\nmotmetrics (bench/mot_eval.py's scoring) of shipped and chosen, both clips:")
    for label, v in [("shipped", SHIPPED)] + [(f"chosen on {k}", v) for k, v in chosen.items()]:
        print_full(label, v, seqs, dets)
        print(f"    = {v.label()}")
    print(f"load {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
