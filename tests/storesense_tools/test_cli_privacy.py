"""The privacy commands end to end on real photos and a real hub file: enrol with a consent
record, export, verify the audit chain (and catch tampering), rotate the key, run retention,
forget."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hub.faces.gallery import Gallery
from hub.store import db
from storesense.paths import hub_db_path, template_key_path
from storesense_tools.cli import main
from tests.consent import consent_taker

CUSTOMER = "ann-0017"  # no hex digits: it cannot turn up inside a MAC by chance


def _enrol(home: Path, shared: Path, customer: str = CUSTOMER) -> None:
    photos = [shared / "faces" / "orl" / "s1" / f"{i}.pgm" for i in (1, 2)]
    args = ["--customer", customer, "--name", "Ann Example", "--consent", "form-17"]
    assert main(["--home", str(home), "db", "migrate"]) == 0  # the hub's part: CLIs only open
    consent_taker(home / "hub.sqlite3", "bob")
    assert main(["--home", str(home), "enroll", *args, "--staff", "bob", *map(str, photos)]) == 0


def _tables_mentioning(home: Path, text: str) -> dict[str, int]:
    conn = sqlite3.connect(hub_db_path(home))
    found = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        cond = " OR ".join(f"CAST({c} AS TEXT) LIKE ?" for c in cols)
        n = conn.execute(
            f"SELECT count(*) FROM {table} WHERE {cond}", [f"%{text}%"] * len(cols)
        ).fetchone()[0]
        if n:
            found[table] = n
    return found


def test_export_verify_rotate_retention_forget(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path
    _enrol(home, shared_data)
    out = tmp_path / "export.json"
    assert main(["--home", str(home), "customer", "export", CUSTOMER, "--out", str(out)]) == 0
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    data = json.loads(out.read_text())
    assert data["profile"]["consent_staff"] == "bob" and len(data["face_templates"]) == 2

    assert main(["--home", str(home), "audit", "verify"]) == 0
    assert "audit chain ok: 3 rows" in capsys.readouterr().out  # staff add, enrol, export

    assert main(["--home", str(home), "keys", "rotate"]) == 0
    assert "2 encrypted rows re-encrypted" in capsys.readouterr().out
    gallery = Gallery.open(db.connect(hub_db_path(home)), template_key_path(home))
    assert len(gallery.load_matrix().labels) == 2  # still readable, under the new key

    assert main(["--home", str(home), "retention", "run", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert not (home / "reports" / "retention").exists()
    assert main(["--home", str(home), "retention", "run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["face_profiles"] == 0 and report["audit_chain"]["ok"]
    assert len(list((home / "reports" / "retention").glob("*.json"))) == 1

    assert main(["--home", str(home), "customer", "forget", CUSTOMER, "--reason", "asked"]) == 0
    assert "2 audit rows redacted" in capsys.readouterr().out  # enrol and export
    # only the tombstone row of the audit log still names them; no template row is left
    assert _tables_mentioning(home, CUSTOMER) == {"audit": 1}
    assert _tables_mentioning(home, "Ann Example") == {}
    assert main(["--home", str(home), "customer", "export", CUSTOMER]) == 2
    assert "holds no data" in capsys.readouterr().err
    assert main(["--home", str(home), "audit", "verify"]) == 0


def test_audit_verify_names_the_tampered_row(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _enrol(tmp_path, shared_data)
    _enrol(tmp_path, shared_data, "c2")
    conn = sqlite3.connect(hub_db_path(tmp_path))
    conn.execute("UPDATE audit SET detail = '2 templates; consent none' WHERE audit_id = 1")
    conn.commit()
    assert main(["--home", str(tmp_path), "audit", "verify"]) == 2
    err = capsys.readouterr().err
    assert "BROKEN at row 1" in err and "detail was changed" in err
    # the nightly retention run refuses to call a broken chain fine
    assert main(["--home", str(tmp_path), "retention", "run"]) == 2


def test_opt_in_photo_is_kept_encrypted_only_when_configured(
    tmp_path: Path, shared_data: Path
) -> None:
    (tmp_path / "store.yaml").write_text("store_id: s1\nprivacy:\n  keep_enrolment_photo: true\n")
    _enrol(tmp_path, shared_data)
    gallery = Gallery.open(db.connect(hub_db_path(tmp_path)), template_key_path(tmp_path))
    photo = gallery.enrolment_photo(CUSTOMER)
    assert photo is not None and photo[1] == "image/x-portable-graymap"
    assert photo[0] in {(shared_data / "faces/orl/s1" / f"{i}.pgm").read_bytes() for i in (1, 2)}
    raw = hub_db_path(tmp_path).read_bytes()
    assert photo[0][-64:] not in raw  # stored encrypted
    (tmp_path / "store.yaml").write_text("store_id: s1\n")  # the default: no photo
    _enrol(tmp_path, shared_data, "c2")
    assert gallery.enrolment_photo("c2") is None
