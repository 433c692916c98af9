import numpy as np
import pytest

from hub.faces.matcher import (
    NO_LABEL,
    OpenSetPolicy,
    SearchHit,
    TemplateIndex,
    TrackVote,
    customer_rows,
)
from tests.hub.conftest import unit


def _random_gallery(n_customers: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_customers), per)
    rng.shuffle(labels)
    return labels, rng.normal(size=(len(labels), 128)).astype(np.float32) * 0.1


def test_search_is_exact_against_brute_force() -> None:
    labels, matrix = _random_gallery(50, 3)
    queries = np.random.default_rng(9).normal(size=(20, 128)).astype(np.float32) * 0.1
    hits = TemplateIndex(labels, matrix).search(queries)
    for q, hit in zip(queries, hits, strict=True):
        d = np.linalg.norm(matrix.astype(np.float64) - q, axis=1)
        per_customer = {c: d[labels == c].min() for c in np.unique(labels)}
        ranked = sorted(per_customer.items(), key=lambda kv: kv[1])
        assert hit.label == ranked[0][0]
        assert hit.distance == pytest.approx(ranked[0][1], abs=1e-4)
        assert hit.second_label == ranked[1][0]
        assert hit.second_distance == pytest.approx(ranked[1][1], abs=1e-4)


def test_runner_up_is_a_different_customer_even_with_many_templates() -> None:
    base = unit(1)
    # customer 0 has three near-identical templates; customer 1 is far away
    matrix = np.stack([base, base + 0.001, base + 0.002, unit(2)])
    hit = TemplateIndex(np.array([0, 0, 0, 1]), matrix).search(base)[0]
    assert (hit.label, hit.second_label) == (0, 1)
    assert hit.second_distance > 1.0


def test_empty_and_single_customer_galleries() -> None:
    empty = TemplateIndex(np.empty(0, np.int64), np.empty((0, 128), np.float32)).search(unit(1))
    assert empty[0] == SearchHit(NO_LABEL, float("inf"), NO_LABEL, float("inf"))
    one = TemplateIndex(np.array([0, 0]), np.stack([unit(1), unit(2)])).search(unit(1))[0]
    assert one.label == 0 and one.distance == pytest.approx(0, abs=1e-3)
    assert one.second_label == NO_LABEL and one.second_distance == float("inf")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_queries_are_rejected(bad: float) -> None:
    q = unit(1)
    q[7] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        TemplateIndex(np.array([0]), unit(1)[None]).search(q)


def test_wrong_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        TemplateIndex(np.array([0]), np.zeros((1, 127), np.float32))
    with pytest.raises(ValueError, match=r"\(Q, 128\)"):
        TemplateIndex(np.array([0]), unit(1)[None]).search(np.zeros(64, np.float32))


POLICY = OpenSetPolicy(threshold=0.45, margin=0.05, min_votes=2, min_vote_share=0.6)


@pytest.mark.parametrize(
    ("hit", "expected"),
    [
        (SearchHit(3, 0.30, 4, 0.70), 3),  # close and clear
        (SearchHit(3, 0.50, 4, 0.90), None),  # beyond the threshold
        (SearchHit(3, 0.30, 4, 0.33), None),  # too close to another customer: ambiguous
        (SearchHit(3, 0.30, NO_LABEL, float("inf")), 3),  # only one customer enrolled
        (SearchHit(NO_LABEL, float("inf"), NO_LABEL, float("inf")), None),
    ],
)
def test_decide_one(hit: SearchHit, expected: int | None) -> None:
    assert POLICY.decide_one(hit) == expected


def test_track_needs_agreeing_votes() -> None:
    vote = TrackVote(POLICY)
    vote.add(SearchHit(1, 0.3, 2, 0.8), 0.9)
    assert vote.decide(finished=False).status == "pending"  # one frame is not enough
    vote.add(SearchHit(1, 0.32, 2, 0.8), 0.8)
    d = vote.decide(finished=False)
    assert (d.status, d.label, d.votes) == ("match", 1, 2)
    assert d.best_distance == pytest.approx(0.3)


def test_conflicting_votes_never_match() -> None:
    vote = TrackVote(POLICY)
    for label in (1, 2, 1, 2):
        vote.add(SearchHit(label, 0.3, 3 - label, 0.8), 0.9)
    assert vote.decide(finished=False).status == "pending"
    assert vote.decide(finished=True).status == "unknown"


def test_low_quality_agreement_is_outweighed_by_good_rejections() -> None:
    vote = TrackVote(POLICY)
    vote.add(SearchHit(1, 0.40, 2, 0.8), 0.1)
    vote.add(SearchHit(1, 0.42, 2, 0.8), 0.1)
    vote.add(SearchHit(1, 0.60, 2, 0.8), 0.9)  # the good frame says: not this customer
    d = vote.decide(finished=True)
    assert d.status == "unknown" and d.weight_share < 0.6


def test_stranger_track_is_unknown_when_finished() -> None:
    vote = TrackVote(POLICY)
    for _ in range(3):
        vote.add(SearchHit(1, 0.7, 2, 0.8), 0.9)
    assert vote.decide(finished=False).status == "pending"
    d = vote.decide(finished=True)
    assert d.status == "unknown" and d.best_distance == pytest.approx(0.7)


def test_batches_and_single_queries_agree_and_distances_are_direct() -> None:
    """More queries than one matrix product takes: chunking must not change any answer."""
    labels, matrix = _random_gallery(200, 4, seed=3)
    queries = np.random.default_rng(4).normal(size=(19, 128)).astype(np.float32) * 0.1
    index = TemplateIndex(labels, matrix)
    batch = index.search(queries)
    assert batch == [index.search(q)[0] for q in queries]
    for q, hit in zip(queries, batch, strict=True):
        d = np.linalg.norm(matrix.astype(np.float64) - q, axis=1)
        assert hit.distance == pytest.approx(d.min(), abs=1e-6)
        assert hit.second_distance == pytest.approx(d[labels != hit.label].min(), abs=1e-6)


def test_negative_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        TemplateIndex(np.array([NO_LABEL]), unit(1)[None])


def test_policy_from_config_and_validation() -> None:
    from storesense.config import RecognitionConfig

    cfg = RecognitionConfig()
    p = OpenSetPolicy.from_config(cfg)
    assert (p.threshold, p.margin, p.min_votes, p.min_vote_share) == (
        cfg.threshold,
        cfg.margin,
        cfg.min_votes,
        cfg.min_vote_share,
    )
    with pytest.raises(ValueError):
        OpenSetPolicy(threshold=0.45, margin=-0.1)
    with pytest.raises(ValueError):
        OpenSetPolicy(threshold=0.45, margin=0.05, min_votes=0)


def test_tied_conflict_never_matches_even_with_a_permissive_share() -> None:
    vote = TrackVote(OpenSetPolicy(0.45, 0.05, min_votes=2, min_vote_share=0.3))
    for label in (1, 2, 1, 2):
        vote.add(SearchHit(label, 0.3, 3 - label, 0.8), 0.9)
    assert vote.decide(finished=True).status == "unknown"


def test_a_second_confident_customer_blocks_the_match() -> None:
    """Leader holds 3/5 of the weight, but another customer has min_votes accepted frames."""
    vote = TrackVote(OpenSetPolicy(0.45, 0.05, min_votes=2, min_vote_share=0.5))
    for label in (1, 1, 1, 2, 2):
        vote.add(SearchHit(label, 0.3, 3 - label, 0.8), 0.9)
    d = vote.decide(finished=True)
    assert d.status == "unknown" and d.label is None


def test_a_single_stray_vote_does_not_block_a_clear_majority() -> None:
    vote = TrackVote(POLICY)
    for label in (1, 1, 1, 2):
        vote.add(SearchHit(label, 0.3, 3 - label, 0.8), 0.9)
    d = vote.decide(finished=False)
    assert (d.status, d.label, d.votes, d.weight_share) == ("match", 1, 3, pytest.approx(0.75))


def test_pending_becomes_match_as_frames_arrive() -> None:
    vote = TrackVote(POLICY)
    vote.add(SearchHit(1, 0.60, 2, 0.8), 0.5)  # too far: counts against
    vote.add(SearchHit(1, 0.35, 2, 0.8), 0.9)
    assert vote.decide(finished=False).status == "pending"  # 1 vote, share 0.64
    vote.add(SearchHit(1, 0.33, 2, 0.8), 0.9)
    d = vote.decide(finished=False)
    assert (d.status, d.votes) == ("match", 2) and d.weight_share == pytest.approx(1.8 / 2.3)


def test_non_finite_or_out_of_range_quality_is_clipped() -> None:
    vote = TrackVote(POLICY)
    vote.add(SearchHit(1, 0.3, 2, 0.8), float("nan"))
    vote.add(SearchHit(1, 0.3, 2, 0.8), 7.0)  # clipped to 1
    vote.add(SearchHit(1, 0.9, 2, 1.0), 1.0)
    d = vote.decide(finished=True)
    assert d.status == "unknown" and d.weight_share == pytest.approx(1.001 / 2.001)


def test_mean_template_rows_are_one_mean_per_customer() -> None:
    labels = np.array([1, 0, 1, 2, 1])
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(5, 128)).astype(np.float32)
    out_labels, out_rows = customer_rows(labels, matrix, "mean_template")
    assert out_labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(out_rows[1], matrix[[0, 2, 4]].mean(0), atol=1e-6)
    np.testing.assert_array_equal(out_rows[0], matrix[1])  # one template: unchanged
    same_labels, same_rows = customer_rows(labels, matrix, "nearest")
    assert same_labels is not None and (same_rows == matrix).all()
    with pytest.raises(ValueError, match="aggregation"):
        customer_rows(labels, matrix, "median")  # type: ignore[arg-type]


def test_mean_template_finds_the_customer_between_their_photos() -> None:
    """Two photos either side of the probe: each is farther than a look-alike's one photo,
    their mean is nearer. The nearest-template rule names the look-alike; the mean, the person."""
    probe = unit(1)
    side = unit(2) * 0.3
    customer = np.stack([probe + side, probe - side])
    lookalike = (probe + unit(3) * 0.25)[None, :]
    labels = np.array([0, 0, 1])
    matrix = np.concatenate([customer, lookalike]).astype(np.float32)
    assert TemplateIndex(*customer_rows(labels, matrix, "nearest")).search(probe)[0].label == 1
    hit = TemplateIndex(*customer_rows(labels, matrix, "mean_template")).search(probe)[0]
    assert (hit.label, hit.second_label) == (0, 1) and hit.distance < 1e-5
