"""The face embedding models the door can run, named once for both sides.

Why the contract names them: a dlib ResNet vector and an SFace vector are both 128 floats but
not comparable (different spaces, different distance scales), so every vector that crosses
MQTT or lands in the gallery says which model made it, and the hub refuses to compare across
models (docs/face-models.md). Each model has its own decision defaults, chosen on LFW folds
with a held-out fold (docs/accuracy.md); a store's YAML may override them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

FaceModel = Literal["dlib-resnet-v1", "sface-2021dec-int8bq"]
DLIB_RESNET: Final = "dlib-resnet-v1"
SFACE: Final = "sface-2021dec-int8bq"
FACE_MODELS: Final[tuple[str, ...]] = (DLIB_RESNET, SFACE)
# What a store runs when its YAML names no model: SFace identified 98.4 % of customers held
# out against the ResNet's 91.1 %, at 0.5-0.6 % FPIR, on LFW folds 1-5 with the same faces
# and 3 enrolment photos (docs/accuracy.md, "Models"), for a third of the CPU per face
# (docs/face-models.md).
DEFAULT_MODEL: Final = SFACE


@dataclass(frozen=True)
class DecisionDefaults:
    """``RecognitionConfig`` defaults that depend on the model's distance scale."""

    threshold: float
    margin: float
    single_frame_threshold: float | None
    single_frame_margin: float | None


# The edge tracker never joins two faces whose vectors are further apart than this (what keeps
# two people crossing the door apart; consecutive frames of one face are far closer in both
# spaces, tests/edge/entrance/test_face_tracker_real.py): each model's verification radius,
# dlib's documented 0.6, and SFace's published cosine threshold 0.363 as a unit-vector
# distance, sqrt(2 * (1 - 0.363)) = 1.129 (OpenCV Zoo's face_recognition_sface README).
SAME_PERSON_RADIUS: Final[dict[str, float]] = {DLIB_RESNET: 0.6, SFACE: 1.129}


DECISION_DEFAULTS: Final[dict[str, DecisionDefaults]] = {
    # LFW folds 1-5, 3 enrolment photos, mean template, flip, gate 0.25: the loosest threshold
    # keeping <= 0.5 % of never-enrolled people matched, held out by fold (docs/accuracy.md,
    # "Levers"); single frame: the strictest of five fold-held-out picks ("Door tracks").
    DLIB_RESNET: DecisionDefaults(0.444, 0.08, 0.435, 0.14),
    # SFace's unit vectors (distances near 1.0), the same recipes as the ResNet's, on the same
    # faces (docs/accuracy.md, "Models" and "Door tracks"): 0.961 / 0 fitted on all five folds
    # (held out: DIR 97.9 %, FPIR 0.64 %); single frame 0.826 / 0.08, the strictest of the
    # five fold-held-out picks (0.826-0.942).
    SFACE: DecisionDefaults(0.961, 0.0, 0.826, 0.08),
}
