"""One visitor walking through the door = one face track = a handful of MQTT messages.

Recognising every frame separately would spam the hub and let one bad frame decide; instead the
tracker links detections over time and keeps only the ``k`` best-quality embeddings of each track,
so the hub votes over a few good views. Association uses box overlap (IoU against a
constant-velocity prediction) and, when both sides have one, embedding distance — the embedding
is what keeps two people apart when their boxes cross. The global assignment is solved by
``scipy.optimize.linear_sum_assignment``.

Publication policy (per track, see :meth:`Track.ready_to_publish`), at most four messages
however long the visitor stays in view, never one per frame:

1. the *first* message as soon as ``first_embeddings`` usable embeddings exist (default 1: the
   first usable face frame is sent at once; the hub may alert on it alone when it is very
   confident, ``RecognitionConfig.single_frame_*``), or when the track ends, if sooner;
2. the *agreement* message as soon as ``min_embeddings`` (2) exist, without waiting, so a
   borderline first frame costs the greeting one more usable frame and no more (skipped when
   the first message already had that many, e.g. ``first_embeddings=2``, the old policy);
3. at most one *improved* update while the visitor is still in view (only if the best set
   changed, and not before ``update_after_s`` since the last message);
4. one ``final`` message when the track ends, so the hub decides at once instead of waiting
   for its timeout.

Why the first frame goes alone: measured on the door clip, the second usable sample comes
0.5–1.5 s after the first (frames in between fail the quality gate), and that wait was almost
all of the door → phone latency (docs/benchmarks.md, "Door → notification").

Lazy embedding (why the update is split): the ResNet embedding costs ~55 ms per face on a
2-core x86 and is the dominant cost of the edge, yet a track keeps only its ``k`` best samples.
So the agent uses :meth:`FaceTracker.update_lazily` (or the three steps it is made of):
:meth:`FaceTracker.associate` links not-yet-embedded observations to tracks by IoU and motion;
:meth:`FaceTracker.wants_embedding` says whether a candidate of that quality would enter the
track's best-k by ``embed_margin`` (always yes while the track has fewer than
``min_embeddings`` samples, so the greeting is not delayed), and enforces a per-track budget of
one embedding per ``embed_interval_s`` after that; :meth:`FaceTracker.add_embedded` records the
embedded observation. Association then rests on IoU + constant-velocity motion; embeddings
still veto or link when present (e.g. a face re-found after an occlusion: it starts a new
track, so it is embedded anyway, and that embedding is matched against the lost tracks first).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.boxes import iou_matrix
from edge.entrance.face_types import FaceObservation, FaceQuality
from storesense.face_models import DEFAULT_MODEL, SAME_PERSON_RADIUS

_INVALID = 1e6  # cost of a forbidden pairing; kept finite so the solver always succeeds
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Sample:
    """One usable face capture kept by a track; ``t`` doubles as its id for hub de-duplication."""

    quality: FaceQuality
    embedding: np.ndarray
    t: float

    @property
    def score(self) -> float:
        return self.quality.score


def _usable(obs: FaceObservation) -> bool:
    return obs.quality.passed and obs.embedding is not None


@dataclass(eq=False)
class Track:
    """A face followed over frames. ``best`` holds ≤ k usable captures, best quality first."""

    first_seen_t: float
    box: Box
    k: int = 3
    track_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # unique across restarts
    first_usable_t: float | None = None
    last_seen_t: float = 0.0
    n_frames: int = 0
    n_usable: int = 0
    publications: int = 0
    final_published: bool = False
    last_published_t: float | None = None
    most_sent: int = 0  # the largest number of samples one published message carried
    last_embedded_t: float | None = None  # when the last sample was added (embedding budget)
    _samples: list[Sample] = field(default_factory=list, repr=False)
    _published: set[float] = field(default_factory=set, repr=False)
    _velocity: np.ndarray = field(default_factory=lambda: np.zeros(4), repr=False)
    _last_embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def best(self) -> list[tuple[float, np.ndarray, float]]:
        """(quality_score, embedding, t), best first — the form the brief's consumers expect."""
        return [(s.score, s.embedding, s.t) for s in self._samples]

    def best_samples(self) -> list[Sample]:
        return list(self._samples)

    def predicted_box(self, t: float) -> Box:
        """Constant-velocity guess, so a fast walker at 8 fps still overlaps his last box."""
        dt = max(0.0, t - self.last_seen_t)
        b = np.asarray(self.box) + self._velocity * dt
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

    def embeddings(self) -> list[np.ndarray]:
        embs = [s.embedding for s in self._samples]
        if self._last_embedding is not None:
            embs.append(self._last_embedding)
        return embs

    def add(self, t: float, obs: FaceObservation) -> bool:
        """Record an observation; returns True when it entered the best-k set."""
        self.observe(t, obs)
        return self.add_sample(t, obs)

    def observe(self, t: float, obs: FaceObservation) -> None:
        """Move the track to ``obs`` (box, velocity, last seen); embedded or not.

        Every associated observation must pass through here, whether or not it is embedded
        later, or the motion model that associates the un-embedded ones goes stale.
        """
        if self.n_frames:
            dt = t - self.last_seen_t
            if dt > 0:
                v = (np.asarray(obs.face.box) - np.asarray(self.box)) / dt
                self._velocity = 0.5 * self._velocity + 0.5 * v
        self.box = obs.face.box
        self.last_seen_t = t
        self.n_frames += 1

    def add_sample(self, t: float, obs: FaceObservation) -> bool:
        """Offer an embedded observation (already ``observe``d at ``t``) to the best-k set.

        Returns True when it entered the set; False for an unusable (gated-out or
        un-embedded) observation.
        """
        if not _usable(obs):
            return False
        assert obs.embedding is not None
        emb = np.asarray(obs.embedding, dtype=np.float32).copy()
        self._last_embedding = emb
        self.n_usable += 1
        self.last_embedded_t = t
        if self.first_usable_t is None:
            self.first_usable_t = t
        self._samples.append(Sample(obs.quality, emb, t))
        self._samples.sort(key=lambda s: (-s.score, s.t))
        dropped = self._samples[self.k :]
        del self._samples[self.k :]
        return not any(s.t == t for s in dropped)

    def wants_embedding(
        self,
        score: float,
        t: float,
        *,
        min_embeddings: int = 2,
        margin: float = 0.02,
        min_interval_s: float = 0.25,
    ) -> bool:
        """Whether a gate-passed candidate of quality ``score`` seen at ``t`` is worth embedding.

        Yes while the track has fewer than ``min_embeddings`` samples (the first message
        waits for them, so no budget applies). After that at most one embedding per
        ``min_interval_s`` (consecutive frames are near duplicates, so a burst of "slightly
        better" faces would only re-spend the ResNet), and only if the track has room
        (fewer than ``k``) or ``score`` beats the k-th best by more than ``margin`` (noise in
        the score must not buy a 55 ms embedding that changes nothing).
        """
        if len(self._samples) < min_embeddings:
            return True
        if self.last_embedded_t is not None and t - self.last_embedded_t < min_interval_s:
            return False
        if len(self._samples) < self.k:
            return True
        return score > self._samples[-1].score + margin

    # ------------------------------------------------------------- publication
    def pending_publication(self) -> list[Sample]:
        """The best samples the hub has not been sent yet (empty when nothing improved)."""
        return [s for s in self._samples if s.t not in self._published]

    def ready_to_publish(
        self,
        min_embeddings: int = 2,
        *,
        t: float | None = None,
        final: bool = False,
        update_after_s: float = 3.0,
        first_embeddings: int | None = None,
    ) -> bool:
        """Whether a message is due now under the per-track policy in the module docstring.

        ``first_embeddings`` None means ``min_embeddings`` (one early message, the policy
        before single-frame alerts); the tracker passes its own setting.
        """
        min_embeddings = min(min_embeddings, self.k)  # a best-1 track can never hold two
        first = (
            min_embeddings if first_embeddings is None else min(first_embeddings, min_embeddings)
        )
        if self.final_published or not self._samples:
            return False
        n = len(self._samples)
        if self.publications == 0:
            return final or n >= first
        if final:
            return True
        if self.most_sent < min_embeddings:  # the early messages so far had too few to agree
            return n >= min_embeddings and bool(self.pending_publication())
        early = 2 if first < min_embeddings else 1  # messages before the one improvement
        if self.publications > early or not self.pending_publication():
            return False
        since = None if t is None or self.last_published_t is None else t - self.last_published_t
        return since is not None and since >= update_after_s

    def mark_published(self, t: float, *, final: bool = False) -> list[Sample]:
        """Record that the current best set was sent; returns the samples that were new."""
        new = self.pending_publication()
        self._published.update(s.t for s in self._samples)
        self.most_sent = max(self.most_sent, len(self._samples))
        self.publications += 1
        self.last_published_t = t
        self.final_published = self.final_published or final
        return new


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """What one observation did to the tracks: which track, new or continued, kept as best."""

    track: Track
    observation: FaceObservation
    is_new: bool
    usable: bool
    kept: bool  # entered the track's best-k set


class FaceTracker:
    """Greedy-free, global frame-to-frame association of face observations into tracks.

    An ``edge.role.Tracker`` (``update`` / ``active``), like the floor's ``PersonTracker``.

    ``max_jump`` (in face widths) bounds how far a face may move between sightings when the
    association rests on the embedding rather than on overlap (a face lost behind a shoulder and
    re-found); pairs with both embeddings further apart than ``max_embed_dist`` (Euclidean, in
    the model's own scale: ``storesense.face_models.SAME_PERSON_RADIUS``; 0.6 is dlib's) are
    never joined, whatever the overlap — that is what separates two people crossing.
    """

    def __init__(
        self,
        iou_min: float = 0.3,
        max_age_s: float = 1.0,
        max_embed_dist: float = SAME_PERSON_RADIUS[DEFAULT_MODEL],
        *,
        k: int = 3,
        first_embeddings: int = 1,
        min_embeddings: int = 2,
        update_after_s: float = 3.0,
        max_jump: float = 2.0,
        embed_weight: float = 0.5,
        embed_margin: float = 0.02,
        embed_interval_s: float = 0.25,
    ) -> None:
        """
        ``first_embeddings`` usable embeddings make the first message (1: at once);
        ``min_embeddings`` make the agreement message that follows without delay (see the
        module docstring; ``first_embeddings == min_embeddings`` is the old one-early-message
        policy, kept for comparison in bench/door_to_notification.py).

        ``embed_margin`` and ``embed_interval_s`` only matter on the lazy path: a candidate
        is embedded when its quality beats the track's k-th best by more than the margin,
        and at most once per interval after the first ``min_embeddings`` (see
        :meth:`Track.wants_embedding`).
        """
        self.embed_margin = embed_margin
        self.embed_interval_s = embed_interval_s
        self.iou_min = iou_min
        self.max_age_s = max_age_s
        self.max_embed_dist = max_embed_dist
        if first_embeddings < 1 or min_embeddings < 1:
            raise ValueError("first_embeddings and min_embeddings must be >= 1")
        self.k = k
        self.first_embeddings = first_embeddings
        self.min_embeddings = min_embeddings
        self.update_after_s = update_after_s
        self.max_jump = max_jump
        self.embed_weight = embed_weight
        self._tracks: list[Track] = []

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def active(self) -> bool:
        """True while any track is alive, so callers keep analysing still-looking frames."""
        return bool(self._tracks)

    def _cost(self, track: Track, obs: FaceObservation, t: float, iou: float) -> float:
        """Cost of joining ``obs`` to ``track``; ``iou`` is with the track's predicted box."""
        pred = track.predicted_box(t)
        embs = track.embeddings()
        if embs and obs.embedding is not None:
            d = min(float(np.linalg.norm(e - obs.embedding)) for e in embs)
            if d > self.max_embed_dist:
                return _INVALID
            if iou < self.iou_min:
                width = max(pred[2] - pred[0], obs.face.width, 1e-6)
                dx = (pred[0] + pred[2] - obs.face.box[0] - obs.face.box[2]) / 2
                dy = (pred[1] + pred[3] - obs.face.box[1] - obs.face.box[3]) / 2
                if np.hypot(dx, dy) / width > self.max_jump:
                    return _INVALID
            w = self.embed_weight
            return (1 - w) * (1 - iou) + w * d / self.max_embed_dist
        return 1 - iou if iou >= self.iou_min else _INVALID

    def _match(
        self, t: float, tracks: list[Track], observations: list[FaceObservation]
    ) -> dict[int, Track]:
        """Globally optimal observation index → track pairs whose cost is allowed."""
        matches: dict[int, Track] = {}
        if tracks and observations:
            preds = np.array([tr.predicted_box(t) for tr in tracks])
            ious = iou_matrix(preds, np.array([ob.face.box for ob in observations]))
            cost = np.array(
                [
                    [self._cost(tr, ob, t, float(ious[r, c])) for c, ob in enumerate(observations)]
                    for r, tr in enumerate(tracks)
                ]
            )
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < _INVALID:
                    matches[int(c)] = tracks[int(r)]
        return matches

    def _live(self, t: float) -> list[Track]:
        return [tr for tr in self._tracks if t - tr.last_seen_t <= self.max_age_s]

    def _attach(
        self, t: float, observations: list[FaceObservation], matches: dict[int, Track]
    ) -> list[TrackUpdate]:
        """Move matched tracks, start new ones; no samples are added here."""
        out: list[TrackUpdate] = []
        for j, obs in enumerate(observations):
            track = matches.get(j)
            is_new = track is None
            if track is None:
                track = Track(first_seen_t=t, box=obs.face.box, k=self.k)
                self._tracks.append(track)
            track.observe(t, obs)
            out.append(TrackUpdate(track, obs, is_new, _usable(obs), False))
        return out

    def update(self, t: float, observations: list[FaceObservation]) -> list[TrackUpdate]:
        """Associate this frame's observations (time ``t``, monotonic s) with live tracks.

        The eager path: every usable (embedded) observation is offered to its track's best-k.
        """
        ups = self.associate(t, observations)
        return [replace(u, kept=u.track.add_sample(t, u.observation)) for u in ups]

    def associate(self, t: float, observations: list[FaceObservation]) -> list[TrackUpdate]:
        """Step (a) of the lazy path: link observations to tracks and move the tracks.

        Works with or without embeddings (IoU against the constant-velocity prediction; the
        embedding distance joins in where both sides have one). Unmatched observations start
        new tracks. No sample is added: follow with ``wants_embedding`` / ``add_embedded``
        (``kept`` is False in the returned updates).
        """
        return self._attach(t, observations, self._match(t, self._live(t), observations))

    def wants_embedding(self, track: Track, obs: FaceObservation, t: float) -> bool:
        """Step (b): is ``obs`` (gate-passed, associated to ``track``) worth embedding now?"""
        return obs.quality.passed and track.wants_embedding(
            obs.quality.score,
            t,
            min_embeddings=self.min_embeddings,
            margin=self.embed_margin,
            min_interval_s=self.embed_interval_s,
        )

    def add_embedded(self, t: float, track: Track, obs: FaceObservation) -> bool:
        """Step (c): record the embedded ``obs``; True when it entered the best-k set."""
        return track.add_sample(t, obs)

    def update_lazily(
        self,
        t: float,
        observations: list[FaceObservation],
        embed: Callable[[FaceObservation], FaceObservation],
    ) -> list[TrackUpdate]:
        """The edge agent's per-frame step: associate, embed only what tracks want, add.

        ``embed`` is ``FacePipeline.embed``. Observations that start a new track are always
        embedded (an empty track wants its first sample), so before creating a new track
        their embedding is first matched against live tracks left unmatched in this frame —
        a face re-found after an occlusion, too far from its last box for IoU, rejoins its
        track exactly as on the eager path, at no extra ResNet cost.
        """
        live = self._live(t)
        matches = self._match(t, live, observations)
        observations = list(observations)
        spare = [tr for tr in live if tr not in matches.values() and tr.embeddings()]
        orphans = [j for j in range(len(observations)) if j not in matches]
        if spare and any(observations[j].quality.passed for j in orphans):
            for j in orphans:
                if observations[j].quality.passed:
                    observations[j] = embed(observations[j])
            late = self._match(t, spare, [observations[j] for j in orphans])
            matches.update({orphans[i]: tr for i, tr in late.items()})
        out: list[TrackUpdate] = []
        for up in self._attach(t, observations, matches):
            obs, kept = up.observation, False
            if obs.embedding is None and self.wants_embedding(up.track, obs, t):
                obs = embed(obs)
            if obs.embedding is not None:
                kept = self.add_embedded(t, up.track, obs)
            out.append(replace(up, observation=obs, usable=_usable(obs), kept=kept))
        return out

    def finished(self, t: float) -> list[Track]:
        """Remove and return tracks not seen for more than ``max_age_s`` (the visitor left)."""
        done = [tr for tr in self._tracks if t - tr.last_seen_t > self.max_age_s]
        self._tracks = [tr for tr in self._tracks if tr not in done]
        return done

    def due_for_publication(self, t: float, *, flush_all: bool = False) -> list[tuple[Track, bool]]:
        """(track, final) pairs to publish now, already marked as published.

        ``flush_all`` ends every track (shutdown, end of file). Tracks that never produced a
        usable embedding are dropped silently: the hub could not recognise them anyway.
        """
        ended = list(self._tracks) if flush_all else self.finished(t)
        if flush_all:
            self._tracks = []
        due: list[tuple[Track, bool]] = []
        for tr in self._tracks:
            if tr.ready_to_publish(
                self.min_embeddings,
                t=t,
                update_after_s=self.update_after_s,
                first_embeddings=self.first_embeddings,
            ):
                tr.mark_published(t)
                due.append((tr, False))
        for tr in ended:
            if tr.ready_to_publish(self.min_embeddings, t=t, final=True):
                tr.mark_published(t, final=True)
                due.append((tr, True))
        return due
