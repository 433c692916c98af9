"""`storesense enroll` (issue 13, item 5), on real photos and real weights: the consent taker
must be an existing, active staff account; re-enrolling reports the true template count and
records the new consent next to the earlier one; the per-customer cap drops, audited."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from hub.staff.accounts import set_active
from hub.store import db
from storesense_tools.cli import main
from tests.consent import consent_taker


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "store.yaml").write_text("store_id: s1\nprivacy: {max_templates_per_customer: 3}\n")
    assert main(["--home", str(tmp_path), "db", "migrate"]) == 0
    consent_taker(tmp_path / "hub.sqlite3", "bob")
    return tmp_path


def _photos(shared_data: Path, subject: str, *numbers: int) -> list[str]:
    return [str(shared_data / "faces" / "orl" / subject / f"{i}.pgm") for i in numbers]


def _enrol(home: Path, customer: str, ref: str, staff: str, photos: list[str]) -> int:
    return main(
        ["--home", str(home), "enroll", "--customer", customer, "--name", "Ann",
         "--consent", ref, "--staff", staff, *photos]
    )  # fmt: skip


def _rows(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "hub.sqlite3") as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_a_consent_taker_without_a_staff_account_is_refused(
    home: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _enrol(home, "c1", "form-1", "nobody", _photos(shared_data, "s1", 1)) == 2
    err = capsys.readouterr().err
    assert "consent taker 'nobody' is not a staff account" in err
    assert _rows(home, "SELECT count(*) FROM customers") == [(0,)]


def test_a_disabled_staff_account_cannot_take_consent(
    home: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    consent_taker(home / "hub.sqlite3", "dora")
    conn = db.connect(home / "hub.sqlite3")
    assert set_active(conn, "dora", False, actor="test")
    conn.close()
    assert _enrol(home, "c1", "form-1", "dora", _photos(shared_data, "s1", 1)) == 2
    assert "consent taker 'dora' is a disabled staff account" in capsys.readouterr().err
    assert _rows(home, "SELECT count(*) FROM customers") == [(0,)]


def test_an_invalid_customer_id_is_refused_before_any_photo_is_read(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(home / "not-there.jpg")  # would be "unreadable image" if it were read
    assert _enrol(home, "R 4004", "form-1", "bob", [missing]) == 2
    err = capsys.readouterr().err
    assert "invalid customer id 'R 4004'" in err and "unreadable" not in err


def test_reenrolment_counts_truly_keeps_both_consents_and_caps(
    home: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _enrol(home, "R.4004", "form-1", "bob", _photos(shared_data, "s1", 1, 2)) == 0
    first = capsys.readouterr().out
    assert "enrolled R.4004 with 2 template(s)" in first
    consent_taker(home / "hub.sqlite3", "carol")
    assert _enrol(home, "R.4004", "form-2", "carol", _photos(shared_data, "s1", 6, 10)) == 0
    out = capsys.readouterr().out
    qualities = [float(q) for q in re.findall(r"^ok .*: quality (\d\.\d\d)$", first + out, re.M)]
    assert len(qualities) == 4
    # four photos, cap 3: the truth, not "with 2 template(s)"
    assert "re-enrolled R.4004:" in out and "now with 3 template(s) (at most 3)" in out
    assert "consent form-2 recorded as the one in force; earlier consent form-1 kept" in out
    # the lowest of the four photos' qualities goes (one of the new ones, with these photos)
    assert "re-enrolled R.4004: 1 new template(s) kept" in out
    assert "dropped 1 lowest-quality template(s)" in out
    assert f"(3): quality {min(qualities):.2f} (audited)" in out, (qualities, out)
    assert _rows(home, "SELECT count(*) FROM templates WHERE customer_id='R.4004'") == [(3,)]
    assert _rows(
        home,
        "SELECT reference, staff_id, superseded_at IS NOT NULL FROM consent_records "
        "ORDER BY consent_id",
    ) == [("form-1", "bob", 1), ("form-2", "carol", 0)]
    actions = _rows(home, "SELECT action FROM audit WHERE customer_id='R.4004' ORDER BY audit_id")
    assert actions == [("enrol",), ("enrol",), ("templates_dropped",)]
    assert main(["--home", str(home), "audit", "verify"]) == 0
