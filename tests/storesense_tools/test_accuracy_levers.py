"""The lever study's arithmetic (storesense_tools.accuracy.levers / face_records.select).

Checked against brute force and against the hub's own rule (``OpenSetPolicy`` on
``TemplateIndex`` hits), so the offline rows in docs/accuracy.md score faces exactly as the
hub would; and the held-out recipe is checked to never look at the fold it counts.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from hub.faces.matcher import OpenSetPolicy, TemplateIndex, cohort_z
from storesense.face_models import DLIB_RESNET, SFACE
from storesense_tools.accuracy import levers as L
from storesense_tools.accuracy.face_records import (
    PASS_FIRST,
    PASS_HOG1,
    FaceRecords,
    Variant,
    select,
)


def _split(n_cust: int = 30, per: int = 3, seed: int = 0) -> L.Split:
    """Customers with ``per`` noisy templates around an identity; genuine probes near it,
    strangers elsewhere; five folds by person."""
    rng = np.random.default_rng(seed)
    ident = rng.normal(size=(n_cust, 128)) * 0.06
    g_label = np.repeat(np.arange(n_cust), per)
    g_emb = ident[g_label] + rng.normal(size=(len(g_label), 128)) * 0.02
    gen_true = np.repeat(np.arange(n_cust), 2)
    gen = ident[gen_true] + rng.normal(size=(len(gen_true), 128)) * 0.025
    strangers = rng.normal(size=(80, 128)) * 0.06
    p_emb = np.vstack([gen, strangers])
    p_emb[3] = np.nan  # a genuine probe with no usable face
    p_emb[-1] = np.nan  # a stranger with no usable face
    p_true = np.concatenate([gen_true, -np.ones(len(strangers), np.int64)])
    p_fold = np.concatenate([gen_true % 5 + 1, np.arange(len(strangers)) % 5 + 1])
    return L.Split(
        [f"c{i}" for i in range(n_cust)],
        g_emb,
        g_label,
        rng.uniform(0.2, 1.0, len(g_label)),
        p_emb,
        p_true,
        p_fold,
    )


@pytest.mark.parametrize("agg", ["min", "mean", "trimmed", "centroid", "qcentroid"])
def test_customer_distances_against_brute_force(agg: str) -> None:
    s = _split()
    d = L.customer_distances(s, agg)
    for p in (0, 7, 70):
        q = s.p_emb[p]
        for c in (0, 5, 29):
            g = s.g_emb[s.g_label == c]
            w = s.g_quality[s.g_label == c]
            each = np.sort(np.linalg.norm(g - q, axis=1))
            want = {
                "min": each.min(),
                "mean": each.mean(),
                "trimmed": each[:-1].mean(),
                "centroid": np.linalg.norm(g.mean(0) - q),
                "qcentroid": np.linalg.norm((g * w[:, None]).sum(0) / w.sum() - q),
            }[agg]
            assert d[p, c] == pytest.approx(want, abs=1e-9)
    assert np.isnan(d[3]).all()


def test_offline_scores_decide_as_the_hub_does() -> None:
    """score_margin / score_margin_cohort at a threshold == OpenSetPolicy on index hits."""
    s = _split()
    ok = np.isfinite(s.p_emb).all(1)
    d = L.customer_distances(s, "min")
    k, min_z, margin, thr = 10, 1.0, 0.02, float(np.nanmedian(d.min(1)))
    index = TemplateIndex(s.g_label, s.g_emb, cohort_size=k)
    hits = index.search(s.p_emb[ok])
    sn = L.score_snorm(d, k)
    combo = L.score_margin_cohort(d, margin, k, min_z)
    policy = OpenSetPolicy(thr, margin, cohort_k=k, min_cohort_z=min_z)
    plain = OpenSetPolicy(thr, margin)
    mg = L.score_margin(d, margin)
    for p, hit in zip(np.flatnonzero(ok), hits, strict=True):
        assert sn.score[p] == pytest.approx(cohort_z(hit, k), abs=1e-4)
        hub = policy.decide_one(hit)
        assert (hub is not None) == bool(combo.score[p] >= -thr), p
        assert (plain.decide_one(hit) is not None) == bool(mg.score[p] >= -thr), p
        if hub is not None:
            assert hub == combo.nearest[p]


def test_theta_keeps_the_target_and_is_the_loosest() -> None:
    s = _split()
    sc = L.score_margin(L.customer_distances(s, "min"), 0.0)
    mask = np.ones(len(s.p_true), bool)
    for target in (0.02, 0.05, 0.2):
        th = L.theta_for_fpir(s, sc, mask, target)
        c = L.count(s, sc, th)
        assert c.fpir_k <= math.floor(target * c.fpir_n)
        stranger_scores = np.sort(sc.score[(s.p_true < 0) & (sc.nearest >= 0)])
        looser = stranger_scores[stranger_scores < th]
        if len(looser):  # one step looser lets one stranger too many in
            assert L.count(s, sc, float(looser[-1])).fpir_k > math.floor(target * c.fpir_n)


def test_counts_treat_a_faceless_genuine_probe_as_a_miss() -> None:
    s = _split()
    sc = L.score_margin(L.customer_distances(s, "min"), 0.0)
    c = L.count(s, sc, -np.inf)  # accept everything with a face
    assert c.dir_n == int((s.p_true >= 0).sum())  # faceless genuine probe included
    assert c.dir_k == c.rank1_k < c.dir_n
    assert c.fpir_n == int(((s.p_true < 0) & np.isfinite(s.p_emb).all(1)).sum())
    assert c.no_face == 2


def test_a_vetoed_probe_is_never_accepted_even_at_the_loosest_threshold() -> None:
    """A margin that vetoes nearly every stranger makes ``theta_for_fpir`` return -inf; the
    vetoed probes (score -inf) must still count as rejected, not as matches."""
    s = _split()
    d = L.customer_distances(s, "min")
    sc = L.score_margin(d, 10.0)  # no runner-up is 10 farther: everything vetoed
    assert not np.isfinite(sc.score).any()
    th = L.theta_for_fpir(s, sc, np.ones(len(s.p_true), bool), 0.05)
    assert th == -math.inf
    c = L.count(s, sc, th)
    assert (c.dir_k, c.fpir_k) == (0, 0)
    assert c.rank1_k > 0  # the nearest customer is still right for some: rank-1 is unaffected
    # and the held-out choice prefers a rule that decides something over one that vetoes all
    row = L.held_out("x", s, {"veto": sc, "plain": L.score_margin(d, 0.0)}, target=0.05)
    assert {p for p, _ in row.choices} == {"plain"}


def test_held_out_never_looks_at_the_fold_it_counts() -> None:
    s = _split()
    base = L.held_out("x", s, L.scorers_for(s, "min", "margin"), target=0.05)
    # plant fold 5's strangers right on top of customers: fold 5's own choice cannot move,
    # only its count (and the choices of the folds that train on fold 5)
    planted = s.p_emb.copy()
    f5 = np.flatnonzero((s.p_fold == 5) & (s.p_true < 0))
    planted[f5[:-1]] = s.g_emb[: len(f5) - 1] + 1e-4
    s2 = replace(s, p_emb=planted)
    moved = L.held_out("x", s2, L.scorers_for(s2, "min", "margin"), target=0.05)
    assert moved.choices[4] == base.choices[4]
    assert moved.counts.fpir_k > base.counts.fpir_k
    assert moved.choices[:4] != base.choices[:4]


def _records() -> FaceRecords:
    """Image 0: a refused central face and a usable off-centre one; image 1: only a
    second-pass face; image 2: nothing."""
    e = np.eye(128, dtype=np.float32)[:4]
    return FaceRecords(
        image=np.array([0, 0, 1, 1]),
        detect_pass=np.array([PASS_FIRST, PASS_FIRST, PASS_FIRST, PASS_HOG1]),
        off_centre=np.array([1.0, 9.0, 2.0, 3.0]),
        face_px=np.array([30.0, 30.0, 30.0, 30.0]),
        sharpness=np.array([100.0, 100.0, 100.0, 100.0]),
        frontalness=np.array([0.40, 0.90, 0.30, 0.90]),
        emb=e,
        emb_flip=e[::-1].copy(),
        n_images=3,
        model=DLIB_RESNET,  # the ResNet's flip mean is the plain mean
    )


def test_select_follows_the_gate_the_pass_and_the_centre() -> None:
    rec = _records()
    emb, used = select(rec, Variant("base", min_frontalness=0.55))
    assert list(used) == [1, -1, -1]  # the central face is refused: the usable one wins
    emb, used = select(rec, Variant("loose", min_frontalness=0.35))
    assert list(used) == [0, -1, -1]  # now the central one passes and is nearer the centre
    emb, used = select(rec, Variant("second", min_frontalness=0.55, second_pass=True))
    assert list(used) == [1, 3, -1]
    emb, used = select(rec, Variant("flip", min_frontalness=0.55, flip=True))
    np.testing.assert_allclose(emb[0], (rec.emb[1] + rec.emb_flip[1]) / 2)
    assert np.isnan(emb[2]).all()
    # SFace compares unit vectors: its flip mean is renormalised, as SFaceEmbedder.describe
    sface, _ = select(replace(rec, model=SFACE), Variant("flip", min_frontalness=0.55, flip=True))
    mean = (rec.emb[1] + rec.emb_flip[1]) / 2
    np.testing.assert_allclose(sface[0], mean / np.linalg.norm(mean), rtol=1e-6)
