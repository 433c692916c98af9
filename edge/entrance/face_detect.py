"""Face detectors for the entrance camera: MediaPipe BlazeFace (TFLite) and dlib HOG.

BlazeFace is decoded here rather than through the ``mediapipe`` package: that package is a
~35 MB native wheel with a graph runtime we do not need on a Pi, while the two ``.tflite``
files plus ~80 lines of numpy (SSD anchors, box decoding, weighted NMS) do the same job under
``tflite_runtime``. The anchor and decoding parameters mirror MediaPipe's
``face_detection_short_range.pbtxt`` / ``face_detection_full_range.pbtxt`` (see
``edge/models/README.md``).

Every detector takes an RGB ``uint8`` array and returns boxes in the pixel coordinates of that
array, so callers can detect on a downscaled frame and map back with one multiply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Protocol

import cv2
import numpy as np

from edge.boxes import iou_matrix
from edge.entrance.face_types import DetectedFace
from edge.model_files import MODELS_DIR

DETECTOR_NAMES = ("blazeface-short", "blazeface-full", "dlib-hog")


class FaceDetector(Protocol):
    """What the pipeline needs from a detector."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Coerce greyscale / single-channel / RGBA arrays to contiguous HxWx3 uint8.

    Why here: frames come from OpenCV, Pillow and GIF decoders with every channel layout, and a
    wrong layout must not crash a detector running unattended at a door.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- BlazeFace


@dataclass(frozen=True)
class _BlazeSpec:
    model: str
    size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score: float  # MediaPipe's graph default for this model


_SPECS = {
    # 16x16x2 + 8x8x(2+2+2) = 896 anchors
    "short": _BlazeSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.5),
    # one 48x48 layer, one anchor per cell (interpolated ratio 0 turns the 2nd anchor off) = 2304
    "full": _BlazeSpec("face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 0.6),
}


def ssd_anchor_centres(size: int, strides: tuple[int, ...], interp_ratio: float) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the order MediaPipe's SsdAnchorsCalculator emits.

    BlazeFace uses ``fixed_anchor_size`` so every anchor is 1x1 and only the centre matters.
    Consecutive layers with the same stride share one feature map and are emitted together.
    """
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1 + (1 if interp_ratio > 0 else 0)
            last += 1
        fm = int(np.ceil(size / strides[layer]))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        grid = np.stack([(xs + 0.5) / fm, (ys + 0.5) / fm], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe-style weighted NMS: overlapping boxes are score-averaged, not just dropped.

    BlazeFace fires on many neighbouring anchors; averaging them gives steadier boxes and
    keypoints than keeping the single best one, which matters for the alignment seed.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    overlaps = iou_matrix(boxes, boxes) > iou  # once: the loop below only reads rows of it
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        overlap = overlaps[i]
        group = overlap & alive  # a fresh array: ``overlaps`` stays untouched
        group[i] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group].reshape(int(group.sum()), -1) * w).sum(0) / w.sum()
        out.append((box, kps.reshape(-1, 2), float(scores[i])))
        alive &= ~group
    return out


class BlazeFaceDetector:
    """MediaPipe BlazeFace short-range (128 px, faces < ~2 m) or full-range (192 px, < ~5 m)."""

    def __init__(
        self,
        variant: Literal["short", "full"] = "full",
        min_score: float | None = None,
        iou: float = 0.3,
        num_threads: int | None = None,
    ) -> None:
        if variant not in _SPECS:
            raise ValueError(f"variant must be 'short' or 'full', not {variant!r}")
        from tflite_runtime.interpreter import Interpreter  # heavy native import: defer

        spec = _SPECS[variant]
        self.name = f"blazeface-{variant}"
        self.variant = variant
        self.size = spec.size
        self.min_score = spec.min_score if min_score is None else float(min_score)
        self.iou = iou
        # The model is tiny: 2 threads already saturate a Pi 4 core pair; more only adds
        # scheduling jitter for the other edge processes (capture, MQTT). A process pool that
        # already runs one worker per core (storesense_tools.face_eval) sets
        # STORESENSE_TFLITE_THREADS to 1: two threads in each of two workers on two cores
        # fight each other.
        env = os.environ.get("STORESENSE_TFLITE_THREADS", "")
        threads = num_threads or (int(env) if env.isdigit() and int(env) > 0 else 0)
        threads = threads or min(2, os.cpu_count() or 1)
        self._interp = Interpreter(model_path=str(MODELS_DIR / spec.model), num_threads=threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        # Regressors are (1, N, 16), scores (1, N, 1): tell them apart by shape, not name.
        self._reg = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._cls = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self.anchors = ssd_anchor_centres(
            spec.size, spec.strides, spec.interpolated_scale_aspect_ratio
        )
        n_out = int(next(o["shape"][1] for o in outs if o["index"] == self._reg))
        if n_out != len(self.anchors):
            raise RuntimeError(f"{spec.model}: {n_out} outputs but {len(self.anchors)} anchors")

    def _letterbox(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Resize keeping aspect ratio, pad to a square; returns tensor, scale and pad offsets."""
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(rgb, (nw, nh), interpolation=interp)
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), np.float32)  # 0 == mid-grey after scaling
        canvas[py : py + nh, px : px + nw] = resized.astype(np.float32) / 127.5 - 1.0
        return canvas[None], scale, px, py

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        if rgb.size == 0 or min(rgb.shape[:2]) < 8:
            return []
        rgb = as_rgb_uint8(rgb)
        tensor, scale, px, py = self._letterbox(rgb)
        self._interp.set_tensor(self._in, tensor)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._reg)[0]
        logits = np.clip(self._interp.get_tensor(self._cls)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        s = float(self.size)
        # Offsets are in input pixels relative to the anchor centre (x, y, w, h order).
        cx = raw[:, 0] / s + anchors[:, 0]
        cy = raw[:, 1] / s + anchors[:, 1]
        bw, bh = raw[:, 2] / s, raw[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / s + anchors[:, None, :]
        h, w = rgb.shape[:2]
        faces = []
        for box, kp, score in weighted_nms(boxes, kps, scores, self.iou):
            # normalised letterbox coords -> frame pixels
            b = (box * s - [px, py, px, py]) / scale
            k = ((kp * s - [px, py]) / scale).astype(np.float32)
            x1, y1 = float(np.clip(b[0], 0, w)), float(np.clip(b[1], 0, h))
            x2, y2 = float(np.clip(b[2], 0, w)), float(np.clip(b[3], 0, h))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            faces.append(DetectedFace((x1, y1, x2, y2), score, k))
        return faces


# --------------------------------------------------------------------------- dlib HOG


class DlibHogDetector:
    """dlib's frontal HOG+SVM detector: the face_recognition default, our baseline/fallback."""

    def __init__(self, upsample: int = 1, adjust_threshold: float = 0.0) -> None:
        import dlib

        self.name = "dlib-hog"
        self.upsample = int(upsample)
        self.adjust_threshold = adjust_threshold
        self._det = dlib.get_frontal_face_detector()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        if rgb.size == 0 or min(rgb.shape[:2]) < 8:
            return []
        rgb = as_rgb_uint8(rgb)
        rects, scores, _ = self._det.run(rgb, self.upsample, self.adjust_threshold)
        h, w = rgb.shape[:2]
        out = []
        for r, sc in zip(rects, scores, strict=True):
            x1, y1 = float(max(0, r.left())), float(max(0, r.top()))
            x2, y2 = float(min(w, r.right() + 1)), float(min(h, r.bottom() + 1))
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                out.append(DetectedFace((x1, y1, x2, y2), float(sc), None))
        return out


def make_detector(name: str, **kwargs: object) -> FaceDetector:
    """Build a detector from its ``CameraConfig.detector`` name."""
    if name == "blazeface-short":
        return BlazeFaceDetector("short", **kwargs)  # type: ignore[arg-type]
    if name == "blazeface-full":
        return BlazeFaceDetector("full", **kwargs)  # type: ignore[arg-type]
    if name == "dlib-hog":
        return DlibHogDetector(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown detector {name!r}; expected one of {', '.join(DETECTOR_NAMES)}")
