import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hub.alerts import claims as alerts
from hub.faces.gallery import EnrolmentRefused, Gallery
from hub.faces.template_crypto import TemplateCipher, TemplateKeyError, load_or_create_key
from hub.privacy.erasure import erase_customer
from hub.store import db
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit


def test_consent_is_required(gallery: Gallery) -> None:
    with pytest.raises(EnrolmentRefused, match="consent"):
        gallery.enrol("c1", "Ada", consent("  "), [(unit(1), 0.9, "t")])
    assert gallery.counts() == (0, 0)


def test_templates_are_encrypted_at_rest(gallery: Gallery, db_path: Path) -> None:
    vec = unit(7)
    gallery.enrol("c1", "Ada", consent("consent-1"), [(vec, 0.9, "t")])
    blob = sqlite3.connect(db_path).execute("SELECT vector_enc FROM templates").fetchone()[0]
    assert vec.astype("<f4").tobytes() not in blob
    assert vec.astype("<f4").tobytes()[:16] not in blob
    gm = gallery.load_matrix()
    np.testing.assert_array_equal(gm.matrix[0], vec)
    assert gm.customer_ids == ["c1"]


def test_template_moved_to_another_customer_fails_to_decrypt(
    gallery: Gallery, tmp_path: Path
) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    gallery.enrol("c2", "Bob", consent("consent-2"), [(unit(2), 0.9, "t")])
    gallery.conn.execute("UPDATE templates SET customer_id='c2' WHERE customer_id='c1'")
    with pytest.raises(TemplateKeyError, match="tampered"):
        gallery.load_matrix()


def test_erasure_removes_profile_and_templates_and_is_audited(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "a"), (unit(2), 0.8, "b")])
    with db.write(gallery.conn) as c:
        alerts.record_match(
            c,
            Topics("s1"),
            customer_id="c1",
            camera_id="door-1",
            first_usable_at=1.0,
            now=1.0,
            cooldown_s=60,
            alert_ttl_s=60,
        )
    v_before = gallery.version()
    assert erase_customer(gallery.conn, "c1", actor="dpo", reason="customer asked").anything
    assert gallery.counts() == (0, 0)
    for table in ("alerts", "visits"):
        assert gallery.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    # the retained alert (it names the customer) is cleared on the broker, no copy kept
    rows = gallery.conn.execute("SELECT topic, payload, retain FROM outbox").fetchall()
    assert [(bytes(r["payload"]), r["retain"]) for r in rows] == [(b"", 1)]
    assert "/alerts/" in rows[0]["topic"]
    assert gallery.version() > v_before
    audit = gallery.conn.execute(
        "SELECT actor, action, customer_id, redacted FROM audit ORDER BY audit_id"
    ).fetchall()
    # earlier rows keep who did what, lose whom; the erasure row is the tombstone
    assert [tuple(r) for r in audit] == [
        ("cli", "enrol", None, 1),
        ("hub", "match", None, 1),
        ("dpo", "erase", "c1", 0),
    ]
    assert not erase_customer(gallery.conn, "c1", actor="cli", reason="erasure request").anything


def test_key_file_is_private_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "template.key"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(TemplateKeyError, match="32 bytes"):
        load_or_create_key(path)
    TemplateCipher(key)  # a good key builds a cipher
