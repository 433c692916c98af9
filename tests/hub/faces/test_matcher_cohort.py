"""Score normalisation against the gallery (cohort): index statistics and the policy rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hub.faces.matcher import (
    COHORT_STD_FLOOR,
    NO_LABEL,
    OpenSetPolicy,
    SearchHit,
    TemplateIndex,
    cohort_stats,
    cohort_z,
)


def _gallery(n: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n), per)
    rng.shuffle(labels)
    return labels, rng.normal(size=(len(labels), 128)).astype(np.float32) * 0.1


def test_cohort_is_the_nearest_other_customers_by_brute_force() -> None:
    labels, matrix = _gallery(40, 3)
    queries = np.random.default_rng(5).normal(size=(12, 128)).astype(np.float32) * 0.1
    k = 7
    hits = TemplateIndex(labels, matrix, cohort_size=k).search(queries)
    for q, hit in zip(queries, hits, strict=True):
        d = np.linalg.norm(matrix.astype(np.float64) - q, axis=1)
        per = sorted((d[labels == c].min(), c) for c in np.unique(labels))
        assert hit.label == per[0][1]
        others = [x for x, _ in per[1 : 1 + k]]
        assert hit.cohort is not None and len(hit.cohort) == k
        np.testing.assert_allclose(hit.cohort, others, atol=1e-4)
        assert hit.cohort[0] == hit.second_distance  # the exact runner-up leads the cohort


def test_no_cohort_unless_asked_and_the_search_is_otherwise_unchanged() -> None:
    labels, matrix = _gallery(20, 2)
    q = np.random.default_rng(1).normal(size=(4, 128)).astype(np.float32) * 0.1
    plain = TemplateIndex(labels, matrix).search(q)
    with_cohort = TemplateIndex(labels, matrix, cohort_size=5).search(q)
    for a, b in zip(plain, with_cohort, strict=True):
        assert a.cohort is None
        assert (a.label, a.distance, a.second_label, a.second_distance) == (
            b.label,
            b.distance,
            b.second_label,
            b.second_distance,
        )


def test_small_galleries_give_short_cohorts() -> None:
    labels, matrix = _gallery(3, 1)
    hit = TemplateIndex(labels, matrix, cohort_size=10).search(matrix[0])[0]
    assert hit.cohort is not None and len(hit.cohort) == 2
    one = TemplateIndex(np.array([0, 0]), matrix[:2], cohort_size=10).search(matrix[0])[0]
    assert one.cohort == () and one.second_label == NO_LABEL
    empty = TemplateIndex(np.empty(0, np.int64), np.empty((0, 128)), cohort_size=3)
    assert empty.search(matrix[0])[0].cohort == ()
    with pytest.raises(ValueError):
        TemplateIndex(labels, matrix, cohort_size=-1)


def test_cohort_stats_rows_and_edge_cases() -> None:
    d = np.array([[0.5, 0.7, np.inf, 0.9], [np.inf, np.inf, np.inf, np.inf], [0.3, 0.3, 0.3, 1]])
    mu, sd = cohort_stats(d, 3)
    assert mu[0] == pytest.approx(0.7) and sd[0] == pytest.approx(np.std([0.5, 0.7, 0.9]))
    assert math.isnan(mu[1]) and math.isnan(sd[1])  # nobody to compare with
    assert mu[2] == pytest.approx(0.3) and sd[2] == COHORT_STD_FLOOR  # floored, not zero
    with pytest.raises(ValueError):
        cohort_stats(d, 0)


def _hit(distance: float, cohort: tuple[float, ...] | None) -> SearchHit:
    second = cohort[0] if cohort else float("inf")
    return SearchHit(1, distance, 2 if cohort else NO_LABEL, second, cohort)


def test_policy_refuses_a_face_that_is_not_clear_of_the_crowd() -> None:
    policy = OpenSetPolicy(0.5, 0.05, cohort_k=4, min_cohort_z=2.0)
    # a tight crowd well behind the face: z = (0.475 - 0.40) / std(0.46..0.49) ≈ 6.7
    crowded = _hit(0.40, (0.46, 0.47, 0.48, 0.49))
    assert cohort_z(crowded, 4) == pytest.approx(0.075 / np.std([0.46, 0.47, 0.48, 0.49]))
    assert policy.decide_one(crowded) == 1
    # the same runner-up, but the crowd is spread wide: z = (0.6775 - 0.40) / 0.165 ≈ 1.68
    spread = _hit(0.40, (0.46, 0.60, 0.75, 0.90))
    assert cohort_z(spread, 4) < 2.0
    assert policy.decide_one(spread) is None
    assert OpenSetPolicy(0.5, 0.05).decide_one(spread) == 1  # without the cohort: accepted


def test_policy_with_a_cohort_needs_an_index_that_keeps_one() -> None:
    policy = OpenSetPolicy(0.5, 0.05, cohort_k=4, min_cohort_z=1.0)
    with pytest.raises(ValueError, match="cohort_size"):
        policy.decide_one(_hit(0.40, None))
    # a gallery with one other customer has no crowd: threshold and margin decide
    assert policy.decide_one(_hit(0.40, (0.60,))) == 1
    assert policy.decide_one(_hit(0.40, ())) == 1
    with pytest.raises(ValueError):
        OpenSetPolicy(0.5, 0.05, cohort_k=-1)
    with pytest.raises(ValueError):
        OpenSetPolicy(0.5, 0.05, cohort_k=3, min_cohort_z=float("nan"))
