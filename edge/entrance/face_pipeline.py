"""The on-device face pipeline: detect → 5-point align → quality gate → 128-d embedding.

Cost model (why it is shaped like this): detection runs on a downscaled copy of the frame
(``max_side``) because detector cost grows with pixels, while alignment, the chip and the
embedding use the full-resolution frame because their cost is per face and they need every
pixel of a small face. The quality gate sits before the ResNet so rejected faces cost only
the ~1 ms landmark step.

Two ways in: ``process_*`` embeds every face that passes the gate (enrolment, evaluation:
each image counts). ``analyse_*`` stops after the gate and keeps the aligned chip, and
``embed`` finishes one observation on demand: the edge agent publishes only a few best
samples per track, so it asks the tracker which faces are worth the ~55 ms ResNet first.

Colour order: OpenCV delivers BGR, dlib and the BlazeFace models want RGB. ``process_bgr``
converts exactly once; everything below it is RGB.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.boxes import iou_matrix
from edge.entrance.face_detect import (
    BlazeFaceDetector,
    DlibHogDetector,
    FaceDetector,
    as_rgb_uint8,
    make_detector,
    weighted_nms,
)
from edge.entrance.face_embed import make_embedder
from edge.entrance.face_quality import QualityGate
from edge.entrance.face_types import DetectedFace, FaceObservation
from storesense.config import QualityConfig
from storesense.face_models import DEFAULT_MODEL, FaceModel

Fallback = Literal["auto", "none", "near", "tiles", "upsample"]


class FaceImageError(ValueError):
    """An image file that cannot be read as a picture (missing, truncated, not an image)."""


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB, upright per EXIF, whatever its mode.

    Enrolment photos come from phones (EXIF rotation), scanners (greyscale, 16-bit) and the
    web (palette, RGBA); all must reach dlib as 8-bit RGB or the embedding silently degrades.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()  # decode now so truncated files fail here, not deep in dlib
            im = ImageOps.exif_transpose(opened)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(im, dtype=np.float64)
                hi = float(arr.max()) or 1.0
                return as_rgb_uint8((arr * (255.0 / hi)).astype(np.uint8))
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as exc:
        raise FaceImageError(f"{path}: cannot read image: {exc}") from exc


# Chosen with a held-out-fold check on LFW folds 1-5 (docs/accuracy.md, "Levers"): each of these
# raised DIR on people the choice never saw, at the same false-match rate.
FLIP = True  # flip averaging: +6.7 DIR points (3 enrolment photos), one more ResNet pass a face
# A still photo (an enrolment photo, an evaluation probe) is worth a second detection pass when
# the first found no usable face: it is the only look at that picture. A door frame is not: the
# next frame comes 1/fps later, and an empty frame would pay the upsampled HOG every time.
PHOTO_SECOND_PASS = True


SAME_FACE_IOU = 0.3  # a second-pass box this much over a first-pass one is that face again


def same_faces_once(
    first: list[FaceObservation], again: list[FaceObservation]
) -> list[FaceObservation]:
    """The first pass's faces with the second pass's merged in, each face once.

    The second pass mostly re-finds faces the first one found and the gate refused; counted
    twice, one blurred enrolment photo read "2 faces: use a photo with the customer alone".
    A re-found face replaces the first look only if the gate now passes it; a new face is
    added.
    """
    if not first or not again:
        return first + again
    out = list(first)
    iou = iou_matrix(
        np.array([o.face.box for o in again], np.float64),
        np.array([o.face.box for o in first], np.float64),
    )
    for k, o in enumerate(again):
        j = int(np.argmax(iou[k]))
        if iou[k, j] < SAME_FACE_IOU:
            out.append(o)
        elif o.quality.passed and not out[j].quality.passed:
            out[j] = o
    return out


class FacePipeline:
    """Frames in, ``FaceObservation`` out; one instance per camera thread (not thread-safe)."""

    def __init__(
        self,
        detector: str = "blazeface-full",
        quality: QualityConfig | None = None,
        max_side: int | None = 640,
        roi: tuple[int, int, int, int] | None = None,
        fallback: Fallback = "auto",
        min_score: float | None = None,
        flip: bool = FLIP,
        second_pass: bool = False,
        model: FaceModel | str = DEFAULT_MODEL,
    ) -> None:
        """
        Args:
            detector: a ``CameraConfig.detector`` name.
            quality: thresholds; ``None`` means the ``QualityConfig`` defaults.
            max_side: longest side of the copy the detector sees (``None``: full frame).
                640 keeps 1080p cameras affordable on a Pi; alignment still uses full res.
            roi: ``(x1, y1, x2, y2)`` frame pixels to search (e.g. the door area); faces
                outside it are never seen, which both saves CPU and keeps passers-by out.
            fallback: second look when the first pass finds nothing (only empty frames pay):
                ``"near"`` runs the short-range BlazeFace (full-range misses faces that fill
                the frame: 312/400 ORL images, 5/40 tight crops; short-range finds all);
                ``"tiles"`` re-runs BlazeFace on 2x2 overlapping tiles (small, distant faces);
                ``"upsample"`` re-runs HOG one pyramid level up; ``"auto"`` = near, then
                tiles for BlazeFace, upsample for HOG; ``"none"`` skips it.
            min_score: BlazeFace score threshold override.
            flip: embed each face as the mean of its chip's and its mirrored chip's
                descriptors (one more ResNet pass per embedded face).
            second_pass: when no face of the frame passes the gate, look again with dlib HOG
                upsampled once (twice if once finds nothing) on the detector's view. Off by
                default: an empty door frame would pay for it every time; ``for_photos`` turns
                it on (see docs/accuracy.md, "Levers", for what it gains and costs).
            model: the embedding model (``RecognitionConfig.model``): the hub compares a
                vector only with templates of the same model (storesense.face_models).
        """
        kwargs: dict[str, object] = {}
        if min_score is not None and detector.startswith("blazeface"):
            kwargs["min_score"] = min_score
        self.detector_name = detector
        self.detector: FaceDetector = make_detector(detector, **kwargs)
        self.gate = QualityGate.from_config(quality)
        self.embedder = make_embedder(model, flip=flip)
        self.second_pass = bool(second_pass)
        self.second_pass_runs = 0
        self.max_side = max_side
        self.roi = roi
        self.fallback: Fallback = fallback
        self.rejections: Counter[str] = Counter()
        self.fallback_runs = 0
        self._hog_up: DlibHogDetector | None = None
        self._near: BlazeFaceDetector | None = None
        self._second: tuple[DlibHogDetector, DlibHogDetector] | None = None

    @classmethod
    def for_photos(
        cls, quality: QualityConfig | None = None, model: FaceModel | str = DEFAULT_MODEL
    ) -> FacePipeline:
        """The pipeline for still photos (enrolment, ``storesense eval faces``): the door's,
        plus the second detection pass (``PHOTO_SECOND_PASS``)."""
        return cls(quality=quality, second_pass=PHOTO_SECOND_PASS, model=model)

    @property
    def model_id(self) -> str:
        """The embedding model of every vector this pipeline yields."""
        return self.embedder.model_id

    # ------------------------------------------------------------------ public entry points

    def process_bgr(self, frame_bgr: np.ndarray) -> list[FaceObservation]:
        """For OpenCV frames: the single BGR→RGB conversion happens here."""
        return [self.embed(o) if o.needs_embedding else o for o in self.analyse_bgr(frame_bgr)]

    def process_rgb(self, rgb: np.ndarray) -> list[FaceObservation]:
        """For RGB frames (Pillow, GIF decoders, picamera2 RGB888 formats)."""
        return [self.embed(o) if o.needs_embedding else o for o in self.analyse_rgb(rgb)]

    def analyse_bgr(self, frame_bgr: np.ndarray) -> list[FaceObservation]:
        """Like ``process_bgr`` but without the ResNet: gate-passed faces keep their chip.

        The lazy path of the edge agent: ``FaceTracker`` decides which of these deserve an
        embedding, ``embed`` computes it. The one BGR→RGB conversion happens here.
        """
        frame = np.asarray(frame_bgr)
        if frame.size == 0 or frame.ndim < 2 or min(frame.shape[:2]) < 8:
            return []
        if frame.ndim == 3 and frame.shape[2] == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        elif frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        return self.analyse_rgb(frame)

    def analyse_rgb(self, rgb: np.ndarray) -> list[FaceObservation]:
        """Detect, align and gate an RGB frame; no embedding (see ``analyse_bgr``)."""
        rgb = np.asarray(rgb)
        if rgb.size == 0 or rgb.ndim < 2 or min(rgb.shape[:2]) < 8:
            return []
        rgb = as_rgb_uint8(rgb)
        obs = [self._observe(rgb, face, src) for face, src in self.detect_tagged(rgb)]
        if self.second_pass and not any(o.quality.passed for o in obs):
            again = [self._observe(rgb, face, "dlib-hog") for face in self._second_look(rgb)]
            obs = same_faces_once(obs, again)
        return obs

    def embed(self, obs: FaceObservation) -> FaceObservation:
        """``obs`` with its 128-d embedding computed from the kept chip (the ~55 ms step).

        Returns a new observation (they are frozen) without the chip, which has served its
        purpose; an observation that is already embedded is returned unchanged. Raises
        ``ValueError`` for a gate-rejected face: it has no chip because embedding it would
        only feed the hub a bad vote.
        """
        if obs.embedding is not None:
            return obs
        if obs.chip is None or not obs.quality.passed:
            raise ValueError("only a gate-passed observation from analyse_* can be embedded")
        return replace(obs, embedding=self.embedder.describe(obs.chip), chip=None)

    def observations_from_image_file(self, path: str | Path) -> list[FaceObservation]:
        """Enrolment / evaluation entry: decode a file (raises ``FaceImageError``) and process."""
        return self.process_rgb(load_rgb(path))

    # ------------------------------------------------------------------ stages

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in frame pixels, searched inside ``roi`` on a ≤ ``max_side`` copy."""
        return [face for face, _ in self.detect_tagged(as_rgb_uint8(rgb))]

    def detect_tagged(self, rgb: np.ndarray) -> list[tuple[DetectedFace, str]]:
        """Like ``detect`` but each face carries the name of the detector that found it.

        The landmark box mapping is per detector, and a mismatch is not harmless: a
        short-range box mapped as full-range halves the landmark spread on some ORL faces.
        """
        roi = self._roi_view(rgb)
        if roi is None:
            return []
        view, small, ox, oy, scale = roi
        found = self.detector.detect(small)
        if found:
            return [(_rescale(f, 1.0 / scale, ox, oy), self.detector_name) for f in found]
        if self.fallback == "none":
            return []
        found, source = self._fallback(view)
        return [(_rescale(f, 1.0, ox, oy), source) for f in found]

    def _fallback(self, view: np.ndarray) -> tuple[list[DetectedFace], str]:
        """Second look for small faces, at up to 2x the detector's effective resolution."""
        det, mode = self.detector, self.fallback
        if isinstance(det, BlazeFaceDetector):
            faces: list[DetectedFace] = []
            if mode in ("near", "auto") and det.variant == "full":
                self.fallback_runs += 1
                if self._near is None:
                    self._near = BlazeFaceDetector("short")
                faces = self._near.detect(view)
                if faces:
                    return faces, self._near.name
            if mode in ("tiles", "auto"):
                self.fallback_runs += 1
                faces = _tiled(det, view)
            return faces, det.name
        if isinstance(det, DlibHogDetector) and mode in ("upsample", "auto"):
            self.fallback_runs += 1
            if self._hog_up is None:
                self._hog_up = DlibHogDetector(det.upsample + 1)
            return self._hog_up.detect(view), det.name
        return [], det.name

    def _second_look(self, rgb: np.ndarray) -> list[DetectedFace]:
        """dlib HOG one, then two pyramid levels up, on the ≤ ``max_side`` view of the ROI.

        A different detector family from BlazeFace (gradients, not a CNN), upsampled so
        faces down to ~20 px wide are in its range; only for frames whose first look gave no
        usable face. Boxes come back in frame pixels.
        """
        roi = self._roi_view(rgb)
        if roi is None:
            return []
        _, small, ox, oy, scale = roi
        if self._second is None:
            self._second = (DlibHogDetector(1), DlibHogDetector(2))
        self.second_pass_runs += 1
        for det in self._second:
            found = det.detect(small)
            if found:
                return [_rescale(f, 1.0 / scale, ox, oy) for f in found]
        return []

    def _roi_view(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int, float] | None:
        """The ``roi`` crop of ``rgb`` and its ≤ ``max_side`` copy, or None if the crop is < 8 px.

        Returns ``(view, small, ox, oy, scale)``: ``view`` is the full-resolution crop (the
        small-face fallbacks want every pixel), ``small`` the one the detectors see, and a box
        found in ``small`` maps back to frame pixels with ``_rescale(f, 1 / scale, ox, oy)``.
        Both detection passes go through here so they always search the same region.
        """
        ox, oy = 0, 0
        view = rgb
        if self.roi is not None:
            h, w = rgb.shape[:2]
            x1, y1 = max(0, int(self.roi[0])), max(0, int(self.roi[1]))
            x2, y2 = min(w, int(self.roi[2])), min(h, int(self.roi[3]))
            if x2 - x1 < 8 or y2 - y1 < 8:
                return None
            view, ox, oy = rgb[y1:y2, x1:x2], x1, y1
        scale = 1.0
        small = view
        if self.max_side and max(view.shape[:2]) > self.max_side:
            scale = self.max_side / max(view.shape[:2])
            size = (max(1, round(view.shape[1] * scale)), max(1, round(view.shape[0] * scale)))
            small = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
        return view, small, ox, oy, scale

    def _observe(self, rgb: np.ndarray, face: DetectedFace, source: str) -> FaceObservation:
        landmarks = self.embedder.landmarks(rgb, face, source)
        quality = self.gate.assess(landmarks, None)
        if quality.passed:  # size and pose fine: now it is worth warping the chip
            chip = self.embedder.chip(rgb, landmarks)
            quality = self.gate.assess(landmarks, chip)
            if quality.passed:  # keep what the model reads, so the frame itself can go
                net_input = self.embedder.model_input(rgb, landmarks, chip)
                return FaceObservation(face, landmarks, quality, None, net_input)
        self.rejections.update(quality.reasons)
        return FaceObservation(face, landmarks, quality, None)


def _rescale(face: DetectedFace, k: float, ox: float, oy: float) -> DetectedFace:
    x1, y1, x2, y2 = face.box
    box = (x1 * k + ox, y1 * k + oy, x2 * k + ox, y2 * k + oy)
    kps = None
    if face.keypoints is not None:
        kps = (face.keypoints * k + np.array([ox, oy], np.float32)).astype(np.float32)
    return DetectedFace(box, face.score, kps)


def _tiled(det: BlazeFaceDetector, view: np.ndarray) -> list[DetectedFace]:
    """Run ``det`` on 2x2 tiles overlapping by 1/5: each tile gets ~1.7x the input pixels/face."""
    h, w = view.shape[:2]
    th, tw = int(h * 0.6), int(w * 0.6)
    found: list[DetectedFace] = []
    for y0 in (0, h - th):
        for x0 in (0, w - tw):
            # No pre-resize: the detector letterboxes each tile to its input size itself.
            tile = view[y0 : y0 + th, x0 : x0 + tw]
            found += [_rescale(f, 1.0, x0, y0) for f in det.detect(tile)]
    if len(found) < 2:
        return found
    boxes = np.array([f.box for f in found], np.float32)
    points = [f.keypoints for f in found if f.keypoints is not None]
    assert len(points) == len(found)  # BlazeFace always gives keypoints (only HOG has none)
    kps = np.stack(points).astype(np.float32)
    scores = np.array([f.score for f in found], np.float32)
    return [
        DetectedFace(tuple(float(v) for v in b), s, k.astype(np.float32))  # type: ignore[arg-type]
        for b, k, s in weighted_nms(boxes, kps, scores, det.iou)
    ]
