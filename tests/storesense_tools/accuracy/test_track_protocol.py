"""The door-track protocol: message sequence, the hub's rule, real tracks, the CLI, the report."""

from __future__ import annotations

import csv
import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from hub.faces.gallery import GalleryMatrix
from hub.faces.matcher import OpenSetPolicy, SearchHit
from hub.faces.recognizer import Recognizer, confident_policy
from storesense import messages as m
from storesense.config import RecognitionConfig
from storesense.face_models import DLIB_RESNET
from storesense_tools import cli
from storesense_tools.accuracy.track_protocol import (
    decide_group,
    evaluate_tracks,
    folder_track_set,
    lfw_track_set,
    render_track_section,
    search_groups,
)
from storesense_tools.face_eval import build_index, embed_images

CFG = RecognitionConfig(  # dlib distances: these tests pin the ResNet's rules
    model=DLIB_RESNET,
    threshold=0.46,
    margin=0.08,
    single_frame_threshold=0.36,
    single_frame_margin=0.12,
)
POLICY = OpenSetPolicy.from_config(CFG)
CONF = confident_policy(POLICY, CFG)
SURE, BORDER, FAR = (
    SearchHit(0, 0.30, 1, 0.9),
    SearchHit(0, 0.42, 1, 0.9),
    SearchHit(0, 0.8, 1, 0.9),
)


@pytest.mark.parametrize(
    ("hits", "first", "expected"),
    [
        ([SURE, BORDER, BORDER], 1, (0, 1, False, "single_frame")),  # alerts on frame 1
        ([BORDER, BORDER, BORDER], 1, (0, 2, False, "agreement")),  # waits for the pair
        ([BORDER, None, BORDER], 1, (0, 3, False, "agreement")),  # no-face frame: one more
        ([BORDER, FAR, BORDER], 1, (0, 3, True, "agreement")),  # 2 of 3 only at the end
        ([SURE, SURE, SURE], 2, (0, 2, False, "agreement")),  # before: waits for 2
        ([SURE], 2, (None, None, False, None)),  # before: one frame never alerts
        ([SURE], 1, (0, 1, False, "single_frame")),
        ([None, None, None], 1, (None, None, False, None)),
    ],
)
def test_decide_group_follows_the_doors_messages(
    hits: list[SearchHit | None], first: int, expected: tuple
) -> None:
    conf = CONF if first == 1 else None
    assert decide_group(hits, POLICY, conf, first_embeddings=first) == expected


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


@pytest.fixture(scope="module")
def orl_dirs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """ORL s1–s6 enrolled with image 1, their images 2–7 probed; s37–s40 strangers (1–6).

    Symlinks in a temporary folder: the data is never copied.
    """
    orl = shared_data / "faces" / "orl"
    root = tmp_path_factory.mktemp("orl-tracks")
    for s in range(1, 7):
        _link(orl / f"s{s}" / "1.pgm", root / "enrol" / f"s{s}" / "1.pgm")
        for i in range(2, 8):
            _link(orl / f"s{s}" / f"{i}.pgm", root / "probe" / f"s{s}" / f"{i}.pgm")
    for s in range(37, 41):
        for i in range(1, 7):
            _link(orl / f"s{s}" / f"{i}.pgm", root / "probe" / f"s{s}" / f"{i}.pgm")
    return root / "enrol", root / "probe"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emb-cache")


def test_the_real_recognizer_decides_every_track_as_the_protocol_counts_it(
    orl_dirs: tuple[Path, Path], cache: Path
) -> None:
    """The protocol's per-track verdict is what the hub's Recognizer says, message by message."""
    ts = folder_track_set(*orl_dirs, k=3)
    emb = embed_images(ts.embed_paths, cache_dir=cache, model=CFG.model)
    names, hits, _ = search_groups(ts, emb)
    row = {p: i for i, p in enumerate(ts.embed_paths)}
    e_emb = emb[[row[p] for _, p in ts.enrol]]
    index, _ = build_index([i for i, _ in ts.enrol], e_emb)
    rec = Recognizer(CFG)
    rec.load(GalleryMatrix(1, index.labels, e_emb[np.isfinite(e_emb).all(1)], names, {}))
    alerts = 0
    for g, gh in zip(ts.groups, hits, strict=True):
        label, frame, at_end, _ = decide_group(gh, POLICY, CONF, first_embeddings=1)
        t0 = time.time()
        samples: list[m.EmbeddingSample] = []
        sends = []  # the door: the 1st usable frame, the 2nd, then the final message
        for pos, p in enumerate(g.paths, start=1):
            v = emb[row[p]]
            if not np.isfinite(v).all():
                continue
            samples.append(
                m.EmbeddingSample(
                    vector=v, quality=1.0, face_px=40, sharpness=90, frontalness=0.9, t=t0 + pos
                )
            )
            if len(samples) <= 2:
                sends.append((pos, list(samples), False))
        if samples:
            sends.append((len(g.paths), list(samples), True))
        tid, got = uuid.uuid4().hex, None
        for n, (pos, ss, final) in enumerate(sends):
            msg = m.FaceTrack(
                model=CFG.model,
                camera_id="door-1",
                track_id=tid,
                update=n,
                final=final,
                first_usable_at=t0,
                samples=ss,
            )
            out = rec.observe(msg, t0)
            if out is not None and got is None:
                got = (out.customer_id, pos if not final else None)
        expected = names[label] if label is not None else None
        assert (got[0] if got else None) == expected, g
        if expected is not None and got is not None:
            alerts += 1
            assert at_end or got[1] == frame
    assert alerts >= 10  # ORL is easy: most of the 12 genuine tracks are identified


def test_cli_track_size_writes_one_row_per_track_and_policy(
    orl_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, cache: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    out = tmp_path / "tracks.csv"
    enrol, probe = orl_dirs
    argv = ["eval", "faces", "--enroll", str(enrol), "--probe", str(probe), "--out", str(out)]
    assert cli.main([*argv, "--track-size", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["track_size"] == 2 and summary["tracks"] == 6 * 3 + 4 * 3
    after, before = summary["after_k2"], summary["before_k2"]
    assert after["genuine_tracks"] == before["genuine_tracks"] == 18
    assert after["dir"] >= before["dir"]  # one more rule can only add identifications
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 30 and {r["policy"] for r in rows} == {"before", "after"}
    with pytest.raises(SystemExit):
        cli.main([*argv, "--track-size", "0"])


def test_render_track_section_has_a_row_per_k_and_policy(
    orl_dirs: tuple[Path, Path], cache: Path
) -> None:
    ts = folder_track_set(*orl_dirs, k=3)
    report = evaluate_tracks(ts, CFG, cache_dir=cache, ks=(1, 2, 3))
    md = render_track_section(report)
    assert md.startswith("## Door tracks")
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and " | before | " in ln]
    assert len(table) == 3
    assert "distance ≤ 0.360, margin ≥ 0.120" in md
    k1_before = report.summaries[("before", 1)]
    assert k1_before.dir.k == 0  # one frame never reaches agreement: the old rule's blind spot
    assert report.summaries[("after", 1)].dir.k > 0


def test_lfw_track_set_keeps_strangers_out_of_the_gallery(shared_data: Path) -> None:
    ts = lfw_track_set(shared_data / "faces" / "lfw-dev")
    enrolled = {i for i, _ in ts.enrol}
    enrol_paths = {p for _, p in ts.enrol}
    strangers = {g.person for g in ts.groups if not g.genuine}
    assert strangers and not strangers & enrolled
    assert all(g.person in enrolled for g in ts.groups if g.genuine)
    assert all(len(g.paths) == 3 and not set(g.paths) & enrol_paths for g in ts.groups)
    assert {g.fold for g in ts.groups} == {1, 2, 3, 4, 5}
    per_person: dict[str, int] = {}
    for g in ts.groups:
        per_person[g.person] = per_person.get(g.person, 0) + 1
    assert max(per_person.values()) == 10
