"""Detector recall and speed on the shared face data: dlib HOG (upsample 0/1) vs BlazeFace.

Run:  . .venv/bin/activate && python bench/face_detectors.py [--lfw 300] [--data DIR]

Recall = images where the expected face was found / images. ORL, LFW, deepface (labelled
photos) and the faceapi-bbt crops hold one labelled face each. LFW thumbnails can show
bystanders, so an LFW image counts as found when a box contains the image centre (LFW is
centred on the labelled face). Walking GIF: there are no labels, so the reference is what
HOG upsample=1 finds (all 41 frames have faces); we report frames with a face and HOG faces
matched (HOG box centre inside a detected box). Every detector sees the same frame the
pipeline would give it (longest side <= 640). "+fb" rows are ``FacePipeline.detect`` with
its empty-frame fallback (BlazeFace: pad, then 2x2 tiles; HOG: one more upsample).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from edge.entrance.face_pipeline import FacePipeline, load_rgb
from edge.entrance.face_types import DetectedFace

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CONFIGS: list[tuple[str, str, dict]] = [
    ("hog up1", "dlib-hog", {"fallback": "none"}),  # first: it is the walking reference
    ("hog up0", "dlib-hog", {"fallback": "none"}),
    ("blaze-short", "blazeface-short", {"fallback": "none"}),
    ("blaze-short +fb", "blazeface-short", {"fallback": "auto"}),
    ("blaze-full", "blazeface-full", {"fallback": "none"}),
    ("blaze-full +fb", "blazeface-full", {"fallback": "auto"}),
]


def data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("STORESENSE_SHARED_DATA") or DEFAULT_DATA).resolve()


def make_pipeline(det: str, label: str, **kw: object) -> FacePipeline:
    pipe = FacePipeline(det, **kw)  # type: ignore[arg-type]
    if det == "dlib-hog":
        from edge.entrance.face_detect import DlibHogDetector

        pipe.detector = DlibHogDetector(upsample=0 if "up0" in label else 1)
    return pipe


def walking_frames(data: Path) -> list[np.ndarray]:
    gif = Image.open(data / "faces/walking/face-demographics-walking-and-pause.gif")
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))
    return frames


def datasets(data: Path, n_lfw: int) -> dict[str, list[np.ndarray]]:
    faces = data / "faces"
    rows = list(csv.DictReader((faces / "lfw-dev/manifest.csv").open()))
    lfw = random.Random(0).sample(rows, min(n_lfw, len(rows)))
    deep = [r for r in csv.DictReader((faces / "deepface/manifest.csv").open()) if r["identity"]]
    bbt = [r for r in csv.DictReader((faces / "faceapi-bbt/manifest.csv").open()) if r["identity"]]
    return {
        "orl": [load_rgb(p) for p in sorted(faces.glob("orl/s*/*.pgm"))],
        "lfw": [load_rgb(faces / "lfw-dev" / r["path"]) for r in lfw],
        "deepface": [load_rgb(faces / "deepface" / r["path"]) for r in deep],
        "bbt-crops": [load_rgb(faces / "faceapi-bbt" / r["path"]) for r in bbt],
        "walking": walking_frames(data),
    }


def contains(face: DetectedFace, x: float, y: float) -> bool:
    x1, y1, x2, y2 = face.box
    return x1 <= x <= x2 and y1 <= y <= y2


def centre(face: DetectedFace) -> tuple[float, float]:
    return (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2


def timed(fn: Callable[[np.ndarray], list], imgs: list[np.ndarray]) -> tuple[list, float]:
    fn(imgs[0])  # warm-up (TFLite allocates on first invoke)
    t = time.perf_counter()
    out = [fn(im) for im in imgs]
    return out, (time.perf_counter() - t) * 1000 / len(imgs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="shared data dir (default ../shared/data)")
    ap.add_argument("--lfw", type=int, default=300, help="LFW images sampled (seed 0)")
    args = ap.parse_args()
    data = data_dir(args.data)
    sets = datasets(data, args.lfw)
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print("# recall (found/expected) and ms per image, detection only\n")
    head = f"{'detector':16s}" + "".join(f"{k:>22s}" for k in sets)
    print(head + f"{'walking pipeline fps':>22s}")
    ref: list[list[DetectedFace]] | None = None
    for label, det, kw in CONFIGS:
        pipe = make_pipeline(det, label, **kw)
        cells = []
        for name, imgs in sets.items():
            found, ms = timed(pipe.detect, imgs)
            if name == "walking":
                if label == "hog up1":
                    ref = found
                assert ref is not None, "hog up1 must run before the others"
                hit = sum(
                    any(contains(f, *centre(r)) for f in fs)
                    for fs, rs in zip(found, ref, strict=True)
                    for r in rs
                )
                frames = sum(bool(fs) for fs in found)
                cells.append(f"{frames}/{len(imgs)}f {hit}/{sum(map(len, ref))} {ms:5.1f}ms")
            elif name == "lfw":
                hit = sum(any(contains(f, 75, 75) for f in fs) for fs in found)
                cells.append(f"{hit}/{len(imgs)} {ms:5.1f}ms")
            else:
                hit = sum(bool(fs) for fs in found)
                cells.append(f"{hit}/{len(imgs)} {ms:5.1f}ms")
        _, ms = timed(pipe.process_rgb, sets["walking"])
        print(f"{label:16s}" + "".join(f"{c:>22s}" for c in cells) + f"{1000 / ms:18.1f} fps")


if __name__ == "__main__":
    main()
