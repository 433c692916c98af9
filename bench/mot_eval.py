"""Floor tracking accuracy on MOTChallenge data: MOTA / IDF1 (motmetrics) and floor density error.

Run by hand (not in pytest); figures go to docs/floor-tracking.md::

    python bench/mot_eval.py                         # PETS09-S2L1 + TUD-Campus, ssdlite
    python bench/mot_eval.py --detector hog
    python bench/mot_eval.py --write-points config/calibration/pets09-s2l1-points.csv

Detection (the slow part, minutes per sequence when not cached) shows a progress bar on stderr
when stderr is a terminal (``--quiet`` hides it); the printed figures go to stdout unchanged.

What is scored, and why:

* The real floor pipeline (detector → ByteTrack → Kalman box) on every frame of the video,
  times from ``seqinfo.ini`` (PETS09: 7 fps, not the avi's 10).
* CLEAR-MOT / ID metrics at IoU ≥ 0.5 against the gt scaled to the video
  (storesense_tools.mot_data).
  As in MOTChallenge, a hypothesis matched to an ignore row (``conf == 0``) is removed.
* PETS09's gt leaves out walkers outside the annotated area (the far-left footpath), so a
  second line scores with an ROI: hypotheses whose foot point lies outside the convex hull of
  all gt foot points (grown by 10 px) are don't-care. Both lines are printed.
* Density (PETS09 only; TUD has no world coordinates): every frame's tracked foot points go
  through the example calibration to metres; the gt world points are binned the same way into
  ``--cell-m`` cells per ``--interval-s``. Per interval: count error = |Σ predicted mean persons
  − Σ gt mean persons| inside the gt's floor hull; cell L1 = Σ_cells |pred − gt| (people put in
  the wrong cell count twice).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import motmetrics as mm
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.boxes import iou_matrix  # noqa: E402
from edge.floor.geometry import foot_points, load_calibration  # noqa: E402
from edge.floor.person_detect import Detections, make_person_detector  # noqa: E402
from edge.floor.person_tracker import PersonTracker, TrackerConfig  # noqa: E402
from edge.floor.pipeline import DETECTOR_OPTIONS, FLOOR_COAST_S, tracker_for  # noqa: E402
from storesense_tools.cli_floor import progress_bar  # noqa: E402
from storesense_tools.floor_offline import occupancy_grid  # noqa: E402
from storesense_tools.mot_data import MotSequence, gt_roi, load_sequence  # noqa: E402

if TYPE_CHECKING:
    from rich.progress import Progress

DATA = REPO.parent / "shared" / "data" / "mot"
CALIBRATION = REPO / "config" / "calibration" / "pets09-s2l1.yaml"


def detect_all(
    seq: MotSequence, detector: str, cache: Path | None, progress: Progress
) -> list[tuple]:
    """Per-frame (boxes, scores); cached so tracker settings can be compared quickly."""
    path = cache / f"{seq.info.name}-{detector}.npz" if cache else None
    if path is not None and path.exists():
        z = np.load(path)
        return [(z[f"b{i}"], z[f"s{i}"]) for i in range(int(z["n"]))]
    det = make_person_detector(detector, **DETECTOR_OPTIONS[detector])
    out, t0 = [], time.perf_counter()
    task = progress.add_task(f"{seq.info.name} {detector}", total=seq.info.length)
    for _, frame in seq.frames():
        d = det.detect(frame)
        out.append((np.array(d.boxes), np.array(d.scores)))
        progress.advance(task)
    progress.remove_task(task)
    print(f"  {seq.info.name}: {len(out)} frames detected in {time.perf_counter() - t0:.1f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"b{i}": b for i, (b, _) in enumerate(out)}
        arrays |= {f"s{i}": s for i, (_, s) in enumerate(out)}
        np.savez(path, n=len(out), **arrays)
    return out


def track_all(
    dets: list[tuple],
    fps: float,
    cfg: TrackerConfig,
    coast_s: float = 0.0,
    frame_size: tuple[int, int] | None = None,
) -> list[list]:
    """Tracked people per frame; ``coast_s`` adds briefly lost tracks as the floor role does
    (with ``frame_size``: only while their predicted foot is in view, as the camera does)."""
    tracker = PersonTracker(cfg)
    out = []
    for i, (b, s) in enumerate(dets):
        people = tracker.update(i / fps, Detections(b, s))
        out.append(people + tracker.coasting(coast_s, frame_size))
    return out


def mot_scores(seq: MotSequence, tracks: list[list], roi: bool) -> dict[str, float]:
    acc = mm.MOTAccumulator(auto_id=True)
    hull = gt_roi(seq.gt).reshape(-1, 1, 2) if roi else None
    for i, people in enumerate(tracks):
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        ids = np.array([p.track_id for p in people], dtype=np.int64)
        gb, gid, ign = seq.gt.at(i)
        keep = np.ones(len(boxes), bool)
        if ign.any() and len(boxes):  # matched to an ignore region: neither hit nor FP
            keep &= ~(iou_matrix(boxes, gb[ign]) >= 0.5).any(axis=1)
        if hull is not None and len(boxes):
            feet = foot_points(boxes, seq.video_size)
            inside = [
                cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -10 for x, y in feet
            ]
            keep &= np.array(inside, bool)
        d = 1.0 - iou_matrix(gb[~ign], boxes[keep])
        d[d > 0.5] = np.nan
        acc.update(gid[~ign].tolist(), ids[keep].tolist(), d)
    res = mm.metrics.create().compute(
        acc,
        metrics=[
            "mota",
            "idf1",
            "num_switches",
            "num_false_positives",
            "num_misses",
            "precision",
            "recall",
            "num_unique_objects",
            "mostly_tracked",
        ],
    )
    return {k: float(v) for k, v in res.iloc[0].items()}


def density_errors(
    seq: MotSequence, tracks: list[list], cell_m: float, interval_s: float
) -> dict[str, float]:
    hom = load_calibration(CALIBRATION)
    fps = seq.info.frame_rate
    gt_world = seq.gt.world
    floor_hull = cv2.convexHull(gt_world[np.isfinite(gt_world).all(1)].astype(np.float32))

    def inside(xy: np.ndarray) -> np.ndarray:
        if not len(xy):
            return xy.reshape(0, 2)
        ok = [cv2.pointPolygonTest(floor_hull, (float(x), float(y)), False) >= 0 for x, y in xy]
        return xy[np.array(ok, bool)]

    pred, truth = [], []
    for i, people in enumerate(tracks):
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        xy = hom.to_floor(foot_points(boxes, seq.video_size), seq.video_size)
        pred.append((i / fps, inside(xy[np.isfinite(xy).all(1)])))
        w = gt_world[seq.gt.rows(i)]
        truth.append((i / fps, w[np.isfinite(w).all(1)]))
    p_grid = occupancy_grid(pred, cell_m, interval_s)
    g_grid = occupancy_grid(truth, cell_m, interval_s)
    n_int = int(np.floor((len(tracks) - 1) / fps / interval_s)) + 1
    pc, gc = np.zeros(n_int), np.zeros(n_int)
    cells: dict[tuple, list[float]] = {}
    for col, grid in ((0, p_grid), (1, g_grid)):
        for t0, cx, cy, mean in grid:
            k = round(t0 / interval_s)
            (pc if col == 0 else gc)[k] += mean
            cells.setdefault((k, cx, cy), [0.0, 0.0])[col] += mean
    l1 = np.zeros(n_int)
    for (k, _, _), (p, g) in cells.items():
        l1[k] += abs(p - g)
    err = np.abs(pc - gc)
    return {
        "intervals": n_int,
        "gt_mean_persons": float(gc.mean()),
        "count_mae": float(err.mean()),
        "count_p90": float(np.percentile(err, 90)),
        "count_bias": float((pc - gc).mean()),
        "share_le_0.5": float((err <= 0.5).mean()),
        "cell_l1_mean": float(l1.mean()),
    }


def position_errors(seq: MotSequence, tracks: list[list]) -> dict[str, float]:
    """Floor distance (m) between a tracked person's mapped foot point and the gt world point
    of the walker its box matches (IoU >= 0.5): the localisation part of the density error."""
    hom = load_calibration(CALIBRATION)
    err = []
    for i, people in enumerate(tracks):
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        r = seq.gt.rows(i)
        if not len(boxes) or not len(r):
            continue
        iou = iou_matrix(boxes, seq.gt.boxes[r])
        xy = hom.to_floor(foot_points(boxes, seq.video_size), seq.video_size)
        for k, j in enumerate(iou.argmax(axis=1)):
            if iou[k, j] >= 0.5 and np.isfinite(seq.gt.world[r[j]]).all():
                err.append(float(np.linalg.norm(xy[k] - seq.gt.world[r[j]])))
    e = np.array(err)
    return {
        "matched": len(e),
        "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)),
    }


def write_points(out: Path, n: int = 12) -> None:
    """Calibration marks from PETS09 gt: n foot points spread over the floor (farthest-point
    sampling in world metres), as an installer would measure marks spread over the floor."""
    seq = load_sequence(DATA / "pets09-s2l1")
    ok = ~seq.gt.ignore & np.isfinite(seq.gt.world).all(1)
    feet = foot_points(seq.gt.boxes[ok], seq.video_size)
    world = seq.gt.world[ok]
    idx = [int(np.argmin(world[:, 0]))]
    dist = np.linalg.norm(world - world[idx[0]], axis=1)
    for _ in range(n - 1):
        idx.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(world - world[idx[-1]], axis=1))
    lines = [
        "# PETS09-S2L1 (480x360 vtest.avi): gt foot point (u,v px) -> gt world (x,y m)",
        "# derived by bench/mot_eval.py --write-points (see docs/floor-tracking.md)",
        "u,v,x,y",
    ]
    lines += [f"{feet[i, 0]:.1f},{feet[i, 1]:.1f},{world[i, 0]:.3f},{world[i, 1]:.3f}" for i in idx]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {n} points to {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", choices=["ssdlite", "nanodet", "hog"], default="ssdlite")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/storesense-mot-cache"))
    ap.add_argument("--cell-m", type=float, default=1.0)
    ap.add_argument("--interval-s", type=float, default=1.0)
    ap.add_argument("--write-points", type=Path, help="write PETS09 calibration marks and stop")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    if args.write_points:
        write_points(args.write_points)
        return 0
    cv2.setNumThreads(1)
    cfg = tracker_for(args.detector)
    for name in ("pets09-s2l1", "tud-campus"):
        seq = load_sequence(DATA / name)
        with progress_bar(quiet=args.quiet) as progress:
            dets = detect_all(seq, args.detector, args.cache, progress)
        tracks = track_all(dets, seq.info.frame_rate, cfg)
        for roi in (False, True) if name == "pets09-s2l1" else (False,):
            s = mot_scores(seq, tracks, roi)
            print(
                f"{name:12s} {args.detector} roi={roi!s:5s} MOTA {s['mota']:.3f} "
                f"IDF1 {s['idf1']:.3f} IDsw {s['num_switches']:.0f} "
                f"FP {s['num_false_positives']:.0f} FN {s['num_misses']:.0f} "
                f"P {s['precision']:.3f} R {s['recall']:.3f} "
                f"MT {s['mostly_tracked']:.0f}/{s['num_unique_objects']:.0f}"
            )
        if name == "pets09-s2l1":
            pe = position_errors(seq, tracks)
            print(
                f"{name:12s} floor position error of matched tracks: "
                + ", ".join(f"{k} {v:.3f}" for k, v in pe.items())
            )
            coasting = track_all(dets, seq.info.frame_rate, cfg, FLOOR_COAST_S, seq.video_size)
            for cell, coast, tr in [(c, 0.0, tracks) for c in sorted({args.cell_m, 2.0})] + [
                (c, FLOOR_COAST_S, coasting) for c in sorted({args.cell_m, 2.0})
            ]:
                d = density_errors(seq, tr, cell, args.interval_s)
                print(
                    f"{name:12s} density coast {coast} s, cell {cell} m, {args.interval_s} s: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in d.items())
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
