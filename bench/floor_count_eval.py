"""Count people, not boxes: per-interval count error and false counts of the floor tracker.

Run by hand (not in pytest); figures go to docs/floor-tracking.md::

    python bench/floor_count_eval.py                  # both MOT clips, all coasting variants
    python bench/floor_count_eval.py --write-recall hub/floor/recall_by_height.yaml

Detections are cached like bench/mot_eval.py's (same file names, ``--cache``), so a detector
change needs the cache deleted. Every variant runs the real ``PersonTracker`` over the same
cached detections in one run, so the before/after lines compare like with like.

What is scored, and why:

* **Count error per interval** (``--interval-s``, default 1 s): per frame, the people the
  camera would count (confirmed tracks seen in the frame, plus the coasted ones) against the
  gt boxes of the frame; both averaged over the interval's frames, then |pred − gt| averaged
  over the intervals. Image counts work on both clips (TUD-Campus has no world coordinates).
  PETS09's gt leaves out walkers on the far-left footpath, so there a counted person whose
  foot point is outside the gt foot-point hull (grown by 10 px) is not counted, as in
  bench/mot_eval.py's ROI line; a counted box on an ignore region (conf 0) is not counted and
  the ignore rows are not people to find.
* **False counts**: counted person-frames that overlap no gt person (Hungarian, IoU ≥ 0.3 —
  looser than MOT's 0.5 because a coasted box is a prediction), as a share of all counted
  person-frames; **missed**: gt person-frames with no counted box.
* **Floor density** (PETS09 only, world gt): bench/mot_eval.py's density_errors, 1 m cells.
* ``--write-recall``: recall of the counted boxes (IoU ≥ 0.5, MOT's criterion) per gt box
  pixel-height band (``storesense.messages.FLOOR_HEIGHT_BANDS_PX``), over both clips at the
  shipped tracker settings: the table ``hub/floor/camera_trust.py`` reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from mot_eval import DATA, density_errors, detect_all  # noqa: E402

from edge.boxes import iou_matrix  # noqa: E402
from edge.floor.geometry import foot_points  # noqa: E402
from edge.floor.person_detect import Detections  # noqa: E402
from edge.floor.person_tracker import PersonTracker, TrackedPerson, TrackerConfig  # noqa: E402
from edge.floor.pipeline import FLOOR_COAST_S, FloorFrame  # noqa: E402
from edge.floor.smoothing import FLOOR_FILL_GAPS_S, FixedLagSmoother  # noqa: E402
from storesense.messages import FLOOR_HEIGHT_BANDS_PX, height_band  # noqa: E402
from storesense_tools.cli_floor import progress_bar  # noqa: E402
from storesense_tools.mot_data import MotSequence, gt_roi, load_sequence  # noqa: E402

CLIPS = ("pets09-s2l1", "tud-campus")


@dataclass(frozen=True)
class Variant:
    """One way of counting: how long lost tracks coast, which ones, and whether only in view."""

    name: str
    coast_s: float  # from the last detection
    min_hits: int = TrackerConfig().coast_min_hits
    frame_aware: bool = True  # stop coasting once the predicted foot point leaves the frame
    # The rule before this change: coast while lost (from the first missed frame, i.e. one
    # frame interval more than from the last detection) for 0.75 s, wherever the box went.
    before: bool = False


VARIANTS = (
    Variant("seen only (no coasting)", 0.0),
    Variant("before: any lost track 0.75 s", 0.75, 2, frame_aware=False, before=True),
    *(Variant(f"in view, >=2 hits, {c} s", c, 2) for c in (0.75, 1.0, 1.5)),
    *(Variant(f"in view, >=4 hits, {c} s", c, 4) for c in (0.5, 0.75, 1.0, 1.5, 2.0)),
    *(Variant(f"in view, >=8 hits, {c} s", c, 8) for c in (0.75, 1.0, 1.5)),
)


def run_tracker(dets: list[tuple], fps: float, size: tuple[int, int], v: Variant) -> list[list]:
    tracker = PersonTracker(TrackerConfig(coast_min_hits=v.min_hits))
    coast = v.coast_s + 1.0 / fps if v.before else v.coast_s
    out: list[list[TrackedPerson]] = []
    for i, (b, s) in enumerate(dets):
        seen = tracker.update(i / fps, Detections(b, s))
        out.append(seen + tracker.coasting(coast, size if v.frame_aware else None))
    return out


def with_filling(tracks: list[list], fps: float, size: tuple[int, int], fill_s: float) -> list:
    """``tracks`` through the camera's gap filling (edge.floor.smoothing, as FloorRole runs it):
    frames held ``fill_s``, a person seen again within it put on the line between sightings.
    Foot and floor points are not needed for counting boxes, so they are zeros here."""
    sm = FixedLagSmoother(fill_s, max_gap_s=fill_s, drop_unresolved=False)
    out: list[list] = []
    for i, people in enumerate(tracks):
        z = np.zeros((len(people), 2))
        frame = FloorFrame(t=i / fps, frame_size=size, people=people, foot_px=z, floor_xy=z)
        out += [list(f.people) for f, _ in sm.push(frame, i / fps)]
    return out + [list(f.people) for f, _ in sm.flush()]


def counted_boxes(seq: MotSequence, people: list[TrackedPerson], frame: int) -> np.ndarray:
    """The boxes of a frame that count as people under the clip's scoring rules (see top)."""
    boxes = np.array([p.box for p in people]).reshape(-1, 4)
    gb, _, ign = seq.gt.at(frame)
    keep = np.ones(len(boxes), bool)
    if ign.any() and len(boxes):
        keep &= ~(iou_matrix(boxes, gb[ign]) >= 0.5).any(axis=1)
    if seq.info.name.startswith("PETS") and len(boxes):
        hull = gt_roi(seq.gt).reshape(-1, 1, 2)
        feet = foot_points(boxes, seq.video_size)
        keep &= np.array(
            [cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -10 for x, y in feet], bool
        )
    return boxes[keep]


def _matches(gt: np.ndarray, hyp: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    if not len(gt) or not len(hyp):
        return []
    iou = iou_matrix(gt, hyp)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


def count_scores(seq: MotSequence, tracks: list[list], interval_s: float) -> dict[str, float]:
    fps = seq.info.frame_rate
    n_int = int(np.floor((len(tracks) - 1) / fps / interval_s)) + 1
    pred, truth, frames = np.zeros(n_int), np.zeros(n_int), np.zeros(n_int)
    counted = false = gt_total = missed = coasted = 0
    frame_err = []
    for i, people in enumerate(tracks):
        k = int(np.floor(i / fps / interval_s + 1e-9))
        boxes = counted_boxes(seq, people, i)
        gb, _, ign = seq.gt.at(i)
        gt = gb[~ign]
        pred[k] += len(boxes)
        truth[k] += len(gt)
        frames[k] += 1
        frame_err.append(abs(len(boxes) - len(gt)))
        hits = len(_matches(gt, boxes, 0.3))
        counted += len(boxes)
        false += len(boxes) - hits
        gt_total += len(gt)
        missed += len(gt) - hits
        coasted += sum(1 for p in people if p.coasted_s > 0)
    err = pred / frames - truth / frames
    return {
        "intervals": n_int,
        "gt_mean": float((truth / frames).mean()),
        "count_mae": float(np.abs(err).mean()),
        "bias": float(err.mean()),
        "frame_mae": float(np.mean(frame_err)),
        "false_share": false / max(counted, 1),
        "missed_share": missed / max(gt_total, 1),
        "coasted_share": coasted / max(sum(len(p) for p in tracks), 1),
    }


def recall_by_height(clips: dict[str, tuple[MotSequence, list[list]]]) -> dict:
    """Per height band: gt boxes and the share matched (IoU ≥ 0.5) by a counted box."""
    edges = list(FLOOR_HEIGHT_BANDS_PX)
    n = np.zeros(len(edges), int)
    hit = np.zeros(len(edges), int)
    per_clip: dict[str, list[int]] = {}
    for name, (seq, tracks) in clips.items():
        clip_n = np.zeros(len(edges), int)
        for i, people in enumerate(tracks):
            gb, _, ign = seq.gt.at(i)
            gt = gb[~ign]
            boxes = np.array([p.box for p in people]).reshape(-1, 4)
            matched = {r for r, _ in _matches(gt, boxes, 0.5)}
            for j, b in enumerate(gt):
                band = height_band(float(b[3] - b[1]))
                n[band] += 1
                clip_n[band] += 1
                hit[band] += j in matched
        per_clip[name] = clip_n.tolist()
    bands = []
    for b, lo in enumerate(edges):
        hi = edges[b + 1] if b + 1 < len(edges) else None
        bands.append(
            {
                "min_px": lo,
                "max_px": hi,
                "gt_boxes": int(n[b]),
                "recall": None if n[b] < MIN_BOXES else round(float(hit[b] / n[b]), 3),
            }
        )
    return {"bands": bands, "gt_boxes_per_clip": per_clip}


MIN_BOXES = 50  # fewer gt boxes in a band: its recall is left unmeasured (null)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/storesense-mot-cache"))
    ap.add_argument("--interval-s", type=float, default=1.0)
    ap.add_argument("--write-recall", type=Path, help="write the recall-by-height table here")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    shipped = Variant("shipped", FLOOR_COAST_S)
    at_shipped: dict[str, tuple[MotSequence, list[list]]] = {}
    for name in CLIPS:
        seq = load_sequence(DATA / name)
        with progress_bar(quiet=True) as progress:
            dets = detect_all(seq, "ssdlite", args.cache, progress)
        fps = seq.info.frame_rate
        for v in VARIANTS:
            tracks = run_tracker(dets, fps, seq.video_size, v)
            c = count_scores(seq, tracks, args.interval_s)
            line = ", ".join(f"{k} {val:.3f}" for k, val in c.items())
            if name == "pets09-s2l1":
                d = density_errors(seq, tracks, 1.0, args.interval_s)
                line += f" | floor hull: count_mae {d['count_mae']:.3f} bias {d['count_bias']:.3f}"
            print(f"{name:12s} {v.name:32s} {line}")
        tracks = with_filling(
            run_tracker(dets, fps, seq.video_size, shipped), fps, seq.video_size, FLOOR_FILL_GAPS_S
        )
        c = count_scores(seq, tracks, args.interval_s)
        line = ", ".join(f"{k} {val:.3f}" for k, val in c.items())
        label = f"shipped: {FLOOR_COAST_S} s + filling {FLOOR_FILL_GAPS_S} s"
        print(f"{name:12s} {label:32s} {line}")
        at_shipped[name] = (seq, tracks)
    if args.write_recall:
        table = recall_by_height(at_shipped)
        doc = {
            "version": 1,
            "measured": {
                "by": "bench/floor_count_eval.py --write-recall",
                "date": dt.date.today().isoformat(),
                "clips": list(CLIPS),
                "what": "share of gt person boxes (conf 1) in each pixel-height band matched "
                "at IoU >= 0.5 by a box the floor camera counts (confirmed tracks seen in "
                f"the frame, tracks coasted up to {FLOOR_COAST_S} s and gaps of people seen "
                f"again filled up to {FLOOR_FILL_GAPS_S} s), SSDLite floor "
                "detector and tracker at the shipped settings, frames at the clip's own size "
                "(PETS09 480x360, TUD-Campus 640x480)",
                "min_boxes": MIN_BOXES,
            },
            **table,
        }
        args.write_recall.write_text(
            "# recall of the floor camera's counts per person pixel-height band; written by\n"
            "# bench/floor_count_eval.py --write-recall (docs/floor-tracking.md)\n"
            + yaml.safe_dump(doc, sort_keys=False),
            encoding="utf-8",
        )
        print(f"wrote {args.write_recall}")
        for b in table["bands"]:
            print(f"  {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
