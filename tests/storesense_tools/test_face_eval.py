"""Open-set identification with real weights on ORL and LFW (the data lives beside the repo)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from storesense_tools.cli import main
from storesense_tools.face_eval import build_index, embed_images, lfw_split, policy_from


def _link_orl(orl: Path, enrol: Path, probe: Path) -> None:
    """s1-s30: images 1-2 enrolled, 3-10 probed; s31-s40 never enrolled, all 10 probed."""
    for s in range(1, 41):
        for i in range(1, 11):
            if s <= 30 and i <= 2:
                dest = enrol / f"s{s}" / f"{i}.pgm"
            else:
                dest = probe / f"s{s}" / f"{i}.pgm"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(orl / f"s{s}" / f"{i}.pgm")


def test_orl_never_enrolled_people_are_rejected(shared_data: Path, tmp_path: Path, capsys) -> None:
    enrol, probe, out = tmp_path / "enrol", tmp_path / "probe", tmp_path / "orl.csv"
    _link_orl(shared_data / "faces" / "orl", enrol, probe)
    assert (
        main(["eval", "faces", "--enroll", str(enrol), "--probe", str(probe), "--out", str(out)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == summary["n_probes"] == 30 * 8 + 10 * 10
    assert rows[0].keys() == {"probe", "true_id", "nearest_id", "distance", "decision"}
    strangers = [r for r in rows if int(r["true_id"][1:]) > 30]
    assert strangers and all(r["decision"] == "" for r in strangers)  # none of 100 matched
    assert summary["stranger_match_rate"] == summary["fpir"] == 0.0
    no_face = [r for r in rows if r["nearest_id"] == ""]
    assert all(r["distance"] == "" and r["decision"] == "" for r in no_face)
    # issue 13's counting, by hand from the CSV: every genuine probe is in DIR's and
    # rank-1's denominator, a faceless one as a miss; FPIR over strangers with a face
    genuine = [r for r in rows if int(r["true_id"][1:]) <= 30]
    assert summary["n_enrolled_probes"] == len(genuine) == 240
    identified = sum(r["decision"] == r["true_id"] for r in genuine)
    assert summary["dir"] == summary["identified_rate"] == round(identified / len(genuine), 4)
    nearest_ok = sum(r["nearest_id"] == r["true_id"] for r in genuine)
    assert summary["rank1"] == round(nearest_ok / len(genuine), 4)
    assert summary["n_no_face"] == len(no_face)
    assert summary["n_no_face_genuine"] == sum(r["nearest_id"] == "" for r in genuine)
    assert summary["n_no_face_genuine"] >= 1  # ORL s2: the miss rule is exercised
    assert summary["n_stranger_probes"] == sum(r["nearest_id"] != "" for r in strangers)
    assert f"no usable face {len(no_face)} of 340" in summary["summary"]
    assert summary["rank1"] >= 0.95 and summary["dir"] >= 0.9


# Embedding ~4,600 LFW photos takes minutes on 2 cores the first time on a machine (then the
# cache answers in a second); the suite-wide 600 s limit is too tight for a busy first run.
@pytest.mark.timeout(2400)
def test_default_threshold_matches_under_one_percent_of_lfw_strangers(shared_data: Path) -> None:
    enrol, probes, all_paths = lfw_split(shared_data / "faces" / "lfw-dev")
    emb = embed_images(all_paths, label="LFW folds 1-5")  # minutes on first run, then cached
    row = {p: k for k, p in enumerate(all_paths)}
    index, names = build_index([i for i, _ in enrol], emb[[row[p] for _, p in enrol]])
    policy = policy_from()
    enrolled = set(names)
    strangers = [row[p] for i, p in probes if i not in enrolled]
    s_emb = emb[strangers]
    s_emb = s_emb[np.isfinite(s_emb).all(axis=1)]
    assert len(s_emb) > 1900  # ~2,000 single-image people, nearly all with a usable face
    matched = sum(policy.decide_one(h) is not None for h in index.search(s_emb))
    assert matched / len(s_emb) < 0.01, f"{matched} of {len(s_emb)} strangers matched"
