"""FaceTracker on synthetic observations: crossing people, lost/re-found faces, publishing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from edge.entrance.face_tracker import FaceTracker, Track
from edge.entrance.face_types import EMBEDDING_DIM, DetectedFace, FaceObservation, FaceQuality

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


def test_first_usable_embedding_published_at_once_then_agreement_then_no_spam() -> None:
    """The first usable frame goes alone and at once; the 2nd follows without delay."""
    tr = FaceTracker(min_embeddings=2, update_after_s=3.0, k=3)
    a = identity()
    messages: list[tuple[float, bool, int]] = []
    for i in range(40):  # 5 s in view at 8 fps, quality slowly improving
        t = i / 8
        tr.update(t, [obs(100 + i, emb=a, q=0.5 + i / 100)])
        messages += [(t, final, len(track.best)) for track, final in tr.due_for_publication(t)]
    # first message on the 1st usable frame (1 sample), the agreement pair on the 2nd,
    # one improved update 3 s after that, nothing else while in view
    assert [m[0] for m in messages] == pytest.approx([0.0, 1 / 8, 1 / 8 + 3.0])
    assert [m[2] for m in messages] == [1, 2, 3]
    assert [m[1] for m in messages] == [False, False, False]
    # the visitor leaves: exactly one final message after max_age
    t_end = 39 / 8
    assert tr.due_for_publication(t_end + 0.5) == []
    done = tr.due_for_publication(t_end + 1.1)
    assert len(done) == 1 and done[0][1] is True
    assert done[0][0].publications == 4  # bounded: first, agreement, improvement, final
    assert tr.due_for_publication(t_end + 5) == [] and not tr.active()


def test_old_policy_first_publication_after_min_embeddings_then_no_spam() -> None:
    """``first_embeddings == min_embeddings`` is the policy before single-frame alerts."""
    tr = FaceTracker(first_embeddings=2, min_embeddings=2, update_after_s=3.0, k=3)
    a = identity()
    messages: list[tuple[float, bool, int]] = []
    for i in range(40):
        t = i / 8
        tr.update(t, [obs(100 + i, emb=a, q=0.5 + i / 100)])
        messages += [(t, final, len(track.best)) for track, final in tr.due_for_publication(t)]
    assert [m[0] for m in messages] == pytest.approx([1 / 8, 1 / 8 + 3.0])
    assert [m[2] for m in messages] == [2, 3]
    done = tr.due_for_publication(39 / 8 + 1.1)
    assert len(done) == 1 and done[0][1] is True and done[0][0].publications == 3


def test_agreement_message_waits_for_a_new_sample_not_for_time() -> None:
    """Gated-out frames between the 1st and 2nd usable one send nothing; the 2nd goes at once."""
    tr = FaceTracker(min_embeddings=2, update_after_s=3.0, k=3)
    a = identity()
    tr.update(0.0, [obs(100, emb=a)])
    assert [len(t.best) for t, _ in tr.due_for_publication(0.0)] == [1]
    for i in range(1, 6):  # 5 frames that fail the gate: the track moves, no message
        tr.update(i / 8, [obs(100 + i, passed=False)])
        assert tr.due_for_publication(i / 8) == []
    tr.update(6 / 8, [obs(106, emb=a)])
    [(track, final)] = tr.due_for_publication(6 / 8)
    assert not final and len(track.best) == 2 and track.publications == 2


def test_best_one_track_publishes_its_first_sample_at_once() -> None:
    """k=1 can never hold min_embeddings=2 samples: the first message must not wait for it."""
    tr = FaceTracker(k=1, first_embeddings=2, min_embeddings=2)
    tr.update(0.0, [obs(100, emb=identity())])
    [(track, final)] = tr.due_for_publication(0.0)
    assert not final and len(track.best) == 1


def test_bad_publication_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        FaceTracker(first_embeddings=0)


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
    tr = FaceTracker(first_embeddings=3, min_embeddings=3)
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


# ---------------------------------------------------------------- lazy embedding (agent path)


def lazy_embed(
    ident_of: Callable[[FaceObservation], np.ndarray],
) -> tuple[Callable[[FaceObservation], FaceObservation], list[FaceObservation]]:
    """A stand-in for ``FacePipeline.embed`` that records every (expensive) call."""
    calls: list[FaceObservation] = []

    def embed(o: FaceObservation) -> FaceObservation:
        assert o.embedding is None and o.quality.passed, "only gate-passed faces are embedded"
        calls.append(o)
        return replace(o, embedding=jitter(ident_of(o)))

    return embed, calls


def test_associate_without_embeddings_links_by_iou_and_adds_no_sample() -> None:
    tr = FaceTracker()
    first = tr.associate(0.0, [obs(100)])[0]
    assert first.is_new and not first.usable and not first.kept
    nxt = tr.associate(0.1, [obs(108)])[0]
    assert nxt.track is first.track and not nxt.is_new
    assert first.track.n_frames == 2 and first.track.best_samples() == []
    assert first.track.box == (108, 100, 168, 160)  # the motion model moved on
    assert tr.associate(0.2, [obs(400)])[0].is_new


def test_two_people_crossing_without_embeddings_kept_apart_by_motion() -> None:
    """No embedding ever: the constant-velocity prediction decides while the boxes overlap."""
    tr = FaceTracker()
    track_of: dict[str, set[str]] = {"a": set(), "b": set()}
    for i in range(25):
        xa, xb = 20 + 16 * i, 404 - 16 * i  # meet around i = 12 (IoU up to ~0.7 there)
        ups = tr.associate(i / 8, [obs(xb, 112), obs(xa, 100)])
        track_of["b"].add(ups[0].track.track_id)
        track_of["a"].add(ups[1].track.track_id)
    assert len(track_of["a"]) == 1 and len(track_of["b"]) == 1
    assert track_of["a"] != track_of["b"]


def test_lazy_crossing_embeds_few_and_keeps_identities() -> None:
    a, b = identity(), identity()
    embed, calls = lazy_embed(lambda o: a if o.face.box[1] == 100 else b)
    tr = FaceTracker(min_embeddings=2, k=3)
    track_of: dict[str, set[str]] = {"a": set(), "b": set()}
    for i in range(25):
        xa, xb = 20 + 16 * i, 404 - 16 * i
        ups = tr.update_lazily(i / 8, [obs(xb, 112), obs(xa, 100)], embed)
        track_of["b"].add(ups[0].track.track_id)
        track_of["a"].add(ups[1].track.track_id)
    assert len(track_of["a"]) == 1 and len(track_of["b"]) == 1
    assert track_of["a"] != track_of["b"]
    assert len(calls) == 6  # constant quality: k=3 per track, then nothing beats the k-th
    for track in tr.tracks:  # every sample of a track is its own person's
        ref = a if track.track_id in track_of["a"] else b
        assert all(np.linalg.norm(s.embedding - ref) < 0.6 for s in track.best_samples())


def test_wants_embedding_margin_over_kth_best() -> None:
    track = Track(first_seen_t=0.0, box=(0, 0, 60, 60), k=3)
    for i, q in enumerate([0.8, 0.7, 0.6]):
        assert track.wants_embedding(q, i * 1.0, margin=0.05)  # room in best-k
        track.add(i * 1.0, obs(0, emb=identity(), q=q))
    assert not track.wants_embedding(0.64, 10.0, margin=0.05)  # within noise of the k-th
    assert not track.wants_embedding(0.65, 10.0, margin=0.05)
    assert track.wants_embedding(0.66, 10.0, margin=0.05)
    assert track.wants_embedding(0.61, 10.0, margin=0.0)


def test_wants_embedding_budget_after_min_embeddings() -> None:
    track = Track(first_seen_t=0.0, box=(0, 0, 60, 60), k=5)
    kw = {"min_embeddings": 2, "min_interval_s": 0.25}
    # the first min_embeddings are never rationed: the greeting waits for them
    assert track.wants_embedding(0.5, 0.0, **kw)
    track.add(0.0, obs(0, emb=identity(), q=0.5))
    assert track.wants_embedding(0.5, 0.01, **kw)
    track.add(0.01, obs(0, emb=identity(), q=0.5))
    # then at most one per 0.25 s, even with room in best-k and a much better face
    assert not track.wants_embedding(0.99, 0.2, **kw)
    assert track.wants_embedding(0.99, 0.26, **kw)
    track.add(0.26, obs(0, emb=identity(), q=0.99))
    assert not track.wants_embedding(0.99, 0.5, **kw)
    assert track.wants_embedding(0.99, 0.51, **kw)


def test_lazy_walker_publishes_like_eager_with_far_fewer_embeddings() -> None:
    """Same messages as test_first_usable_embedding_published_at_once_then_agreement_…."""
    a = identity()
    embed, calls = lazy_embed(lambda o: a)
    tr = FaceTracker(min_embeddings=2, update_after_s=3.0, k=3)
    messages: list[tuple[float, bool, int]] = []
    for i in range(40):  # 5 s at 8 fps, quality slowly improving
        t = i / 8
        ups = tr.update_lazily(t, [obs(100 + i, q=0.5 + i / 100)], embed)
        assert len(ups) == 1 and (ups[0].observation.embedding is not None) == ups[0].kept
        messages += [(t, final, len(track.best)) for track, final in tr.due_for_publication(t)]
    assert [m[0] for m in messages] == pytest.approx([0.0, 1 / 8, 1 / 8 + 3.0])
    assert [m[2] for m in messages] == [1, 2, 3]
    assert len(calls) <= 2 + 5 / 0.25  # the budget, against 40 on the eager path
    (track,) = tr.tracks
    assert [round(s, 2) for s, _, _ in track.best] == [0.89, 0.87, 0.85]  # still the best
    [(done, final)] = tr.due_for_publication(39 / 8 + 1.1)
    assert final and done.publications == 4


def test_lazy_never_embeds_gated_out_faces() -> None:
    embed, calls = lazy_embed(lambda o: identity())
    tr = FaceTracker()
    for i in range(10):
        (up,) = tr.update_lazily(i / 8, [obs(100 + i, passed=False)], embed)
        assert not up.usable and not up.kept
    assert calls == [] and tr.due_for_publication(5.0, flush_all=True) == []


def test_lazy_refound_face_rejoins_its_track_by_embedding() -> None:
    """Like test_lost_and_refound_within_max_age: the new-track embedding links it back."""
    a = identity()
    embed, calls = lazy_embed(lambda o: a)
    tr = FaceTracker(max_age_s=1.0)
    for i in range(5):
        track = tr.update_lazily(i * 0.1, [obs(100 + 5 * i)], embed)[0].track
    n = len(calls)
    up = tr.update_lazily(1.0, [obs(190)], embed)[0]  # no overlap after 0.6 s unseen
    assert not up.is_new and up.track is track and len(calls) == n + 1
    # another person appearing near the (again unseen) track is embedded and kept apart
    b = identity()
    embed_b, calls_b = lazy_embed(lambda o: b)
    other = tr.update_lazily(1.5, [obs(100)], embed_b)[0]
    assert other.is_new and other.track is not track and len(calls_b) == 1
