"""The keyed audit chain: every kind of tampering is found and located; lawful redaction and
retention are not mistaken for tampering."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.privacy.audit import verify
from hub.privacy.erasure import erase_customer
from hub.store import db
from tests.consent import consent
from tests.hub.conftest import unit


def _log(conn: sqlite3.Connection, n: int, *, t0: float = 1000.0) -> None:
    with db.write(conn) as c:
        for i in range(n):
            audit.append(
                c,
                at=t0 + i,
                actor=f"staff{i % 3}",
                action="view_profile",
                customer_id=f"c{i % 4}",
                detail=f"claimed alert a{i}",
            )


@pytest.fixture
def conn(db_path: Path) -> sqlite3.Connection:
    return db.connect(db_path)


def test_an_untouched_chain_verifies_and_reports_its_head(conn: sqlite3.Connection) -> None:
    _log(conn, 10)
    report = verify(conn)
    assert report.ok and report.rows == 10 and report.head_id == 10
    last = conn.execute("SELECT row_mac FROM audit WHERE audit_id=10").fetchone()[0]
    assert report.head_mac == last


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit SET detail='nothing to see' WHERE audit_id=4", "customer or detail"),
        ("UPDATE audit SET customer_id='c9' WHERE audit_id=4", "customer or detail"),
        ("UPDATE audit SET actor='mallory' WHERE audit_id=4", "time, actor or action"),
        ("UPDATE audit SET at=at+3600 WHERE audit_id=4", "time, actor or action"),
        ("UPDATE audit SET action='export' WHERE audit_id=4", "time, actor or action"),
        ("DELETE FROM audit WHERE audit_id=4", "missing"),
        (
            "UPDATE audit SET customer_id=NULL, detail='', redacted=0 WHERE audit_id=4",
            "customer or detail",
        ),
        ("UPDATE audit SET redacted=1, detail='forged' WHERE audit_id=4", "carries content"),
    ],
)
def test_each_kind_of_tampering_is_found_at_its_row(
    conn: sqlite3.Connection, sql: str, reason: str
) -> None:
    _log(conn, 8)
    conn.execute(sql)
    report = verify(conn)
    assert not report.ok
    assert report.broken_at in (4, 5)  # a deleted row shows at the one that follows it
    assert reason in report.reason
    assert report.rows == 3  # rows 1..3 still verify


def test_a_row_forged_with_a_recomputed_plain_hash_is_found(conn: sqlite3.Connection) -> None:
    """Whoever has only the database file cannot extend the chain: the MAC needs the key."""
    _log(conn, 3)
    prev = conn.execute("SELECT row_mac FROM audit WHERE audit_id=3").fetchone()[0]
    fields = [4, prev, 2000.0, "mallory", "view_profile"]
    content = hashlib.sha256(json.dumps(["content", "c1", "x"]).encode()).hexdigest()
    row = hashlib.sha256(json.dumps(["row", *fields, content]).encode()).hexdigest()
    conn.execute(
        "INSERT INTO audit(audit_id, at, actor, action, customer_id, detail, content_mac, "
        "prev_mac, row_mac) VALUES (4, 2000.0, 'mallory', 'view_profile', 'c1', 'x', ?, ?, ?)",
        (content, prev, row),
    )
    report = verify(conn)
    assert (report.ok, report.broken_at) == (False, 4)


def test_the_database_without_its_key_cannot_be_verified_or_extended(
    db_path: Path, conn: sqlite3.Connection
) -> None:
    _log(conn, 3)
    (db_path.parent / "secrets" / "audit.key").unlink()
    audit._keys.clear()  # a fresh process: the key is read from disk again
    report = verify(conn)  # a new key is made, and nothing verifies under it
    assert (report.ok, report.broken_at) == (False, 1)


def test_append_outside_a_transaction_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError, match="inside the write transaction"):
        audit.append(conn, actor="x", action="y")


def test_erasure_redacts_earlier_rows_keeps_a_tombstone_and_the_chain_verifies(
    gallery: Gallery,
) -> None:
    gallery.enrol("c1", "Ada", consent(), [(unit(1), 0.9, "t")])
    gallery.enrol("c2", "Bob", consent("consent-2"), [(unit(2), 0.9, "t")])
    audit.record_profile_view(gallery.conn, actor="alice", customer_id="c1", reason="alert a1")
    erase_customer(gallery.conn, "c1", actor="dpo", reason="asked in store")
    rows = gallery.conn.execute(
        "SELECT actor, action, customer_id, detail, redacted FROM audit ORDER BY audit_id"
    ).fetchall()
    assert [tuple(r)[:3] for r in rows] == [
        ("cli", "enrol", None),
        ("cli", "enrol", "c2"),
        ("alice", "view_profile", None),
        ("dpo", "erase", "c1"),
    ]
    assert rows[0]["detail"] == "" and rows[0]["redacted"] == 1
    assert "audit rows redacted: 2" in rows[3]["detail"]
    assert verify(gallery.conn).ok
    # the name the customer gave appears nowhere in the audit log any more
    dump = "\n".join(gallery.conn.iterdump())
    assert "Ada" not in dump


def test_purging_old_rows_keeps_the_chain_verifiable_and_a_forged_anchor_is_found(
    conn: sqlite3.Connection,
) -> None:
    _log(conn, 10, t0=1000.0)  # at = 1000..1009
    with db.write(conn) as c:
        assert audit.purge_before(c, 1004.5) == 5
    report = verify(conn)
    assert report.ok and report.rows == 5
    _log(conn, 2, t0=5000.0)  # the chain goes on from the anchor
    assert verify(conn).ok and verify(conn).head_id == 12
    # someone cuts more of the prefix by hand and points the anchor past it
    conn.execute("DELETE FROM audit WHERE audit_id <= 7")
    anchor = json.loads(
        conn.execute("SELECT value FROM meta WHERE key='audit_anchor'").fetchone()[0]
    )
    mac7 = "f" * 64
    anchor.update(id=7, mac=mac7)
    conn.execute("UPDATE meta SET value=? WHERE key='audit_anchor'", (json.dumps(anchor),))
    report = verify(conn)
    assert not report.ok and "anchor" in report.reason


def test_a_hub_file_from_before_the_chain_is_chained_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE audit (audit_id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, customer_id TEXT, detail TEXT NOT NULL DEFAULT '');
        INSERT INTO audit(at, actor, action, customer_id, detail)
            VALUES (1.0, 'cli', 'enrol', 'c1', 'consent f-1'), (2.0, 'bob', 'claim', 'c1', 'a1');
        CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT NOT NULL,
            consent_ref TEXT NOT NULL, consent_at REAL NOT NULL, created_at REAL NOT NULL);
        INSERT INTO customers VALUES ('c1', 'Ada', 'f-1', 1.0, 1.0);
        """
    )
    old.close()
    conn = db.migrate_db(path)
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert version == str(db.SCHEMA_VERSION)  # upgraded to the latest (3 when written)
    report = verify(conn)
    assert report.ok and report.rows == 2
    _log(conn, 1)
    assert verify(conn).ok and verify(conn).rows == 3
    conn.execute("UPDATE audit SET actor='eve' WHERE audit_id=1")
    assert verify(conn).broken_at == 1
    consent_cols = {r[1] for r in conn.execute("PRAGMA table_info(customers)")}
    assert {"consent_notice", "consent_method", "consent_staff", "last_visit_at"} <= consent_cols


def _forge_redaction(db_path: Path, audit_id: int) -> None:
    """What someone with only the database file does: opens it with sqlite3 (no key, no
    Storesense code) and marks a row redacted the way an erasure leaves one."""
    raw = sqlite3.connect(db_path)
    with raw:
        raw.execute(
            "UPDATE audit SET customer_id=NULL, detail='', redacted=1 WHERE audit_id=?",
            (audit_id,),
        )
    raw.close()


def test_a_redaction_forged_with_only_the_database_file_is_found_at_its_row(
    db_path: Path, conn: sqlite3.Connection
) -> None:
    _log(conn, 8)
    assert verify(conn).ok
    _forge_redaction(db_path, 4)
    report = verify(conn)
    assert (report.ok, report.broken_at, report.rows) == (False, 4, 3)
    assert "forged redaction" in report.reason


def test_a_redaction_seal_copied_from_a_genuine_erasure_does_not_fit_another_row(
    gallery: Gallery, db_path: Path
) -> None:
    """The seal binds the row it was made for: copying a real erasure's seal (and its
    tombstone id) onto another row does not make that row's blanking pass."""
    gallery.enrol("c1", "Ada", consent(), [(unit(1), 0.9, "t")])
    gallery.enrol("c2", "Bob", consent("consent-2"), [(unit(2), 0.9, "t")])
    erase_customer(gallery.conn, "c1", actor="dpo", reason="asked in store")
    assert verify(gallery.conn).ok
    raw = sqlite3.connect(db_path)
    with raw:
        by, seal = raw.execute(
            "SELECT redacted_by, redaction_mac FROM audit WHERE audit_id=1"
        ).fetchone()
        raw.execute(
            "UPDATE audit SET customer_id=NULL, detail='', redacted=1, redacted_by=?, "
            "redaction_mac=? WHERE audit_id=2",
            (by, seal),
        )
    raw.close()
    report = verify(gallery.conn)
    assert (report.ok, report.broken_at) == (False, 2)
    assert "seal does not verify" in report.reason


def test_a_real_erasure_seals_each_redaction_with_its_tombstone(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent(), [(unit(1), 0.9, "t")])
    audit.record_profile_view(gallery.conn, actor="alice", customer_id="c1", reason="alert a1")
    report = erase_customer(gallery.conn, "c1", actor="dpo", reason="asked in store")
    assert report.audit_rows_redacted == 2
    rows = gallery.conn.execute(
        "SELECT audit_id, action, redacted, redacted_by, redaction_mac FROM audit ORDER BY audit_id"
    ).fetchall()
    tomb = rows[-1]
    assert (tomb["action"], tomb["redacted"], tomb["redaction_mac"]) == ("erase", 0, None)
    assert [(r["redacted"], r["redacted_by"]) for r in rows[:-1]] == [(1, tomb["audit_id"])] * 2
    assert all(r["redaction_mac"] for r in rows[:-1])
    checked = verify(gallery.conn)
    assert checked.ok and checked.rows == 3 and checked.legacy_redactions == 0


def _old_erasure(conn: sqlite3.Connection, audit_id: int, *, tombstone: bool) -> None:
    """A redaction as releases before schema 10 wrote it: blanked, flagged, no seal; the
    erasure's tombstone after it (or, for a forgery, none)."""
    with db.write(conn) as c:
        c.execute(
            "UPDATE audit SET customer_id=NULL, detail='', redacted=1 WHERE audit_id=?",
            (audit_id,),
        )
        if tombstone:
            audit.append(c, actor="dpo", action="erase", customer_id="c1", detail="old erasure")


@pytest.mark.parametrize("tombstone", [True, False])
def test_redactions_from_before_schema_10_are_carried_forward_as_legacy_or_named(
    tmp_path: Path, tombstone: bool
) -> None:
    from hub.store import migrations

    path = tmp_path / "hub.sqlite3"
    conn = db.connect(path)
    migrations.upgrade(conn, upto=9)
    _log(conn, 5)
    _old_erasure(conn, 2, tombstone=tombstone)
    migrations.upgrade(conn)
    assert migrations.current_version(conn) >= 10
    report = verify(conn)
    if tombstone:  # a genuine-looking old erasure: accepted, counted apart as legacy
        assert (report.ok, report.rows, report.legacy_redactions) == (True, 6, 1)
        _log(conn, 1, t0=9000.0)  # the chain goes on
        assert verify(conn).ok
    else:  # no erasure followed the blanking: not sealed, and named
        assert (report.ok, report.broken_at) == (False, 2)
        assert "without an erasure's seal" in report.reason
