"""The hub's per-track rule: one very confident frame alerts at once, else agreement decides.

Pure (no broker): real ``Recognizer`` objects fed ``FaceTrack`` messages as the door sends
them (the first usable frame alone, then the agreement pair, then the final message). Probe
vectors are placed at an exact distance from an enrolled template, so each case sits where
it says: well inside the single-frame threshold, between it and the agreement threshold
("borderline"), or outside both.
"""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pytest

from hub.faces.gallery import GalleryMatrix
from hub.faces.matcher import OpenSetPolicy, SearchHit
from hub.faces.recognizer import Recognizer, confident_policy, decide_track
from storesense import messages as m
from storesense.config import RecognitionConfig
from storesense.face_models import DEFAULT_MODEL
from tests.hub.conftest import unit

CFG = RecognitionConfig(
    threshold=0.46, margin=0.08, single_frame_threshold=0.36, single_frame_margin=0.12
)
CONFIDENT, BORDERLINE, FAR = 0.25, 0.42, 0.9  # distances to the enrolled template


def _gallery() -> GalleryMatrix:
    return GalleryMatrix(
        version=1,
        labels=np.array([0, 1, 2]),
        matrix=np.stack([unit(1), unit(2), unit(3)]),
        customer_ids=["c1", "c2", "c3"],
        names={"c1": "Ada", "c2": "Grace", "c3": "Edsger"},
    )


def _at(base: np.ndarray, d: float, seed: int) -> np.ndarray:
    """A vector exactly ``d`` from ``base`` (random direction orthogonal to it)."""
    r = np.random.default_rng(seed).normal(size=128)
    r -= r @ base * base / (base @ base)
    return (base + d * r / np.linalg.norm(r)).astype(np.float32)


class Door:
    """One track as the door publishes it: every call adds frames and sends the whole best set."""

    def __init__(self) -> None:
        self.track_id = uuid.uuid4().hex
        self.t0 = time.time()
        self.samples: list[m.EmbeddingSample] = []
        self.update = 0

    def send(self, *vectors: np.ndarray, final: bool = False) -> m.FaceTrack:
        for v in vectors:
            t = self.t0 + 0.1 * len(self.samples)
            self.samples.append(
                m.EmbeddingSample(
                    vector=v, quality=0.8, face_px=40, sharpness=90, frontalness=0.9, t=t
                )
            )
        msg = m.FaceTrack(
            model=DEFAULT_MODEL,
            camera_id="door-1",
            track_id=self.track_id,
            update=self.update,
            final=final,
            first_usable_at=self.t0,
            samples=list(self.samples),
        )
        self.update += 1
        return msg


def _recognizer(cfg: RecognitionConfig = CFG) -> Recognizer:
    r = Recognizer(cfg)
    r.load(_gallery())
    return r


def test_one_confident_frame_alerts_at_once() -> None:
    rec, door = _recognizer(), Door()
    out = rec.observe(door.send(_at(unit(1), CONFIDENT, 1)), time.time())
    assert out is not None and out.customer_id == "c1"
    assert (out.rule, out.frames, out.votes) == ("single_frame", 1, 1)
    assert out.best_distance == pytest.approx(CONFIDENT, abs=1e-4)


def test_borderline_frame_waits_and_agreement_decides() -> None:
    rec, door = _recognizer(), Door()
    assert rec.observe(door.send(_at(unit(1), BORDERLINE, 1)), time.time()) is None
    out = rec.observe(door.send(_at(unit(1), BORDERLINE, 2)), time.time())
    assert out is not None and out.customer_id == "c1"
    assert (out.rule, out.frames, out.votes) == ("agreement", 2, 2)


def test_borderline_frame_then_a_stranger_frame_ends_unknown() -> None:
    rec, door = _recognizer(), Door()
    now = time.time()
    assert rec.observe(door.send(_at(unit(1), BORDERLINE, 1)), now) is None
    assert rec.observe(door.send(_at(unit(1), FAR, 2)), now) is None  # 1 of 2: no agreement
    out = rec.observe(door.send(final=True), now)
    assert out is not None and out.customer_id is None and out.rule is None


def test_a_confident_frame_and_another_customer_in_one_message_is_not_a_single_frame_match() -> (
    None
):
    """An old door (two samples in its first message): a frame accepted as someone else vetoes."""
    rec, door = _recognizer(), Door()
    msg = door.send(_at(unit(1), CONFIDENT, 1), _at(unit(2), BORDERLINE, 2))
    assert rec.observe(msg, time.time()) is None


def test_single_frame_then_disagreeing_frames_make_no_second_alert_and_no_flip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec, door = _recognizer(), Door()
    now = time.time()
    first = rec.observe(door.send(_at(unit(1), CONFIDENT, 1)), now)
    assert first is not None and first.customer_id == "c1"
    with caplog.at_level(logging.WARNING, logger="hub.faces.recognizer"):
        # the next frames are confidently someone else: agreement for c2 over all frames
        assert rec.observe(door.send(_at(unit(2), 0.2, 2), _at(unit(2), 0.2, 3)), now) is None
        assert rec.observe(door.send(final=True), now) is None
    assert rec.still_present(door.track_id) == "c1"  # the visit stays the alerted customer's
    assert rec.counters["single_frame_contradicted"] == 1
    assert "alerted on one frame as c1, later frames accepted as c2" in caplog.text
    assert rec.sweep(now + 60) == []  # nothing left open that could alert later


def test_single_frame_match_confirmed_by_later_agreement_is_counted() -> None:
    rec, door = _recognizer(), Door()
    now = time.time()
    assert rec.observe(door.send(_at(unit(1), CONFIDENT, 1)), now) is not None
    assert rec.observe(door.send(_at(unit(1), BORDERLINE, 2)), now) is None
    assert rec.counters["single_frame_confirmed"] == 1
    assert rec.observe(door.send(final=True), now) is None


def test_single_frame_match_left_unconfirmed_when_the_track_ends_or_goes_quiet() -> None:
    rec = _recognizer()
    now = time.time()
    a, b = Door(), Door()
    assert rec.observe(a.send(_at(unit(1), CONFIDENT, 1)), now) is not None
    assert rec.observe(a.send(_at(unit(1), FAR, 2), final=True), now) is None
    assert rec.observe(b.send(_at(unit(3), CONFIDENT, 3)), now) is not None
    assert rec.sweep(now + CFG.track_timeout_s + 1) == []
    assert rec.counters["single_frame_unconfirmed"] == 2
    assert rec.counters["match_single_frame"] == 2


def test_without_single_frame_settings_one_frame_never_alerts() -> None:
    """``single_frame_threshold: null`` is the rule before this change: agreement only."""
    rec, door = _recognizer(RecognitionConfig(single_frame_threshold=None)), Door()
    now = time.time()
    assert rec.observe(door.send(_at(unit(1), 0.05, 1)), now) is None
    out = rec.observe(door.send(final=True), now)
    assert out is not None and out.customer_id is None  # one frame < min_votes


def test_confident_policy_is_never_looser_than_the_agreement_rule() -> None:
    policy = OpenSetPolicy(0.46, 0.08)
    loose = RecognitionConfig(single_frame_threshold=0.9, single_frame_margin=0.0)
    strict = confident_policy(policy, loose)
    assert strict is not None and (strict.threshold, strict.margin) == (0.46, 0.08)
    assert confident_policy(policy, RecognitionConfig(single_frame_margin=None)) is None


def test_decide_track_is_the_rule_the_recognizer_runs() -> None:
    policy = OpenSetPolicy.from_config(CFG)
    confident = confident_policy(policy, CFG)
    sure, border = SearchHit(0, 0.30, 1, 0.9), SearchHit(0, 0.42, 1, 0.9)
    assert decide_track(policy, confident, [(sure, 0.8)], finished=False).rule == "single_frame"
    assert decide_track(policy, confident, [(border, 0.8)], finished=False).rule is None
    pair = decide_track(policy, confident, [(border, 0.8), (border, 0.7)], finished=False)
    assert (pair.rule, pair.decision.status) == ("agreement", "match")
    assert decide_track(policy, confident, [], finished=True).decision.status == "unknown"
