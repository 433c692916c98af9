"""Turns face-track messages into at most one decision per track: a customer, or unknown.

Keeps one quality-weighted vote per (camera, track); the edge sends a track's first few good
embeddings early and an improved set later, so a decision usually comes from the first message
and a hard case waits for more evidence. A track that goes quiet is closed as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hub.faces.gallery import GalleryMatrix
from hub.faces.matcher import Decision, OpenSetPolicy, TemplateIndex, TrackVote
from storesense.config import RecognitionConfig
from storesense.messages import FaceTrack


@dataclass(frozen=True)
class TrackOutcome:
    camera_id: str
    track_id: str
    customer_id: str | None  # None: an unknown visitor
    first_usable_at: float
    best_distance: float | None
    votes: int


@dataclass
class _OpenTrack:
    vote: TrackVote
    camera_id: str
    first_usable_at: float
    last_message_at: float
    samples: dict[float, tuple[np.ndarray, float]] = field(default_factory=dict)  # t -> (v, q)


class Recognizer:
    def __init__(self, cfg: RecognitionConfig) -> None:
        self.cfg = cfg
        self.policy = OpenSetPolicy(
            threshold=cfg.threshold,
            margin=cfg.margin,
            min_votes=cfg.min_votes,
            min_vote_share=cfg.min_vote_share,
        )
        self.index = TemplateIndex(np.empty(0, np.int64), np.empty((0, 128), np.float32))
        self.customer_ids: list[str] = []
        self._open: dict[str, _OpenTrack] = {}
        self._decided: dict[str, float] = {}  # track_id -> decided at (late updates ignored)
        self._matched: dict[str, str] = {}  # decided track_id -> its customer

    def load(self, gm: GalleryMatrix) -> None:
        """Swap in a new gallery and re-vote the tracks in flight against it.

        Labels are positions in the new customer list, so old votes cannot be kept; the
        samples can, and a customer enrolled (or erased) mid-visit counts at once.
        """
        self.index = TemplateIndex(gm.labels, gm.matrix)
        self.customer_ids = list(gm.customer_ids)
        for track in self._open.values():
            track.vote = TrackVote(self.policy)
            self._vote(track, list(track.samples.values()))

    def _vote(self, track: _OpenTrack, samples: list[tuple[np.ndarray, float]]) -> None:
        if samples:
            hits = self.index.search(np.stack([v for v, _ in samples]))
            for (_, quality), hit in zip(samples, hits, strict=True):
                track.vote.add(hit, quality)

    def still_present(self, track_id: str) -> str | None:
        """The customer of an already matched track whose camera still sees it, else None.

        Later messages of a decided track do not vote again, but they say the customer is
        still at the door: the visit's "last seen" moves with them, so the cooldown runs from
        when the person was last seen, not from when they were recognised. A walker whose face
        is lost for a moment and found again as a new track then joins the same visit.
        """
        return self._matched.get(track_id)

    def observe(self, msg: FaceTrack, now: float) -> TrackOutcome | None:
        if msg.track_id in self._decided:
            return None
        track = self._open.get(msg.track_id)
        if track is None:
            track = _OpenTrack(TrackVote(self.policy), msg.camera_id, msg.first_usable_at, now)
            self._open[msg.track_id] = track
        track.last_message_at = now
        # An update repeats the best samples it already sent; vote each capture once.
        fresh = [s for s in msg.samples if s.t not in track.samples]
        for s in fresh:
            track.samples[s.t] = (s.vector, s.quality)
        self._vote(track, [(s.vector, s.quality) for s in fresh])
        decision = track.vote.decide(finished=msg.final)
        if decision.status == "pending":
            return None
        return self._close(msg.track_id, track, decision, now)

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
            out.append(self._close(tid, track, track.vote.decide(finished=True), now))
        cutoff = now - 3600
        self._decided = {k: v for k, v in self._decided.items() if v >= cutoff}
        self._matched = {k: v for k, v in self._matched.items() if k in self._decided}
        return out

    def _close(
        self, track_id: str, track: _OpenTrack, decision: Decision, now: float
    ) -> TrackOutcome:
        self._open.pop(track_id, None)
        self._decided[track_id] = now
        customer = (
            self.customer_ids[decision.label]
            if decision.status == "match" and decision.label is not None
            else None
        )
        if customer is not None:
            self._matched[track_id] = customer
        return TrackOutcome(
            camera_id=track.camera_id,
            track_id=track_id,
            customer_id=customer,
            first_usable_at=track.first_usable_at,
            best_distance=decision.best_distance,
            votes=decision.votes,
        )
