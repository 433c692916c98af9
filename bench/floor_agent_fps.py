"""Floor agent throughput on one core: frames/s of detect → track → floor map → 1 s batches.

Run by hand (figures go to docs/floor-tracking.md)::

    python bench/floor_agent_fps.py                   # ssdlite, PETS09 vtest.avi 480x360
    python bench/floor_agent_fps.py --detector hog --frames 100

One thread everywhere (``cv2.setNumThreads(1)``, TFLite ``num_threads=1``), frames decoded
beforehand so the figure is the analysis a camera's core must sustain (target ≥ 8 fps at
480×360). The per-stage split shows where the time goes. Note the machine load (printed from
``os.getloadavg``) next to any figure you copy: other processes on the core slow it down.

Decoding and the timed loop show a progress bar on stderr when stderr is a terminal; it is
advanced outside the timed spans, but rich redraws it from a thread ~10 times a second, so
pass ``--quiet`` for a figure to copy. The summary goes to stdout unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.floor.geometry import foot_points, load_calibration  # noqa: E402
from edge.floor.person_detect import make_person_detector  # noqa: E402
from edge.floor.person_tracker import PersonTracker  # noqa: E402
from edge.floor.pipeline import DETECTOR_OPTIONS, FLOOR_COAST_S, FloorBatcher, FloorFrame  # noqa: E402
from storesense_tools.cli_floor import progress_bar  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "mot" / "pets09-s2l1" / "vtest.avi"
CALIBRATION = REPO / "config" / "calibration" / "pets09-s2l1.yaml"

if TYPE_CHECKING:
    from rich.progress import Progress


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--detector", choices=["ssdlite", "hog"], default="ssdlite")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=7.0, help="the clip's true frame rate")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    if not args.video.is_file():
        print(f"no video at {args.video}")
        return 1
    cv2.setNumThreads(1)
    with progress_bar(quiet=args.quiet) as progress:
        return run(args, progress)


def run(args: argparse.Namespace, progress: Progress) -> int:
    """Decode, warm up, time the per-frame agent work, print the figure."""
    cap = cv2.VideoCapture(str(args.video))
    frames = []
    task = progress.add_task(f"decode {args.video.name}", total=args.frames)
    while len(frames) < args.frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
        progress.advance(task)
    cap.release()
    progress.remove_task(task)
    if not frames:
        print(f"no decodable frame in {args.video}")
        return 1
    opts = dict(DETECTOR_OPTIONS[args.detector])
    if args.detector == "ssdlite":
        opts["num_threads"] = 1
    detector = make_person_detector(args.detector, **opts)
    detector.detect(frames[0])  # warm-up (TFLite allocates on the first run)
    tracker, hom = PersonTracker(), load_calibration(CALIBRATION)
    batcher = FloorBatcher("bench", 1.0)
    size = (frames[0].shape[1], frames[0].shape[0])
    t_det = t_rest = 0.0
    messages = 0
    wall0 = time.time()
    task = progress.add_task(f"{args.detector} floor agent", total=len(frames))
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        dets = detector.detect(frame)
        t1 = time.perf_counter()
        people = tracker.update(i / args.fps, dets)
        people += tracker.coasting(FLOOR_COAST_S)
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        feet = foot_points(boxes, size)
        ff = FloorFrame(i / args.fps, size, people, feet, hom.to_floor(feet, size))
        messages += len(batcher.add(ff, wall0 + i / args.fps))
        t_rest += time.perf_counter() - t1
        t_det += t1 - t0
        progress.advance(task)
    progress.remove_task(task)
    n = len(frames)
    total = t_det + t_rest
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"{args.detector} {opts} on {n} frames {size[0]}x{size[1]}, 1 thread, load {load}\n"
        f"  floor agent: {n / total:.1f} frames/s ({1000 * total / n:.1f} ms/frame)\n"
        f"  detector {1000 * t_det / n:.1f} ms/frame, tracker+floor map+batching "
        f"{1000 * t_rest / n:.2f} ms/frame; {messages} messages"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
