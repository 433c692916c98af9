"""FaceTracker on synthetic observations: crossing people, lost/re-found faces, publishing."""

from __future__ import annotations

import numpy as np
import pytest

from edge.face_tracker import FaceTracker, Track
from edge.face_types import EMBEDDING_DIM, DetectedFace, FaceObservation, FaceQuality

RNG = np.random.default_rng(7)


def identity() -> np.ndarray:
    """A random unit-ish 128-d vector; two of these are ~1.4 apart (Euclidean)."""
    v = RNG.normal(size=EMBEDDING_DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def jitter(e: np.ndarray, s: float = 0.02) -> np.ndarray:
    return (e + RNG.normal(scale=s, size=e.shape)).astype(np.float32)


def obs(
    x: float,
    y: float = 100.0,
    *,
    emb: np.ndarray | None = None,
    q: float = 0.8,
    passed: bool = True,
    size: float = 60.0,
) -> FaceObservation:
    quality = FaceQuality(score=q, face_px=30.0, sharpness=100.0, frontalness=0.9, passed=passed)
    return FaceObservation(
        face=DetectedFace(box=(x, y, x + size, y + size), score=0.9),
        landmarks=np.zeros((5, 2), np.float32),
        quality=quality,
        embedding=None if emb is None else jitter(emb),
    )


def test_single_walker_is_one_track_with_uuid() -> None:
    tr = FaceTracker()
    a = identity()
    ids = {u.track.track_id for i in range(20) for u in tr.update(i / 8, [obs(10 + 8 * i, emb=a)])}
    assert len(ids) == 1
    (tid,) = ids
    assert len(tid) == 32 and int(tid, 16) >= 0
    assert FaceTracker().update(0, [obs(0, emb=a)])[0].track.track_id != tid


def test_two_people_crossing_keep_their_identity() -> None:
    """Boxes overlap heavily mid-way; the embedding keeps the two apart."""
    tr = FaceTracker()
    a, b = identity(), identity()
    track_of: dict[str, set[str]] = {"a": set(), "b": set()}
    for i in range(25):
        t = i / 8
        xa, xb = 20 + 16 * i, 404 - 16 * i  # they meet around i = 12
        ups = tr.update(t, [obs(xb, emb=b), obs(xa, emb=a)])  # order must not matter
        track_of["b"].add(ups[0].track.track_id)
        track_of["a"].add(ups[1].track.track_id)
    assert len(track_of["a"]) == 1 and len(track_of["b"]) == 1
    assert track_of["a"] != track_of["b"]
    assert len(tr.tracks) == 2


def test_overlap_alone_cannot_join_different_people() -> None:
    tr = FaceTracker()
    first = tr.update(0.0, [obs(100, emb=identity())])[0].track
    second = tr.update(0.1, [obs(102, emb=identity())])[0]  # same place, another face
    assert second.is_new and second.track is not first


def test_without_embeddings_iou_links_and_gap_splits() -> None:
    tr = FaceTracker(iou_min=0.3)
    t1 = tr.update(0.0, [obs(100, passed=False)])[0].track
    assert tr.update(0.1, [obs(110, passed=False)])[0].track is t1
    assert tr.update(0.2, [obs(400, passed=False)])[0].is_new  # no overlap, no embedding
    assert t1.first_usable_t is None and t1.n_usable == 0 and t1.n_frames == 2


def test_lost_and_refound_within_max_age() -> None:
    tr = FaceTracker(max_age_s=1.0)
    a = identity()
    for i in range(5):
        track = tr.update(i * 0.1, [obs(100 + 5 * i, emb=a)])[0].track
    tr.update(0.5, [])
    tr.update(0.9, [])  # occluded for 0.6 s
    # re-found a little further on (boxes no longer overlap) — the embedding links it
    up = tr.update(1.0, [obs(190, emb=a)])[0]
    assert not up.is_new and up.track is track
    assert tr.finished(1.5) == []
    # after max_age it would be a new visitor
    up2 = tr.update(2.2, [obs(190, emb=a)])[0]
    assert up2.is_new


def test_first_usable_time_and_best_k_order() -> None:
    tr = FaceTracker(k=3)
    a = identity()
    tr.update(0.0, [obs(100, passed=False)])  # seen, but gated out
    scores = [0.5, 0.9, 0.3, 0.7, 0.95, 0.6]
    for i, q in enumerate(scores, start=1):
        track = tr.update(i * 0.1, [obs(100 + i, emb=a, q=q)])[0].track
    assert track.first_seen_t == 0.0
    assert track.first_usable_t == pytest.approx(0.1)
    assert track.n_frames == 7 and track.n_usable == 6
    assert [round(s, 2) for s, _, _ in track.best] == [0.95, 0.9, 0.7]
    assert [t for _, _, t in track.best] == pytest.approx([0.5, 0.2, 0.4])
    assert all(e.shape == (EMBEDDING_DIM,) for _, e, _ in track.best)


def test_first_publication_after_min_embeddings_then_no_spam() -> None:
    tr = FaceTracker(min_embeddings=2, update_after_s=3.0, k=3)
    a = identity()
    messages: list[tuple[float, bool, int]] = []
    for i in range(40):  # 5 s in view at 8 fps, quality slowly improving
        t = i / 8
        tr.update(t, [obs(100 + i, emb=a, q=0.5 + i / 100)])
        messages += [(t, final, len(track.best)) for track, final in tr.due_for_publication(t)]
    # first message on the 2nd usable frame, one improved update after 3 s, nothing else
    assert [m[0] for m in messages] == pytest.approx([1 / 8, 1 / 8 + 3.0])
    assert [m[1] for m in messages] == [False, False]
    # the visitor leaves: exactly one final message after max_age
    t_end = 39 / 8
    assert tr.due_for_publication(t_end + 0.5) == []
    done = tr.due_for_publication(t_end + 1.1)
    assert len(done) == 1 and done[0][1] is True
    assert done[0][0].publications == 3
    assert tr.due_for_publication(t_end + 5) == [] and not tr.active()


def test_pending_publication_returns_only_unpublished_best() -> None:
    track = FaceTracker(k=2).update(0.0, [obs(100, emb=identity(), q=0.6)])[0].track
    a = track.embeddings()[0]
    assert not track.ready_to_publish(min_embeddings=2)
    track.add(0.1, obs(101, emb=a, q=0.7))
    assert track.ready_to_publish(min_embeddings=2)
    sent = track.mark_published(0.1)
    assert [s.t for s in sent] == [0.1, 0.0]
    assert track.pending_publication() == []
    track.add(0.2, obs(102, emb=a, q=0.65))  # better than the worst kept: enters best-2
    assert [s.t for s in track.pending_publication()] == [0.2]
    assert not track.ready_to_publish(t=1.0)  # too soon for the single update
    assert track.ready_to_publish(t=3.2)


def test_short_track_published_once_at_end() -> None:
    tr = FaceTracker(min_embeddings=3)
    a = identity()
    tr.update(0.0, [obs(100, emb=a)])
    tr.update(0.1, [obs(104, emb=a)])
    assert tr.due_for_publication(0.1) == []  # only 2 of 3 embeddings so far
    [(track, final)] = tr.due_for_publication(1.2)
    assert final and track.publications == 1 and len(track.best) == 2


def test_finished_tracks_and_unusable_tracks_not_published() -> None:
    tr = FaceTracker(max_age_s=1.0)
    tr.update(0.0, [obs(100, passed=False), obs(400, emb=identity())])
    tr.update(0.5, [obs(400, emb=tr.tracks[1].embeddings()[0])])
    assert len(tr.finished(1.2)) == 1  # the gated-out face; the other was seen at 0.5
    assert tr.active()
    ended = tr.finished(1.6)
    assert len(ended) == 1 and isinstance(ended[0], Track) and not tr.active()
    tr.update(2.0, [obs(100, passed=False)])
    assert tr.due_for_publication(0.0, flush_all=True) == []  # nothing the hub could use
    assert not tr.active()
