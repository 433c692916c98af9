"""Entrance frames/s at 640x480: the agent's lazy path vs a face_recognition-style baseline.

Run:  . .venv/bin/activate && python bench/face_pipeline_fps.py [--repeat 2] [--data DIR]

Why sequences: the agent embeds only the faces a track will keep (``FaceTracker.update_lazily``),
so its cost depends on how faces persist over time; a bag of stills cannot measure it.

Sets (all frames scaled to fit and padded to 640x480, processed in order, timestamps from
the source frame rate, decoding outside the timer):

* ``walking``: the 41 frames of the walking GIF (~12 fps).
* ``intel``: ``video/intel/one-by-one-person-detection.mp4`` (1394 frames, 10 fps, 768x432;
  visitors walk up to the camera one at a time).
* ``deepface`` stills: 58 labelled photos, one face each. Not a sequence — each image is its
  own visit, so lazy and eager embed the same faces there; reported per image, separately.

Methods, all in one run on the same frames:

* ``baseline``: what ``face_recognition`` does by default — dlib HOG upsample=1 on the whole
  frame, 5-point landmarks and a ResNet descriptor for every face found.
* ``eager``: ``FacePipeline.process_rgb`` + ``FaceTracker.update`` — the agent before this
  change (BlazeFace + fallbacks, gate, embed every face that passes).
* ``lazy``: ``FacePipeline.analyse_rgb`` + ``FaceTracker.update_lazily(embed=pipeline.embed)``
  + ``due_for_publication`` — the agent's ``process_frame`` now (minus the motion gate, which
  would only skip still frames and which the baseline does not have).

Detection recall: the walking/intel frames have no face labels, so the reference is the
baseline's HOG faces (a HOG face counts as found when its centre lies in one of our boxes);
a deepface photo counts as found when any face is detected. Identity recall: tracks that got
published embeddings (and how many tracks got at least ``min_embeddings``), with the baseline's
faces run through the same tracker (eagerly) for comparison. ``short`` = tracks that had at
least ``min_embeddings`` gate-passed faces but got fewer embeddings (must be 0); ``best-q`` =
mean quality score of the samples in each track's final message (lazy must not trail eager).

Progress (decoding, then each set x method) is drawn on stderr when stderr is a terminal; the
table goes to stdout unchanged. The bar is advanced outside the timed calls, but rich redraws
it from its own thread ~10 times a second: use ``--quiet`` for figures you copy into the docs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from edge.entrance.face_detect import DlibHogDetector
from edge.entrance.face_embed import FaceEmbedder
from edge.entrance.face_pipeline import FacePipeline, load_rgb
from edge.entrance.face_tracker import FaceTracker, Track, TrackUpdate
from edge.entrance.face_types import DetectedFace, FaceObservation, FaceQuality
from storesense_tools.cli_floor import progress_bar

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

W, H = 640, 480
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
INTEL = "video/intel/one-by-one-person-detection.mp4"


def data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("STORESENSE_SHARED_DATA") or DEFAULT_DATA).resolve()


def walking_frames(data: Path) -> list[np.ndarray]:
    gif = Image.open(data / "faces/walking/face-demographics-walking-and-pause.gif")
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))  # palette/RGBA frames -> RGB
    return frames


def video_frames(
    path: Path, limit: int | None = None, progress: Progress | None = None
) -> tuple[list[np.ndarray], float]:
    """RGB frames of a video file, in order, and its frame rate."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    if limit is not None:
        total = min(total, limit) if total else limit
    task = progress.add_task(f"decode {path.name}", total=total) if progress is not None else None
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(fit_640x480(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        if progress is not None and task is not None:
            progress.advance(task)
    cap.release()
    if progress is not None and task is not None:
        progress.remove_task(task)
    return frames, fps


def fit_640x480(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    k = min(W / w, H / h)
    nw, nh = round(w * k), round(h * k)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (nw, nh), interpolation=interp)
    out = np.zeros((H, W, 3), np.uint8)
    y, x = (H - nh) // 2, (W - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


class Baseline:
    """face_recognition.face_encodings(img, face_locations(img)) with model="small"."""

    def __init__(self) -> None:
        import dlib

        self.det = DlibHogDetector(upsample=1)
        emb = FaceEmbedder()
        self._shape, self._net, self._dlib = emb._shape, emb._net, dlib

    def __call__(self, rgb: np.ndarray) -> list[FaceObservation]:
        """Every HOG face, embedded; quality is not assessed (recorded as a passing 1.0)."""
        out = []
        for f in self.det.detect(rgb):
            x1, y1, x2, y2 = (int(v) for v in f.box)
            shape = self._shape(rgb, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
            emb = np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float32)
            lm = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
            out.append(FaceObservation(f, lm, _UNGATED, emb))
        return out


_UNGATED = FaceQuality(score=1.0, face_px=0.0, sharpness=0.0, frontalness=1.0, passed=True)


@dataclass
class Run:
    """What one method did on one set: time, detections, embeddings, tracks, messages."""

    seconds: float = float("inf")
    faces: list[list[DetectedFace]] = field(default_factory=list)
    embedded: int = 0
    passed: int = 0
    tracks_published: int = 0
    tracks_min: int = 0  # tracks with >= min_embeddings samples
    tracks_short: int = 0  # had >= min_embeddings gate-passed faces but fewer embeddings
    messages: int = 0
    best_q: list[float] = field(default_factory=list)  # per track: mean quality of final best-k

    def record(self, due: list[tuple[Track, bool]], published: set[str]) -> None:
        """Count messages; on a track's final message, note the quality of what it sent."""
        self.messages += len(due)
        published.update(tr.track_id for tr, _ in due)
        self.best_q += [float(np.mean([s.score for s in tr.best_samples()])) for tr, f in due if f]


Step = Callable[[FaceTracker, np.ndarray, float], list[TrackUpdate]]


def run_sequence(
    step: Step,
    frames: list[np.ndarray],
    fps: float,
    repeat: int,
    progress: Progress | None = None,
    task: TaskID | None = None,
) -> Run:
    """Time ``step`` over ``frames`` in order with a fresh tracker per pass (best pass kept).

    ``progress``/``task`` (optional) are advanced once per frame, outside the timed span.
    """
    best = Run()
    for _ in range(repeat):
        tracker = FaceTracker()
        run = Run(seconds=0.0)
        passed: dict[str, int] = {}
        embedded: dict[str, int] = {}
        published: set[str] = set()
        for i, rgb in enumerate(frames):
            t = i / fps
            t0 = time.perf_counter()
            ups = step(tracker, rgb, t)
            due = tracker.due_for_publication(t)
            run.seconds += time.perf_counter() - t0
            if progress is not None and task is not None:
                progress.advance(task)
            run.faces.append([u.observation.face for u in ups])
            run.record(due, published)
            for u in ups:
                tid = u.track.track_id
                passed[tid] = passed.get(tid, 0) + u.observation.quality.passed
                embedded[tid] = u.track.n_usable
                run.passed += u.observation.quality.passed
                run.embedded += u.observation.embedding is not None
        due = tracker.due_for_publication(len(frames) / fps, flush_all=True)
        run.record(due, published)
        for tr, _ in due:
            embedded[tr.track_id] = tr.n_usable
        run.tracks_published = len(published)
        n_min = tracker.min_embeddings
        run.tracks_min = sum(embedded[tid] >= n_min for tid in published)
        run.tracks_short = sum(
            passed.get(tid, 0) >= n_min and embedded.get(tid, 0) < n_min for tid in passed
        )
        if run.seconds < best.seconds:
            best = run
    return best


def hog_recall(faces: list[list[DetectedFace]], ref: list[list[DetectedFace]]) -> tuple[int, int]:
    """(baseline faces whose centre lies in one of our boxes, baseline faces)."""
    hit = sum(
        any(
            b.box[0] <= (r.box[0] + r.box[2]) / 2 <= b.box[2]
            and b.box[1] <= (r.box[1] + r.box[3]) / 2 <= b.box[3]
            for b in bs
        )
        for bs, rs in zip(faces, ref, strict=True)
        for r in rs
    )
    return hit, sum(map(len, ref))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--repeat", type=int, default=2, help="timing passes (best is reported)")
    ap.add_argument("--intel-frames", type=int, help="only the first N frames of the mp4")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    with progress_bar(quiet=args.quiet) as progress:
        run_all(args, progress)


def run_all(args: argparse.Namespace, progress: Progress) -> None:
    """Decode, time every method on every set, print the table (the bench proper)."""
    data = data_dir(args.data)
    intel, intel_fps = video_frames(data / INTEL, args.intel_frames, progress)
    sequences = {
        "walking": ([fit_640x480(f) for f in walking_frames(data)], 12.0),
        "intel": (intel, intel_fps),
    }
    deep = [fit_640x480(load_rgb(p)) for p in sorted((data / "faces/deepface").glob("img*.jpg"))]

    base = Baseline()
    eager_p, lazy_p = FacePipeline(), FacePipeline()

    def baseline(tr: FaceTracker, rgb: np.ndarray, t: float) -> list[TrackUpdate]:
        return tr.update(t, base(rgb))  # the tracker is for the identity count; ~0.1 ms

    def eager(tr: FaceTracker, rgb: np.ndarray, t: float) -> list[TrackUpdate]:
        return tr.update(t, eager_p.process_rgb(rgb))

    def lazy(tr: FaceTracker, rgb: np.ndarray, t: float) -> list[TrackUpdate]:
        return tr.update_lazily(t, lazy_p.analyse_rgb(rgb), lazy_p.embed)

    methods: dict[str, Step] = {"baseline": baseline, "eager": eager, "lazy": lazy}
    for fn in methods.values():  # warm up models and the XNNPACK delegate
        fn(FaceTracker(), sequences["walking"][0][0], 0.0)
    load = os.getloadavg()[0]
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, load {load:.1f}; frames {W}x{H}; "
        f"best of {args.repeat}; tracker defaults (k=3, min_embeddings=2)"
    )
    print(
        f"{'set':9s} {'method':8s} {'frames':>6s} {'ms/frame':>9s} {'fps':>6s} {'x':>5s} "
        f"{'faces':>6s} {'recall':>12s} {'passed':>6s} {'embedded':>8s} "
        f"{'tracks':>6s} {'>=min':>5s} {'short':>5s} {'msgs':>5s} {'best-q':>6s}"
    )
    for name, (frames, fps) in sequences.items():
        runs = {}
        for label, fn in methods.items():
            task = progress.add_task(f"{name} {label}", total=len(frames) * args.repeat)
            runs[label] = run_sequence(fn, frames, fps, args.repeat, progress, task)
            progress.remove_task(task)
        ref = runs["baseline"].faces
        for label, r in runs.items():
            ms = r.seconds * 1000 / len(frames)
            hit, n_ref = hog_recall(r.faces, ref)
            print(
                f"{name:9s} {label:8s} {len(frames):6d} {ms:9.1f} {1000 / ms:6.1f} "
                f"{runs['baseline'].seconds / r.seconds:5.1f} {sum(map(len, r.faces)):6d} "
                f"{f'{hit}/{n_ref}':>12s} {r.passed:6d} {r.embedded:8d} "
                f"{r.tracks_published:6d} {r.tracks_min:5d} {r.tracks_short:5d} {r.messages:5d} "
                f"{np.mean(r.best_q) if r.best_q else float('nan'):6.3f}"
            )

    # Stills: one visit per image, so there is nothing for the tracker to skip.
    still: dict[str, tuple[float, int, int]] = {}
    for label, fn in (("baseline", base), ("eager", eager_p.process_rgb)):
        best, found, embedded = float("inf"), 0, 0
        task = progress.add_task(f"deepface {label}", total=args.repeat)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = [fn(f) for f in deep]
            best = min(best, time.perf_counter() - t0)
            found = sum(bool(o) for o in out)
            embedded = sum(x.embedding is not None for o in out for x in o)
            progress.advance(task)
        progress.remove_task(task)
        still[label] = (best, found, embedded)
    for label, (secs, found, embedded) in still.items():
        ms = secs * 1000 / len(deep)
        print(
            f"{'deepface':9s} {label:8s} {len(deep):6d} {ms:9.1f} {1000 / ms:6.1f} "
            f"{still['baseline'][0] / secs:5.1f} {found:6d} {f'{found}/{len(deep)} img':>12s} "
            f"{'':6s} {embedded:8d}   (stills, per image; not a sequence)"
        )
    print(f"lazy: rejections {dict(lazy_p.rejections)}, fallback runs {lazy_p.fallback_runs}")


if __name__ == "__main__":
    main()
