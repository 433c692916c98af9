"""Enrolment refuses faces that fail the quality gate, on real photos made blurry or tiny.

A gallery template is what every later door track is matched against, so a blurred or tiny
enrolment face would make that customer a poor match for ever (and drift towards strangers).
The CLI must refuse such a photo with the gate's reason, store nothing for it, and still
accept the sharp original: that last part proves it was the blur or the size that was refused,
not the photo or the face detector.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from storesense_tools.cli import main
from tests.consent import consent_taker

CONSENT = ("--consent", "form-17", "--staff", "bob")


def _enrol(home: Path, customer: str, *photos: Path) -> int:
    # an installed hub: its database exists at the current schema (the hub or `db migrate` made it)
    home.mkdir(parents=True, exist_ok=True)
    assert main(["--home", str(home), "db", "migrate"]) == 0
    consent_taker(home / "hub.sqlite3", "bob")
    return main(
        ["--home", str(home), "enroll", "--customer", customer, "--name", "Ann", *CONSENT]
        + [str(p) for p in photos]
    )


def _count(home: Path, table: str) -> int:
    db = home / "hub.sqlite3"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _blurred(src: Path, out: Path, sigma: float) -> Path:
    rgb = np.asarray(Image.open(src).convert("RGB"))
    Image.fromarray(cv2.GaussianBlur(rgb, (0, 0), sigma)).save(out)
    return out


def _shrunk(src: Path, out: Path, factor: float) -> Path:
    rgb = np.asarray(Image.open(src).convert("RGB"))
    small = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    Image.fromarray(small).save(out)
    return out


@pytest.fixture
def sharp(shared_data: Path) -> Path:
    """A frontal 1536x1152 portrait (inter-ocular ~177 px, sharpness ~520 vs the gate's 40)."""
    return shared_data / "faces" / "deepface" / "img2.jpg"


@pytest.fixture
def small_face(shared_data: Path) -> Path:
    """An ORL face (92x112 px, inter-ocular ~26 px: above the gate's 14)."""
    return shared_data / "faces" / "orl" / "s1" / "1.pgm"


def test_a_blurred_photo_is_refused_and_the_sharp_original_is_not(
    tmp_path: Path, sharp: Path, capsys
) -> None:
    # sigma 16 px on this photo: the face is still found, sharpness falls to ~20 (gate: 40)
    blurry = _blurred(sharp, tmp_path / "blurry.png", 16.0)
    home = tmp_path / "home"
    assert _enrol(home, "c1", blurry) == 2
    err = capsys.readouterr().err
    assert "enrolment refused" in err and "face fails the quality gate (blurry)" in err, err
    assert "Traceback" not in err
    assert _count(home, "customers") == 0 and _count(home, "templates") == 0

    assert _enrol(home, "c1", sharp) == 0
    assert "enrolled c1 with 1 template(s)" in capsys.readouterr().out
    assert _count(home, "templates") == 1


def test_a_tiny_face_is_refused_and_the_full_size_one_is_not(
    tmp_path: Path, small_face: Path, capsys
) -> None:
    # half size: inter-ocular ~13 px, still detected, below min_face_px = 14
    tiny = _shrunk(small_face, tmp_path / "tiny.png", 0.5)
    home = tmp_path / "home"
    assert _enrol(home, "c1", tiny) == 2
    err = capsys.readouterr().err
    assert "face fails the quality gate (too_small)" in err, err
    assert _count(home, "customers") == 0

    assert _enrol(home, "c1", small_face) == 0
    assert _count(home, "templates") == 1


def test_only_the_photos_that_pass_become_templates(
    tmp_path: Path, sharp: Path, small_face: Path, capsys
) -> None:
    """One bad photo among good ones is skipped by name, not the whole enrolment."""
    blurry = _blurred(sharp, tmp_path / "blurry.png", 16.0)
    tiny = _shrunk(small_face, tmp_path / "tiny.png", 0.5)
    home = tmp_path / "home"
    assert _enrol(home, "c1", sharp, blurry, tiny) == 0
    out = capsys.readouterr().out
    assert f"ok   {sharp}: quality" in out
    assert f"skip {blurry}: face fails the quality gate (blurry)" in out
    assert f"skip {tiny}: face fails the quality gate (too_small)" in out
    assert "enrolled c1 with 1 template(s)" in out
    with sqlite3.connect(home / "hub.sqlite3") as conn:
        sources = [r[0] for r in conn.execute("SELECT source FROM templates")]
    assert sources == [f"photo-sha256:{hashlib.sha256(sharp.read_bytes()).hexdigest()[:16]}"]
