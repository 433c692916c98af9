"""5-point alignment and the dlib ResNet 128-d face embedding.

Only the permissively licensed dlib models are used: ``shape_predictor_5_face_landmarks.dat``
and ``dlib_face_recognition_resnet_model_v1.dat`` (public domain / CC0, shipped by the
``face_recognition_models`` package). The 68-point predictor in the same package is trained
on iBUG 300-W, which is licensed for non-commercial use only, so it must never be loaded here.

The 5-point predictor was trained on boxes from dlib's own detectors. BlazeFace frames faces
a little differently, so its boxes are mapped onto the dlib framing first (``BOX_MAPS``,
measured in ``bench/face_detectors.py`` on LFW and ORL; see docs/face-detection.md). An
unmapped box shifts the landmarks, the chip and therefore the embedding.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.entrance.face_detect import as_rgb_uint8
from edge.entrance.face_types import EMBEDDING_DIM, DetectedFace

if TYPE_CHECKING:  # dlib ships no types: Any to mypy, the real name to a reader
    import dlib

CHIP_SIZE = 150  # the ResNet was trained on 150x150 chips
CHIP_PADDING = 0.25  # dlib's default; the ResNet expects exactly this framing

# Map a detector box onto a dlib-HOG-like box: (dx, dy, scale) with the new centre at
# (cx + dx * w, cy + dy * h) and the new square side = scale * w. Medians of the box offsets
# between BlazeFace and HOG (upsample=1) on 300 LFW + 80 ORL faces found by both.
BOX_MAPS: dict[str, tuple[float, float, float]] = {
    "blazeface-short": (0.008, -0.036, 0.989),
    "blazeface-full": (0.014, 0.014, 0.937),
    "dlib-hog": (0.0, 0.0, 1.0),
}


def _model_path(name: str) -> str:
    # the weights are package data of face_recognition_models, found as such (no __file__ maths)
    path = Path(str(resources.files("face_recognition_models") / "models" / name))
    if not path.is_file():
        raise FileNotFoundError(f"dlib model {name} missing; reinstall face_recognition_models")
    return str(path)


def dlib_box(face: DetectedFace, detector: str) -> tuple[float, float, float, float]:
    """The box the 5-point predictor should see for ``face`` from detector ``detector``."""
    dx, dy, scale = BOX_MAPS.get(detector, (0.0, 0.0, 1.0))
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
    half = scale * w / 2
    return (cx - half, cy - half, cx + half, cy + half)


class FaceEmbedder:
    """Landmarks → aligned chip → 128-d descriptor, split so the gate can run between steps."""

    def __init__(self, num_jitters: int = 0, flip: bool = False) -> None:
        """
        Args:
            num_jitters: dlib's random-crop jitter count (0: one pass).
            flip: ``describe`` averages the chip's descriptor with its mirror image's
                (test-time flip averaging; one more ResNet pass per face, see ``describe``).
        """
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(_model_path("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(
            _model_path("dlib_face_recognition_resnet_model_v1.dat")
        )
        # Jitter multiplies the ResNet cost by N+1 for ~0.5 % accuracy: not worth it at a door
        # where several frames per visit vote anyway.
        self.num_jitters = int(num_jitters)
        self.flip = bool(flip)

    def _shape_of(
        self, rgb: np.ndarray, box: tuple[float, float, float, float]
    ) -> dlib.full_object_detection:
        rect = self._dlib.rectangle(
            round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1
        )
        return self._shape(rgb, rect)

    def landmarks(
        self, rgb: np.ndarray, face: DetectedFace, detector: str = "dlib-hog"
    ) -> np.ndarray:
        """Five dlib landmarks (5, 2) float32 in frame pixels for a detector's face box.

        dlib order: 0-1 one eye's outer/inner corner, 2-3 the other eye's, 4 below the nose.
        """
        shape = self._shape_of(as_rgb_uint8(rgb), dlib_box(face, detector))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def chip(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 150x150 aligned RGB chip the ResNet expects (rotation, scale, crop from 5 pts)."""
        dlib = self._dlib
        pts = dlib.points()
        for x, y in np.asarray(landmarks, dtype=np.float64):
            pts.append(dlib.point(round(x), round(y)))
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        rect = dlib.rectangle(
            int(xs.min()), int(ys.min()), int(np.ceil(xs.max())), int(np.ceil(ys.max()))
        )
        shape = dlib.full_object_detection(rect, pts)
        return np.asarray(
            dlib.get_face_chip(as_rgb_uint8(rgb), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        )

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """128-d float32 descriptor of an aligned RGB chip (colour order matters: RGB)."""
        chip = np.ascontiguousarray(chip, dtype=np.uint8)
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chip must be {CHIP_SIZE}x{CHIP_SIZE}x3 RGB, got {chip.shape}")
        vec = self._net.compute_face_descriptor(chip, self.num_jitters)
        out = np.asarray(vec, dtype=np.float32)
        assert out.shape == (EMBEDDING_DIM,)
        return out

    def describe(self, chip: np.ndarray) -> np.ndarray:
        """The descriptor the pipeline publishes: ``embed_chip``, flip-averaged if ``flip``.

        Why the mirror: a face and its mirror image are the same person, but the ResNet's
        answer for the two differs a little (pose, lighting from one side, hair parting);
        their mean is a steadier descriptor for one more ResNet pass. Measured per lever in
        docs/accuracy.md, with its cost on one core.
        """
        vec = self.embed_chip(chip)
        if not self.flip:
            return vec
        mirrored = self.embed_chip(np.ascontiguousarray(np.asarray(chip)[:, ::-1]))
        return ((vec + mirrored) / 2.0).astype(np.float32)

    def embed(self, rgb: np.ndarray, face: DetectedFace, detector: str = "dlib-hog") -> np.ndarray:
        """Convenience: landmarks, chip and descriptor in one call (no quality gate)."""
        rgb = as_rgb_uint8(rgb)
        return self.embed_chip(self.chip(rgb, self.landmarks(rgb, face, detector)))
