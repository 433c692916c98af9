"""Quality gate: blur, size and pose rejections on real images; good faces pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.entrance.face_pipeline import FacePipeline, load_rgb
from edge.entrance.face_quality import (
    REASON_BLUR,
    REASON_POSE,
    REASON_SIZE,
    QualityGate,
    frontalness,
    sharpness,
)
from edge.entrance.face_types import FaceObservation
from storesense.config import QualityConfig

LFW = "faces/lfw-dev/Colin_Powell/Colin_Powell_0001.jpg"
ORL = "faces/orl/s2/1.pgm"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline("blazeface-full")


def _one(pipeline: FacePipeline, rgb: np.ndarray) -> FaceObservation:
    obs = pipeline.process_rgb(rgb)
    assert len(obs) == 1
    return obs[0]


@pytest.mark.parametrize("rel", [LFW, ORL, "faces/lfw-dev/Tony_Blair/Tony_Blair_0002.jpg"])
def test_good_faces_pass(shared_data: Path, pipeline: FacePipeline, rel: str) -> None:
    obs = _one(pipeline, load_rgb(shared_data / rel))
    assert obs.quality.passed, obs.quality
    assert obs.embedding is not None
    assert 0.0 <= obs.quality.score <= 1.0 and obs.quality.reasons == ()


def test_blurred_copy_is_rejected_for_blur(shared_data: Path, pipeline: FacePipeline) -> None:
    rgb = load_rgb(shared_data / LFW)
    obs = _one(pipeline, cv2.GaussianBlur(rgb, (0, 0), 2.5))
    assert not obs.quality.passed and REASON_BLUR in obs.quality.reasons
    assert obs.embedding is None  # rejected faces are never embedded


def test_tiny_face_is_rejected_for_size(shared_data: Path, pipeline: FacePipeline) -> None:
    rgb = load_rgb(shared_data / LFW)
    obs = _one(pipeline, cv2.resize(rgb, (70, 70), interpolation=cv2.INTER_AREA))
    assert REASON_SIZE in obs.quality.reasons and obs.embedding is None
    assert obs.quality.face_px < 18


def test_profile_face_is_rejected_for_pose(shared_data: Path, pipeline: FacePipeline) -> None:
    obs = _one(pipeline, load_rgb(shared_data / "faces/orl/s2/5.pgm"))  # head turned ~80°
    assert REASON_POSE in obs.quality.reasons and obs.quality.frontalness < 0.3


def test_frontalness_on_synthetic_landmarks() -> None:
    # dlib order: eye A corners, eye B corners, nose
    frontal = np.array([[60, 50], [45, 50], [15, 50], [30, 50], [37.5, 80]], float)
    assert frontalness(frontal) == pytest.approx(1.0)
    turned = frontal.copy()
    turned[4, 0] = 20.0  # nose almost under one eye
    mirrored = turned.copy()
    mirrored[4, 0] = 55.0
    assert frontalness(turned) < 0.2
    assert frontalness(turned) == pytest.approx(frontalness(mirrored))  # symmetric
    gate = QualityGate.from_config(QualityConfig())
    _, _, reasons = gate.assess_landmarks(turned)
    assert reasons == [REASON_POSE]
    # roll does not matter: rotate the frontal set by 30°
    c, s = np.cos(0.5), np.sin(0.5)
    assert frontalness(frontal @ np.array([[c, -s], [s, c]])) == pytest.approx(1.0)


def test_gate_from_config_and_degenerate_input() -> None:
    gate = QualityGate.from_config(QualityConfig(min_face_px=30, min_sharpness=5))
    assert gate.min_face_px == 30 and gate.min_sharpness == 5
    q = gate.assess(np.full((5, 2), np.nan), None)
    assert not q.passed and q.reasons == ("bad_landmarks",)
    assert sharpness(np.zeros((150, 150, 3), np.uint8)) == 0.0
