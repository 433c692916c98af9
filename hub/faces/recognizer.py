"""Turns face-track messages into at most one decision per track: a customer, or unknown.

The door publishes a track's first usable embedding alone and at once, then the agreement
pair, maybe one improvement, and a final message (``edge.entrance.face_tracker``). Two rules,
in :func:`decide_track`, decide a track:

- **single frame**: one frame the *confident* policy accepts (the hub's own
  ``OpenSetPolicy``, with ``RecognitionConfig.single_frame_threshold`` / ``_margin``: the same
  score, stricter numbers) alerts at once, unless another frame of the track is accepted as
  someone else. This is what makes the greeting quick: no waiting for the 2nd usable frame.
- **agreement** (as before): enough frames, weighted by quality, agree on one customer.

A track decided on a single frame is *watched* until it ends: its later frames never cause a
second alert and never change the customer (``alerts`` keeps one alert per decision, and a
changed customer would mean two people were greeted for one visitor). If a later frame is
accepted as another customer, that is a contradiction: logged at WARNING with both ids and
counted (``counters["single_frame_contradicted"]``), so it is never silent; staff still have
"Not this person" on the card. Agreement reached later is counted as ``confirmed``; a track
that ends with neither, ``unconfirmed``. A track that goes quiet is closed as unknown.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hub.faces.gallery import GalleryMatrix
from hub.faces.matcher import (
    MIN_FRAME_WEIGHT,
    Decision,
    OpenSetPolicy,
    SearchHit,
    TemplateIndex,
    TrackVote,
    customer_rows,
)
from storesense.config import RecognitionConfig
from storesense.messages import FaceTrack

log = logging.getLogger(__name__)

TrackRule = Literal["agreement", "single_frame"]


@dataclass(frozen=True)
class TrackOutcome:
    camera_id: str
    track_id: str
    customer_id: str | None  # None: an unknown visitor
    first_usable_at: float
    best_distance: float | None
    votes: int
    rule: TrackRule | None = None  # which rule matched (None: unknown)
    frames: int = 0  # frames (samples) the hub had seen when it decided


@dataclass(frozen=True)
class TrackDecision:
    """A track's verdict and the rule that gave it (``rule`` None unless a match)."""

    decision: Decision
    rule: TrackRule | None


def confident_policy(policy: OpenSetPolicy, cfg: RecognitionConfig) -> OpenSetPolicy | None:
    """The stricter policy one frame must pass to alert alone; None when disabled.

    Built from the hub's policy with ``dataclasses.replace``, so whatever scoring that policy
    runs (its ``decide_one``) applies to the single frame too, only with a threshold and a
    margin that are never looser than the agreement rule's.
    """
    if cfg.single_frame_threshold is None or cfg.single_frame_margin is None:
        return None
    return dataclasses.replace(
        policy,
        threshold=min(cfg.single_frame_threshold, policy.threshold),
        margin=max(cfg.single_frame_margin, policy.margin),
    )


def decide_track(
    policy: OpenSetPolicy,
    confident: OpenSetPolicy | None,
    frames: Sequence[tuple[SearchHit, float]],
    *,
    finished: bool,
) -> TrackDecision:
    """The hub's whole rule for one track, pure: ``frames`` are (search hit, quality), in order.

    Agreement first (``TrackVote`` under ``policy``); else a match on a single frame the
    ``confident`` policy accepts, provided no frame of the track is accepted (by ``policy``) as
    another customer. ``storesense_tools.accuracy.track_protocol`` measures exactly this.
    """
    vote = TrackVote(policy)
    for hit, quality in frames:
        vote.add(hit, quality)
    agreed = vote.decide(finished=finished)
    if agreed.status == "match" or confident is None or not frames:
        return TrackDecision(agreed, "agreement" if agreed.status == "match" else None)
    sure = {confident.decide_one(h) for h, _ in frames} - {None}
    accepted = [policy.decide_one(h) for h, _ in frames]
    if len(sure) != 1 or not set(accepted) - {None} <= sure:
        return TrackDecision(agreed, None)
    (label,) = sure
    weights = [_weight(q) for _, q in frames]
    mine = [w for w, a in zip(weights, accepted, strict=True) if a == label]
    best = min(h.distance for (h, _), a in zip(frames, accepted, strict=True) if a == label)
    share = sum(mine) / sum(weights)
    return TrackDecision(Decision("match", label, len(mine), share, best), "single_frame")


def _weight(quality: float) -> float:
    """A frame's weight as ``TrackVote`` counts it (clipped to [MIN_FRAME_WEIGHT, 1])."""
    w = float(quality)
    return MIN_FRAME_WEIGHT if not np.isfinite(w) else min(max(w, MIN_FRAME_WEIGHT), 1.0)


@dataclass
class _OpenTrack:
    camera_id: str
    first_usable_at: float
    last_message_at: float
    # capture t -> (embedding, quality, its search hit in the current gallery), arrival order
    frames: dict[float, tuple[np.ndarray, float, SearchHit]] = field(default_factory=dict)

    def hits(self) -> list[tuple[SearchHit, float]]:
        return [(hit, q) for _, q, hit in self.frames.values()]


@dataclass
class _Watched:
    """A track decided on one frame, kept until it ends to check the later frames."""

    track: _OpenTrack
    customer_id: str


class Recognizer:
    def __init__(self, cfg: RecognitionConfig) -> None:
        self.cfg = cfg
        self.policy = OpenSetPolicy.from_config(cfg)
        self.confident = confident_policy(self.policy, cfg)
        self.index = TemplateIndex(np.empty(0, np.int64), np.empty((0, 128), np.float32))
        self.customer_ids: list[str] = []
        self.counters: Counter[str] = Counter()
        self._open: dict[str, _OpenTrack] = {}
        self._watched: dict[str, _Watched] = {}
        self._decided: dict[str, float] = {}  # track_id -> decided at (late updates ignored)
        self._matched: dict[str, str] = {}  # decided track_id -> its customer

    def load(self, gm: GalleryMatrix) -> None:
        """Swap in a new gallery and re-search the tracks in flight against it.

        Labels are positions in the new customer list, so old hits cannot be kept; the
        samples can, and a customer enrolled (or erased) mid-visit counts at once.
        """
        self.index = TemplateIndex(*customer_rows(gm.labels, gm.matrix, self.cfg.aggregation))
        self.customer_ids = list(gm.customer_ids)
        for track in [*self._open.values(), *(w.track for w in self._watched.values())]:
            samples = {t: (v, q) for t, (v, q, _) in track.frames.items()}
            track.frames.clear()
            self._add(track, samples)

    def _add(self, track: _OpenTrack, samples: dict[float, tuple[np.ndarray, float]]) -> None:
        if samples:
            hits = self.index.search(np.stack([v for v, _ in samples.values()]))
            for (t, (v, q)), hit in zip(samples.items(), hits, strict=True):
                track.frames[t] = (v, q, hit)

    def still_present(self, track_id: str) -> str | None:
        """The customer of an already matched track whose camera still sees it, else None.

        Later messages of a decided track do not vote again, but they say the customer is
        still at the door: the visit's "last seen" moves with them, so the cooldown runs from
        when the person was last seen, not from when they were recognised. A walker whose face
        is lost for a moment and found again as a new track then joins the same visit.
        """
        return self._matched.get(track_id)

    def _fresh(self, track: _OpenTrack, msg: FaceTrack, now: float) -> None:
        track.last_message_at = now
        # An update repeats the best samples it already sent; count each capture once.
        self._add(
            track,
            {s.t: (s.vector, s.quality) for s in msg.samples if s.t not in track.frames},
        )

    def observe(self, msg: FaceTrack, now: float) -> TrackOutcome | None:
        watched = self._watched.get(msg.track_id)
        if watched is not None:
            self._fresh(watched.track, msg, now)
            self._check_watched(msg.track_id, watched, ended=msg.final)
            return None
        if msg.track_id in self._decided:
            return None
        track = self._open.get(msg.track_id)
        if track is None:
            track = _OpenTrack(msg.camera_id, msg.first_usable_at, now)
            self._open[msg.track_id] = track
        self._fresh(track, msg, now)
        verdict = decide_track(self.policy, self.confident, track.hits(), finished=msg.final)
        if verdict.decision.status == "pending":
            return None
        return self._close(msg.track_id, track, verdict, now, ended=msg.final)

    def _check_watched(self, track_id: str, watched: _Watched, *, ended: bool) -> None:
        """Later frames of a single-frame match: never a second alert, never a new customer."""
        frames = watched.track.hits()
        others = {
            self.customer_ids[label]
            for hit, _ in frames
            if (label := self.policy.decide_one(hit)) is not None
            and self.customer_ids[label] != watched.customer_id
        }
        if others:
            self.counters["single_frame_contradicted"] += 1
            log.warning(
                "track %s: alerted on one frame as %s, later frames accepted as %s; "
                "the alert stands (staff can answer 'Not this person')",
                track_id,
                watched.customer_id,
                ", ".join(sorted(others)),
            )
        else:
            agreed = decide_track(self.policy, None, frames, finished=ended).decision
            if agreed.status == "match":
                self.counters["single_frame_confirmed"] += 1
            elif ended:
                self.counters["single_frame_unconfirmed"] += 1
            else:
                return  # keep watching
        self._watched.pop(track_id, None)

    def sweep(self, now: float) -> list[TrackOutcome]:
        """Close tracks whose edge went quiet (lost final message, camera died)."""
        stale = [
            tid
            for tid, t in self._open.items()
            if now - t.last_message_at > self.cfg.track_timeout_s
        ]
        out = []
        for tid in stale:
            track = self._open[tid]
            verdict = decide_track(self.policy, self.confident, track.hits(), finished=True)
            out.append(self._close(tid, track, verdict, now, ended=True))
        for tid, w in list(self._watched.items()):
            if now - w.track.last_message_at > self.cfg.track_timeout_s:
                self._check_watched(tid, w, ended=True)
        cutoff = now - 3600
        self._decided = {k: v for k, v in self._decided.items() if v >= cutoff}
        self._matched = {k: v for k, v in self._matched.items() if k in self._decided}
        return out

    def _close(
        self, track_id: str, track: _OpenTrack, verdict: TrackDecision, now: float, *, ended: bool
    ) -> TrackOutcome:
        decision = verdict.decision
        self._open.pop(track_id, None)
        self._decided[track_id] = now
        customer = (
            self.customer_ids[decision.label]
            if decision.status == "match" and decision.label is not None
            else None
        )
        if customer is not None:
            self._matched[track_id] = customer
            self.counters[f"match_{verdict.rule}"] += 1
            log.info(
                "track %s: %s by the %s rule after %d frame(s)",
                track_id,
                customer,
                verdict.rule,
                len(track.frames),
            )
            if verdict.rule == "single_frame" and not ended:
                self._watched[track_id] = _Watched(track, customer)
        return TrackOutcome(
            camera_id=track.camera_id,
            track_id=track_id,
            customer_id=customer,
            first_usable_at=track.first_usable_at,
            best_distance=decision.best_distance,
            votes=decision.votes,
            rule=verdict.rule,
            frames=len(track.frames),
        )
