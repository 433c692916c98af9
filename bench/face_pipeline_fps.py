"""Pipeline frames/s at 640x480: ours vs a face_recognition-style baseline, same frames.

Run:  . .venv/bin/activate && python bench/face_pipeline_fps.py [--repeat 2] [--data DIR]

Frames: the 41 walking-GIF frames (480x270 scaled to 640x360, padded to 640x480) and the
labelled deepface photos scaled to fit and padded to 640x480. Baseline = what
``face_recognition`` does by default: dlib HOG upsample=1 on the whole frame, 5-point
landmarks and a ResNet descriptor for every face found. Ours = ``FacePipeline()`` defaults
(BlazeFace full-range + fallbacks, quality gate, embed only faces that pass).

Recall: walking frames have no labels, so the reference is the baseline's HOG faces (a HOG
face counts as found when its centre lies in one of our boxes); each deepface photo holds one
labelled face, counted found when any face is detected.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from edge.face_detect import DlibHogDetector
from edge.face_embed import FaceEmbedder
from edge.face_pipeline import FacePipeline, load_rgb
from edge.face_types import DetectedFace

W, H = 640, 480
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("STORESENSE_SHARED_DATA") or DEFAULT_DATA).resolve()


def walking_frames(data: Path) -> list[np.ndarray]:
    gif = Image.open(data / "faces/walking/face-demographics-walking-and-pause.gif")
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))  # palette/RGBA frames -> RGB
    return frames


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

    def __call__(self, rgb: np.ndarray) -> list[tuple[DetectedFace, np.ndarray]]:
        out = []
        for f in self.det.detect(rgb):
            x1, y1, x2, y2 = (int(v) for v in f.box)
            shape = self._shape(rgb, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
            out.append((f, np.asarray(self._net.compute_face_descriptor(rgb, shape))))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--repeat", type=int, default=2, help="timing passes (best is reported)")
    args = ap.parse_args()
    data = data_dir(args.data)
    walk = [fit_640x480(f) for f in walking_frames(data)]
    deep_paths = sorted((data / "faces/deepface").glob("img*.jpg"))
    deep = [fit_640x480(load_rgb(p)) for p in deep_paths]
    sets = {"walking": walk, "deepface": deep}

    base, ours = Baseline(), FacePipeline()
    # Same pipeline with the ResNet stubbed out: what detection + alignment + gate cost, i.e.
    # the frame rate when embedding is left to the best few frames of each track.
    no_resnet = FacePipeline()
    no_resnet.embedder.embed_chip = lambda chip: np.zeros(128, np.float32)  # type: ignore[method-assign]
    print(f"# {platform.machine()}, {os.cpu_count()} cores; frames {W}x{H}; best of {args.repeat}")
    print(
        f"{'set':9s} {'method':9s} {'frames':>6s} {'ms/frame':>9s} {'fps':>6s} "
        f"{'faces':>6s} {'embedded':>8s} {'recall':>14s}"
    )
    total: dict[str, float] = {}
    n_frames = 0
    for name, frames in sets.items():
        n_frames += len(frames)
        res: dict[str, list] = {}
        runs = [("baseline", base), ("ours", ours.process_rgb)]
        runs.append(("no-resnet", no_resnet.process_rgb))
        for label, fn in runs:
            fn(frames[0])
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = [fn(f) for f in frames]
                best = min(best, time.perf_counter() - t)
            res[label] = out
            total[label] = total.get(label, 0.0) + best
            ms = best * 1000 / len(frames)
            faces = sum(map(len, out))
            if label == "baseline":
                embedded = faces
            else:
                embedded = sum(o.embedding is not None for obs in out for o in obs)
            if name == "walking":
                ref = [[f for f, _ in fr] for fr in res["baseline"]]
                boxes = [
                    [f for f, _ in fr] if label == "baseline" else [o.face for o in fr]
                    for fr in out
                ]
                hit = sum(
                    any(
                        b.box[0] <= (r.box[0] + r.box[2]) / 2 <= b.box[2]
                        and b.box[1] <= (r.box[1] + r.box[3]) / 2 <= b.box[3]
                        for b in bs
                    )
                    for bs, rs in zip(boxes, ref, strict=True)
                    for r in rs
                )
                recall = f"{hit}/{sum(map(len, ref))} HOG faces"
            else:
                recall = f"{sum(bool(fr) for fr in out)}/{len(frames)} photos"
            print(
                f"{name:9s} {label:9s} {len(frames):6d} {ms:9.1f} {1000 / ms:6.1f} "
                f"{faces:6d} {embedded:8d} {recall:>14s}"
            )
    fb = n_frames / total["baseline"]
    for label, secs in total.items():
        fps = n_frames / secs
        print(f"all       {label:9s} {n_frames:6d} {1000 / fps:9.1f} {fps:6.1f}  x{fps / fb:.1f}")
    print(f"ours: rejections {dict(ours.rejections)}, fallback runs {ours.fallback_runs}")


if __name__ == "__main__":
    main()
