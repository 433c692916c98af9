"""Value objects that pass between the face stages (detect → align → gate → embed).

Kept in their own module so the tracker, the publisher, enrolment and evaluation can share them
without importing the model code (and its heavy native libraries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EMBEDDING_DIM = 128


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found by a detector, in the pixel coordinates of the frame it was found in."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    # Detector keypoints (BlazeFace: 6 points; dlib HOG: none). Only used to seed alignment.
    keypoints: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """Why a face is (or is not) good enough to publish; ``score`` in [0, 1] weights hub votes."""

    score: float
    face_px: float  # inter-ocular distance in pixels of the original frame
    sharpness: float  # variance of the Laplacian on the aligned chip
    frontalness: float  # 1 = frontal, 0 = profile
    passed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """A detected, aligned face; ``embedding`` is None if the gate rejected it before embedding.

    On the lazy path (``FacePipeline.analyse_*``) a face that passed the gate also has no
    embedding yet: it carries its aligned ``chip`` instead, so the ResNet (~55 ms per face on
    a 2-core x86, the dominant cost) runs later only if the tracker will keep the sample
    (``FacePipeline.embed``). The chip is the exact ResNet input, so an embedding computed later
    is identical to one computed at once; the frame itself need not be kept.
    """

    face: DetectedFace
    landmarks: np.ndarray  # (5, 2) float32, dlib 5-point order, frame pixels
    quality: FaceQuality
    embedding: np.ndarray | None = field(default=None)
    # The embedding model's exact input (dlib ResNet: the 150x150x3 RGB aligned chip; SFace:
    # its 112x112x3 RGB crop), set only on gate-passed, not-yet-embedded observations (tens of
    # kB each, so it is dropped once the embedding exists).
    chip: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def needs_embedding(self) -> bool:
        """Passed the gate but not embedded yet: ``FacePipeline.embed`` can finish it."""
        return self.quality.passed and self.embedding is None and self.chip is not None
