"""Re-enrolment, the per-customer template cap and the consent history (issue 13, item 5),
on a real migrated SQLite file with the real template cipher."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.faces import profiles
from hub.faces.gallery import TEMPLATES_DROPPED, Consent, EnrolmentRefused, Gallery
from hub.privacy import audit
from hub.privacy.erasure import erase_customer
from hub.store import db, migrations
from storesense.face_models import DLIB_RESNET
from tests.hub.conftest import unit


def _consent(ref: str, staff: str = "bob") -> Consent:
    return Consent(ref, staff_id=staff, notice_version="2026-12", method="written")


def _audit(conn: sqlite3.Connection, customer_id: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT action, detail FROM audit WHERE customer_id=? ORDER BY audit_id",
            (customer_id,),
        )
    ]


def test_reenrolment_adds_templates_and_keeps_the_earlier_consent(gallery: Gallery) -> None:
    first = gallery.enrol("R.4004", "Ann", _consent("form-1"), [(unit(1), 0.8, "a")])
    assert (first.added, first.total, first.reenrolment, first.earlier_consent) == (
        1, 1, False, None,
    )  # fmt: skip
    again = gallery.enrol(
        "R.4004", "Ann", _consent("form-2", "carol"), [(unit(2), 0.9, "b"), (unit(3), 0.7, "c")]
    )
    assert (again.added, again.total, again.reenrolment, again.earlier_consent) == (
        2, 3, True, "form-1",
    )  # fmt: skip
    assert profiles.template_count(gallery.conn, "R.4004") == 3
    consents = profiles.customer_data(gallery.conn, "R.4004")["consents"]
    assert [(c["reference"], c["staff_id"]) for c in consents] == [
        ("form-1", "bob"), ("form-2", "carol"),
    ]  # fmt: skip
    assert consents[0]["superseded_at"] is not None and consents[1]["superseded_at"] is None
    # the profile shows the consent in force: the new one
    profile = profiles.customer_data(gallery.conn, "R.4004")["profile"]
    assert (profile["consent_ref"], profile["consent_staff"]) == ("form-2", "carol")
    rows = _audit(gallery.conn, "R.4004")
    assert [a for a, _ in rows] == ["enrol", "enrol"]
    assert "consent form-1" in rows[0][1]
    assert "consent form-2" in rows[1][1] and "earlier consent form-1" in rows[1][1]
    assert "2 of 2 new templates kept, 3 in all" in rows[1][1]
    assert audit.verify(gallery.conn).ok


def test_the_cap_drops_the_lowest_quality_then_the_oldest_and_audits_it(gallery: Gallery) -> None:
    gallery.enrol(
        "c1", "Ann", _consent("form-1"),
        [(unit(1), 0.9, "old-good"), (unit(2), 0.5, "old-poor"), (unit(3), 0.7, "old-mid")],
        max_templates=3,
    )  # fmt: skip
    result = gallery.enrol(
        "c1", "Ann", _consent("form-2"),
        [(unit(4), 0.7, "new-mid"), (unit(5), 0.95, "new-best")],
        max_templates=3,
    )  # fmt: skip
    kept = [
        r[0]
        for r in gallery.conn.execute(
            "SELECT source FROM templates WHERE customer_id='c1' ORDER BY quality DESC"
        )
    ]
    # 0.5 goes (lowest); of the two 0.7s the older one goes
    assert kept == ["new-best", "old-good", "new-mid"]
    assert (result.total, result.added) == (3, 2)
    assert sorted(d.source for d in result.dropped) == ["old-mid", "old-poor"]
    dropped_rows = [d for a, d in _audit(gallery.conn, "c1") if a == TEMPLATES_DROPPED]
    assert len(dropped_rows) == 1
    assert "template cap 3" in dropped_rows[0] and "quality 0.50" in dropped_rows[0]
    # the matcher's matrix holds exactly the kept templates
    gm = gallery.load_matrix()
    assert len(gm.labels) == 3


def test_a_new_photo_worse_than_the_kept_ones_is_dropped_not_stored(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ann", _consent("f1"), [(unit(1), 0.9, "a"), (unit(2), 0.8, "b")],
                  max_templates=2)  # fmt: skip
    result = gallery.enrol("c1", "Ann", _consent("f2"), [(unit(3), 0.3, "blurry")],
                           max_templates=2)  # fmt: skip
    assert (result.added, result.total) == (0, 2)
    assert [d.source for d in result.dropped] == ["blurry"]
    assert "0 of 1 new templates kept, 2 in all" in _audit(gallery.conn, "c1")[-2][1]


def test_an_id_the_alert_could_not_carry_is_refused_before_anything_is_written(
    gallery: Gallery,
) -> None:
    for bad in ("a/b", "R 4004", ".hidden", "x" * 65, "a+b", "a#b"):
        with pytest.raises(EnrolmentRefused, match="invalid customer id"):
            gallery.enrol(bad, "N", _consent("f"), [(unit(1), 0.9, "t")])
    assert gallery.counts() == (0, 0)


def test_ids_from_before_the_rule_are_left_out_of_matching_and_named(
    gallery: Gallery, caplog: pytest.LogCaptureFixture
) -> None:
    """An id enrolled before the rule held (the old CLI took anything) cannot be alerted on;
    the gallery leaves it out of the matrix and logs it with the fix, at every load."""
    gallery.enrol("good.1", "Ann", _consent("f"), [(unit(1), 0.9, "t")], model=DLIB_RESNET)
    with db.write(gallery.conn) as c:  # what an old release could store (dlib templates only)
        c.execute(
            "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at) "
            "VALUES ('old id/1', 'Old', 'f-old', 0, 0)"
        )
        c.execute(
            "INSERT INTO templates(customer_id, vector_enc, quality, source, created_at) "
            "VALUES (?,?,?,?,0)",
            ("old id/1", gallery.cipher.encrypt("old id/1", unit(2)), 0.9, "t"),
        )
    with caplog.at_level("ERROR"):
        gm = gallery.load_matrix(DLIB_RESNET)
    assert gm.customer_ids == ["good.1"] and gm.skipped_ids == ("old id/1",)
    assert "'old id/1'" in caplog.text and "re-enrol" in caplog.text
    assert profiles.ids_breaking_rule(gallery.conn) == ["old id/1"]


def test_erasure_removes_the_consent_history(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ann", _consent("f1"), [(unit(1), 0.9, "t")])
    gallery.enrol("c1", "Ann", _consent("f2"), [(unit(2), 0.9, "t")])
    erase_customer(gallery.conn, "c1", actor="test", reason="asked")
    left = gallery.conn.execute("SELECT count(*) FROM consent_records").fetchone()[0]
    assert left == 0 and profiles.customer_data(gallery.conn, "c1")["consents"] == []


def test_migration_copies_existing_consents(tmp_path: Path) -> None:
    """A database from before schema 7 keeps its customers' consents, now as history rows."""
    path = tmp_path / "old.sqlite3"
    conn = db.connect(path)
    migrations.upgrade(conn, upto=6)  # the schema release 6 left
    with db.write(conn) as c:
        c.execute(
            "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at, "
            "consent_notice, consent_method, consent_staff) "
            "VALUES ('c1', 'Ann', 'form-old', 5, 6, '2025-01', 'written', 'bob')"
        )
    conn.close()
    conn = db.migrate_db(path)
    rows = conn.execute(
        "SELECT customer_id, reference, staff_id, given_at, superseded_at FROM consent_records"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("c1", "form-old", "bob", 5.0, None)]
