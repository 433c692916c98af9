"""What each accuracy lever of issue 13 costs on one core: before/after in one run.

Run (pinned, as docs/accuracy.md quotes it):

    taskset -c 1 .venv/bin/python bench/face_levers_cost.py [--images 30] [--repeat 2]

Per face on real LFW images (the edge's per-face steps, the detector excluded):

* ``embed``: ``FaceEmbedder.describe`` without flip — the ResNet pass the door pays today;
* ``embed+flip``: ``describe`` with flip averaging (a second ResNet pass on the mirrored chip).

Per frame, the second detection pass (dlib HOG upsampled once, then twice if nothing):

* on a 150x150 LFW image (what the report's LFW figures paid);
* on an empty 640x480 frame (the door's commonest frame: what ``second_pass=True`` would add
  to every frame with no usable face — why it is off by default on the edge).

At the hub, ``TemplateIndex.search`` for one query at several gallery sizes, without and with
the cohort statistics score normalisation needs.

Methods alternate image by image (not one block each), so load from other processes on the
machine hits all of them alike; figures are medians in ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from edge.entrance.face_detect import DlibHogDetector
from edge.entrance.face_embed import FaceEmbedder
from edge.entrance.face_pipeline import FacePipeline, load_rgb
from hub.faces.matcher import TemplateIndex

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


CPU: dict[str, list[float]] = {}


def _ms(fn: Callable[[], object], key: str = "") -> float:
    """Wall ms of ``fn()``; its CPU ms (all the process's threads) go to ``CPU[key]``.

    Both, because the dev VM is shared: under load the wall time of one core includes the
    time other processes held it, while the process CPU time is close to what the step
    costs on a core of its own (it still pays for caches the others evicted).
    """
    c, t = time.process_time(), time.perf_counter()
    fn()
    wall = (time.perf_counter() - t) * 1000.0
    CPU.setdefault(key, []).append((time.process_time() - c) * 1000.0)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    data = (args.data or Path(os.environ.get("STORESENSE_SHARED_DATA", DEFAULT_DATA))).resolve()
    lfw = sorted((data / "faces" / "lfw-dev").glob("*/*.jpg"))[::37][: args.images]
    pipe = FacePipeline()
    plain, flipped = FaceEmbedder(flip=False), FaceEmbedder(flip=True)
    chips: list[np.ndarray] = []
    for p in lfw:
        chips += [o.chip for o in pipe.analyse_rgb(load_rgb(p)) if o.chip is not None][:1]
    hog = (DlibHogDetector(1), DlibHogDetector(2))

    def second(rgb: np.ndarray) -> None:
        for det in hog:
            if det.detect(rgb):
                return

    empty = np.full((480, 640, 3), 110, np.uint8)
    empty[::7, :, :] = 140  # a little texture: HOG cost does not depend on content much
    lfw_rgb = [load_rgb(p) for p in lfw[:10]]
    times: dict[str, list[float]] = {
        k: [] for k in ("embed", "embed+flip", "2nd pass LFW 150px", "2nd pass empty 640x480")
    }
    for _ in range(args.repeat):
        for chip in chips:
            times["embed"].append(_ms(partial(plain.describe, chip), "embed"))
            times["embed+flip"].append(_ms(partial(flipped.describe, chip), "embed+flip"))
        for rgb in lfw_rgb:
            k = "2nd pass LFW 150px"
            times[k].append(_ms(partial(second, rgb), k))
        for _ in range(3):
            k = "2nd pass empty 640x480"
            times[k].append(_ms(partial(second, empty), k))
    rng = np.random.default_rng(0)
    search: dict[str, list[float]] = {}
    for n in (1_000, 10_000, 100_000):
        labels = np.repeat(np.arange(n // 3 + 1), 3)[:n]
        mat = rng.normal(size=(n, 128)).astype(np.float32) * 0.05
        q = rng.normal(size=128).astype(np.float32) * 0.05
        for cohort in (0, 40):
            idx = TemplateIndex(labels, mat, cohort_size=cohort)
            idx.search(q)
            key = f"search {n:,} templates, cohort {cohort}"
            search[key] = [_ms(partial(idx.search, q), key) for _ in range(30)]
    print(
        f"# {platform.machine()}, Python {platform.python_version()}, "
        f"pid {os.getpid()} on cpus {sorted(os.sched_getaffinity(0))}, "
        f"{len(chips)} faces x {args.repeat}"
    )
    print(f"# load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| step | median wall ms | p90 wall ms | median CPU ms | n |")
    print("|---|---|---|---|---|")
    for k, v in {**times, **search}.items():
        v = sorted(v)
        cpu = statistics.median(CPU[k])
        p90 = v[int(0.9 * (len(v) - 1))]
        print(f"| {k} | {statistics.median(v):.1f} | {p90:.1f} | {cpu:.1f} | {len(v)} |")


if __name__ == "__main__":
    main()
