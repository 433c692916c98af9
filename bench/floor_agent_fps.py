"""Floor agent throughput on one core: frames/s of detect → track → floor map → 1 s batches.

Run by hand (figures go to docs/floor-tracking.md)::

    taskset -c 1 python bench/floor_agent_fps.py -q   # before / auto / auto+skip, one run
    python bench/floor_agent_fps.py --detector hog --frames 100

The SSDLite configurations (``--configs``) run one after the other on the same decoded frames,
so their ratio holds even on a loaded machine: "before" is the PETS09-tuned 4x1 band (5 calls
per frame), "auto" the tiles derived from the calibration, "auto+skip" also skips the tiles the
tracker does not need (``edge.floor.pipeline.TileScheduler``), "auto+skip5" looks at an idle
tile every 5th frame instead of every 3rd, "auto+skip+fill" is the shipped camera (auto+skip,
frames held 0.75 s and gaps of re-found people filled: ``edge.floor.smoothing``), "fallback" is
the uncalibrated full frame + 2x2 and "full" the full frame alone. Pin it to one core with
``taskset -c 1`` for the per-core figure.

Two times per configuration: wall clock, and the CPU time of the agent's thread
(``time.thread_time``; TFLite with one thread runs its kernels in the calling thread, and the
process CPU time is printed next to it to show that). On a shared machine the wall clock also
holds the time other jobs had the core; the thread CPU time does not, so "frames/s per core"
is derived from it (still somewhat pessimistic: a busy neighbour on the other core shares the
caches and memory bus).

One thread everywhere (``cv2.setNumThreads(1)``, TFLite ``num_threads=1``), frames decoded
beforehand so the figure is the analysis a camera's core must sustain (target ≥ 15 fps at
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.floor.geometry import load_calibration  # noqa: E402
from edge.floor.person_detect import make_person_detector  # noqa: E402
from edge.floor.pipeline import DETECTOR_OPTIONS, FloorBatcher, FloorPipeline  # noqa: E402
from edge.floor.smoothing import FLOOR_FILL_GAPS_S, FixedLagSmoother  # noqa: E402
from storesense_tools.cli_floor import progress_bar  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "mot" / "pets09-s2l1" / "vtest.avi"
CALIBRATION = REPO / "config" / "calibration" / "pets09-s2l1.yaml"

if TYPE_CHECKING:
    from rich.progress import Progress


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--detector", choices=["ssdlite", "ensemble", "hog"], default="ssdlite")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=7.0, help="the clip's true frame rate")
    ap.add_argument("--calibration", type=Path, default=CALIBRATION)
    ap.add_argument("--threads", type=int, default=1, help="TFLite num_threads")
    ap.add_argument(
        "--configs", default="before,auto,auto+skip", help=f"comma list of {', '.join(CONFIGS)}"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    if not args.video.is_file():
        print(f"no video at {args.video}")
        return 1
    cv2.setNumThreads(1)
    with progress_bar(quiet=args.quiet) as progress:
        return run(args, progress)


CONFIGS: dict[str, tuple[dict[str, object], bool, int]] = {
    # the PETS09-tuned constants issue 14 replaces: full frame + 4x1 tiles over 15-65 %
    "before": ({"tiles": (4, 1), "tile_band": (0.15, 0.65)}, False, 3),
    "auto": ({}, False, 3),  # tiles from the calibration, every tile every frame
    "auto+skip": ({}, True, 3),  # ... and only the tiles the tracker needs (TileScheduler)
    "auto+skip5": ({}, True, 5),  # ... with an idle tile looked at every 5th frame, not 3rd
    "fallback": ({}, False, 3),  # no calibration: full frame + 2x2 (bench/mot_eval.py's)
    "full": ({"tiles": (1, 1)}, False, 3),  # the full frame alone (1 call)
    # the shipped camera: auto+skip and frames held 0.75 s, gaps of re-found people filled
    # (edge.floor.smoothing, what FloorRole runs before its batcher)
    "auto+skip+fill": ({}, True, 3),
}


def run(args: argparse.Namespace, progress: Progress) -> int:
    """Decode, then per configuration: warm up, time the per-frame agent work, print."""
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
    hom = load_calibration(args.calibration)
    size = (frames[0].shape[1], frames[0].shape[0])
    tiled = args.detector in ("ssdlite", "ensemble")  # the ensemble tiles as SSDLite does
    names = args.configs.split(",") if tiled else ["hog"]
    for name in names:
        opts = dict(DETECTOR_OPTIONS[args.detector])
        skip, refresh = False, 3
        if tiled:
            extra, skip, refresh = CONFIGS[name]
            opts |= extra | {"num_threads": args.threads}
        detector = make_person_detector(args.detector, **opts)
        detector.detect(frames[0])  # warm-up (TFLite allocates on the first run)
        pipeline = FloorPipeline(
            detector,
            None if name == "fallback" else hom,
            skip_tiles=skip,
            tile_refresh_frames=refresh,
        )
        batcher = FloorBatcher("bench", 1.0)
        smoother = FixedLagSmoother(FLOOR_FILL_GAPS_S if name.endswith("+fill") else 0.0)
        messages = 0
        wall0 = time.time()
        task = progress.add_task(f"{name} floor agent", total=len(frames))
        t0, cpu0, proc0 = time.perf_counter(), time.thread_time(), time.process_time()
        for i, frame in enumerate(frames):
            ff = pipeline.process(frame, i / args.fps)
            for held, t_wall in smoother.push(ff, wall0 + i / args.fps):
                messages += len(batcher.add(held, t_wall))
            progress.advance(task)
        total = time.perf_counter() - t0
        cpu = time.thread_time() - cpu0  # this thread: TFLite with 1 thread runs in it
        proc = time.process_time() - proc0  # every thread of the process (rich's redraws too)
        progress.remove_task(task)
        n = len(frames)
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        windows = len(getattr(detector, "windows", lambda w, h: [0])(*size))
        share = pipeline.scheduler.share_run if pipeline.scheduler else 1.0
        calls = 1 + (windows - 1) * share
        print(
            f"{args.detector} {name:10s} {n} frames {size[0]}x{size[1]}, "
            f"{args.threads} thread(s), load {load}: "
            f"wall {n / total:.1f} frames/s ({1000 * total / n:.1f} ms/frame); CPU of the agent "
            f"thread {1000 * cpu / n:.1f} ms/frame = {n / cpu:.1f} frames/s per core "
            f"(process {1000 * proc / n:.1f} ms/frame); {windows} windows, "
            f"tiles run {share:.0%} -> {calls:.2f} network calls/frame; {messages} messages"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
