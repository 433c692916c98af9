"""Consent-gated enrolment through the CLI, on real photos and real weights."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from storesense_tools.cli import main
from tests.consent import consent_taker


def _enrol(home: Path, *args: str) -> int:
    # an installed hub: its database exists at the current schema (the hub or `db migrate` made it)
    home.mkdir(parents=True, exist_ok=True)
    assert main(["--home", str(home), "db", "migrate"]) == 0
    consent_taker(home / "hub.sqlite3", "bob")
    return main(["--home", str(home), "enroll", *args])


def test_enrolment_without_consent_is_refused(tmp_path: Path, shared_data: Path, capsys) -> None:
    photo = shared_data / "faces" / "orl" / "s1" / "1.pgm"
    assert _enrol(tmp_path, "--customer", "c1", "--name", "Ann", "--staff", "bob", str(photo)) == 2
    assert "no consent reference" in capsys.readouterr().err
    assert not (tmp_path / "hub.sqlite3").exists() or _count(tmp_path, "customers") == 0


def test_enrolment_without_the_staff_member_who_took_consent_is_refused(
    tmp_path: Path, shared_data: Path, capsys
) -> None:
    photo = shared_data / "faces" / "orl" / "s1" / "1.pgm"
    code = _enrol(tmp_path, "--customer", "c1", "--name", "Ann", "--consent", "f-1", str(photo))
    assert code == 2
    assert "no staff member recorded" in capsys.readouterr().err
    assert _count(tmp_path, "customers") == 0


def test_photos_with_no_face_or_several_faces_are_refused(
    tmp_path: Path, shared_data: Path, capsys
) -> None:
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 180, np.uint8)).save(blank)
    group = shared_data / "faces" / "deepface" / "couple.jpg"
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = _enrol(
        tmp_path,
        "--customer",
        "c1",
        "--name",
        "Ann",
        "--consent",
        "form-17",
        "--staff",
        "bob",
        str(blank),
        str(group),
        str(corrupt),
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "no face found" in err and "faces: use a photo" in err and "unreadable" in err
    assert _count(tmp_path, "customers") == 0


def test_good_photos_store_encrypted_templates_only(
    tmp_path: Path, shared_data: Path, capsys
) -> None:
    photos = [shared_data / "faces" / "orl" / "s1" / f"{i}.pgm" for i in (1, 2)]
    assert (
        _enrol(
            tmp_path,
            *("--customer", "c1", "--name", "Ann", "--consent", "form-17", "--staff", "bob"),
            *("--consent-method", "digital", "--notice-version", "2026-12"),
            *map(str, photos),
        )
        == 0
    )
    assert "enrolled c1 with 2 template(s)" in capsys.readouterr().out
    conn = sqlite3.connect(tmp_path / "hub.sqlite3")
    row = conn.execute(
        "SELECT consent_ref, consent_notice, consent_method, consent_staff FROM customers "
        "WHERE customer_id='c1'"
    ).fetchone()
    assert row == ("form-17", "2026-12", "digital", "bob")
    sources = [r[0] for r in conn.execute("SELECT source FROM templates")]
    assert len(sources) == 2 and all(s.startswith("photo-sha256:") for s in sources)
    # no image bytes anywhere in the home folder: only the database and the key
    files = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert not any(f.endswith((".pgm", ".jpg", ".png")) for f in files)
    assert main(["--home", str(tmp_path), "erase", "--customer", "c1"]) == 0
    assert _count(tmp_path, "templates") == 0


def _count(home: Path, table: str) -> int:
    return (
        sqlite3.connect(home / "hub.sqlite3").execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    )


def test_the_chain_consent_is_its_own_item_recorded_and_audited(
    tmp_path: Path, shared_data: Path, capsys
) -> None:
    """``--chain-consent`` (docs/chain.md): recorded on the customer and in the consent
    history, named in the audit; without it a customer is recorded as local."""
    photo = str(shared_data / "faces" / "orl" / "s1" / "1.pgm")
    base = ("--consent", "form-17", "--staff", "bob")
    assert _enrol(tmp_path, "--customer", "c1", "--name", "Ann", *base, "--chain-consent",
                  photo) == 0  # fmt: skip
    assert "chain consent recorded" in capsys.readouterr().out
    assert _enrol(tmp_path, "--customer", "c2", "--name", "Lou", *base, photo) == 0
    conn = sqlite3.connect(tmp_path / "hub.sqlite3")
    got = dict(conn.execute("SELECT customer_id, chain_consent_at IS NOT NULL FROM customers"))
    assert got == {"c1": 1, "c2": 0}
    rows = dict(conn.execute("SELECT customer_id, chain_consent FROM consent_records"))
    assert rows == {"c1": 1, "c2": 0}
    audit = dict(conn.execute("SELECT customer_id, detail FROM audit WHERE action='enrol'"))
    assert "shared with the chain's stores: yes" in audit["c1"]
    assert "shared with the chain's stores: no" in audit["c2"]
