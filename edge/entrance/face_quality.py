"""Quality gate between alignment and embedding.

The ResNet embedding is the most expensive step on the edge (~25-60 ms per face on a Pi-class
CPU), and bad faces make bad votes at the hub: tiny faces, motion blur and strongly turned
heads all drift towards *other* identities. So the gate runs on the 5 landmarks and the
aligned chip, and a rejected face is never embedded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.entrance.face_types import FaceQuality
from storesense.config import QualityConfig

REASON_SIZE = "too_small"
REASON_BLUR = "blurry"
REASON_POSE = "not_frontal"
REASON_LANDMARKS = "bad_landmarks"


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the two eyes from dlib's 5 points (corners 0-1 and 2-3)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return (lm[0] + lm[1]) / 2.0, (lm[2] + lm[3]) / 2.0


def inter_ocular_px(landmarks: np.ndarray) -> float:
    a, b = eye_centres(landmarks)
    return float(np.linalg.norm(a - b))


def frontalness(landmarks: np.ndarray) -> float:
    """1 for a frontal face, falling to 0 as the head turns (yaw) towards profile.

    The nose point is offset along the eye line by roughly sin(yaw) of the head's depth,
    while the eye distance shrinks by cos(yaw): their ratio grows quickly with yaw and is
    independent of face size and in-plane roll. Symmetric, so it does not matter which eye
    dlib lists first. ``offset = 0.5`` (nose above one eye centre) maps to 0.
    """
    a, b = eye_centres(landmarks)
    nose = np.asarray(landmarks, dtype=np.float64)[4]
    axis = b - a
    d = float(np.linalg.norm(axis))
    if d < 1e-6:
        return 0.0
    offset = abs(float(np.dot(nose - (a + b) / 2.0, axis / d))) / d
    return float(np.clip(1.0 - 2.0 * offset, 0.0, 1.0))


SHARPNESS_SIDE = 64  # chip side the Laplacian is measured at
SHARPNESS_STD = 50.0  # grey-level contrast the chip is normalised to first


def sharpness(chip: np.ndarray) -> float:
    """Laplacian variance of the grey chip, resampled to 64 px and contrast-normalised.

    Why not the raw 150 px chip: dlib upsamples small faces to 150 px, and upsampling alone
    divides the Laplacian variance by ~10 at 24 px inter-ocular (every LFW face would look
    "blurred"). At 64 px the chip is close to the native resolution of a door-camera face, so
    the measure reflects blur, not size (size has its own threshold). Why normalise contrast:
    a backlit or dim but sharp face has a small Laplacian purely from low contrast; scaling the
    grey chip to a standard deviation of 50 (typical of a well-lit face) removes that, so the
    value reads like the Laplacian variance of a normally exposed chip.
    """
    chip = np.asarray(chip)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) if chip.ndim == 3 else chip
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float64)
    std = float(grey.std())
    if std < 1.0:  # a flat patch has no detail at all
        return 0.0
    return float(cv2.Laplacian(grey * (SHARPNESS_STD / std), cv2.CV_64F).var())


@dataclass(frozen=True)
class QualityGate:
    """Hard thresholds decide ``passed``; ``score`` grades what passed for hub vote weights."""

    # the config's defaults (one place: storesense.config.QualityConfig)
    min_face_px: float = QualityConfig().min_face_px
    min_sharpness: float = QualityConfig().min_sharpness
    min_frontalness: float = QualityConfig().min_frontalness

    @classmethod
    def from_config(cls, cfg: QualityConfig | None) -> QualityGate:
        cfg = cfg or QualityConfig()
        return cls(cfg.min_face_px, cfg.min_sharpness, cfg.min_frontalness)

    def assess_landmarks(self, landmarks: np.ndarray) -> tuple[float, float, list[str]]:
        """Size and pose only: cheap, needs no chip, so obviously bad faces skip the warp too."""
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (5, 2) or not np.isfinite(lm).all():
            return 0.0, 0.0, [REASON_LANDMARKS]
        px, fr = inter_ocular_px(lm), frontalness(lm)
        reasons = []
        if px < self.min_face_px:
            reasons.append(REASON_SIZE)
        if fr < self.min_frontalness:
            reasons.append(REASON_POSE)
        return px, fr, reasons

    def assess(self, landmarks: np.ndarray, chip: np.ndarray | None) -> FaceQuality:
        """Full verdict. ``chip=None`` means it was not built (size/pose already failed)."""
        px, fr, reasons = self.assess_landmarks(landmarks)
        sharp = sharpness(chip) if chip is not None else 0.0
        if chip is not None and sharp < self.min_sharpness:
            reasons.append(REASON_BLUR)
        score = self._score(px, sharp, fr)
        return FaceQuality(
            score=score,
            face_px=px,
            sharpness=sharp,
            frontalness=fr,
            passed=not reasons,
            reasons=tuple(reasons),
        )

    def _score(self, px: float, sharp: float, fr: float) -> float:
        """Geometric mean of three [0, 1] terms; each saturates at a comfortable margin.

        Size saturates at 2x the minimum (the ResNet chip is 150 px; beyond ~40 px inter-ocular
        extra pixels add little), sharpness at 3x, pose is used as is.
        """
        s_size = min(1.0, px / (2.0 * self.min_face_px)) if self.min_face_px > 0 else 1.0
        s_sharp = min(1.0, sharp / (3.0 * self.min_sharpness)) if self.min_sharpness > 0 else 1.0
        terms = np.clip([s_size, s_sharp, fr], 1e-6, 1.0)
        return float(np.exp(np.log(terms).mean()))
