"""Templates at rest: unreadable without the key, and the key can be rotated without a window
in which a crash loses them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hub.faces import template_keys
from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, TemplateKeyError
from hub.privacy.erasure import erase_customer
from hub.store import db
from tests.consent import consent
from tests.hub.conftest import unit

N = 20


def _files(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


@pytest.fixture
def enrolled(db_path: Path) -> tuple[Gallery, Path, list[np.ndarray]]:
    key_path = db_path.parent / "secrets" / "template.key"
    gallery = Gallery.open(db.connect(db_path), key_path)
    vectors = [unit(100 + i) for i in range(N)]
    for i, v in enumerate(vectors):
        gallery.enrol(f"c{i}", f"Customer {i}", consent(f"f-{i}"), [(v, 0.9, "t")])
    return gallery, key_path, vectors


def test_the_database_file_alone_reveals_no_template(enrolled, db_path: Path) -> None:
    """Not the vector, not a quarter of it, in the main file or its WAL."""
    _, _, vectors = enrolled
    raw = _files(db_path)
    for v in vectors:
        plain = np.asarray(v, dtype="<f4").tobytes()
        for start in range(0, len(plain), 32):
            assert plain[start : start + 32] not in raw
    # and every stored blob is ciphertext of the right size: nonce + 512 bytes + GCM tag
    sizes = {len(r[0]) for r in enrolled[0].conn.execute("SELECT vector_enc FROM templates")}
    assert sizes == {12 + 128 * 4 + 16}


def test_rotation_re_encrypts_everything_and_the_old_key_no_longer_opens_it(
    enrolled, db_path: Path
) -> None:
    gallery, key_path, vectors = enrolled
    old_key = key_path.read_bytes()
    version = gallery.version()
    assert template_keys.rotate(gallery.conn, key_path, actor="dpo") == N
    assert key_path.read_bytes() != old_key and oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert not (key_path.parent / "template.key.next").exists()
    old = TemplateCipher(old_key)
    row = gallery.conn.execute("SELECT customer_id, vector_enc FROM templates LIMIT 1").fetchone()
    with pytest.raises(TemplateKeyError):
        old.decrypt(row[0], row[1])
    # a running gallery that loaded the old key picks up the new one on its next reload
    assert gallery.version() > version
    gm = gallery.load_matrix()
    for cid, v in zip(gm.customer_ids, gm.matrix, strict=True):
        assert np.allclose(v, vectors[int(cid[1:])])
    action = gallery.conn.execute(
        "SELECT action, detail FROM audit ORDER BY audit_id DESC"
    ).fetchone()
    assert action[0] == "key_rotation" and f"{N} rows" in action[1]


def test_a_writer_holding_the_old_key_cannot_add_rows_after_a_rotation(enrolled) -> None:
    gallery, key_path, _ = enrolled
    stale = Gallery(gallery.conn, gallery.cipher)  # e.g. an `enroll` started before rotation
    template_keys.rotate(gallery.conn, key_path, actor="dpo")
    with pytest.raises(TemplateKeyError, match="rotated"):
        stale.enrol("late", "Late", consent(), [(unit(7), 0.9, "t")])
    assert gallery.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == N


def test_a_crash_after_the_commit_is_finished_at_the_next_start(
    enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection at the one step that cannot join the transaction: the key rename."""
    gallery, key_path, vectors = enrolled
    real_replace = os.replace

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(template_keys.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        template_keys.rotate(gallery.conn, key_path, actor="dpo")
    monkeypatch.setattr(template_keys.os, "replace", real_replace)
    assert (key_path.parent / "template.key.next").exists()
    reopened = Gallery.open(gallery.conn, key_path)  # the next start
    assert not (key_path.parent / "template.key.next").exists()
    gm = reopened.load_matrix()
    assert len(gm.labels) == N and np.allclose(gm.matrix[0], vectors[int(gm.customer_ids[0][1:])])


def test_a_crash_before_the_commit_keeps_the_old_key(enrolled) -> None:
    gallery, key_path, _ = enrolled
    old_key = key_path.read_bytes()
    (key_path.parent / "template.key.next").write_bytes(os.urandom(32))  # written, never used
    reopened = Gallery.open(gallery.conn, key_path)
    assert key_path.read_bytes() == old_key
    assert not (key_path.parent / "template.key.next").exists()
    assert len(reopened.load_matrix().labels) == N


def test_the_wrong_key_file_is_refused_with_a_clear_message(enrolled) -> None:
    gallery, key_path, _ = enrolled
    key_path.write_bytes(os.urandom(32))  # a restore from the wrong backup
    with pytest.raises(TemplateKeyError, match="not the key this hub's templates"):
        Gallery.open(gallery.conn, key_path)


def test_an_opt_in_enrolment_photo_is_encrypted_and_goes_with_erasure(
    enrolled, db_path: Path
) -> None:
    gallery, key_path, _ = enrolled
    photo = os.urandom(3000) + b"JFIF-looking bytes of a face photo"
    gallery.enrol("p1", "Pat", consent("f-p"), [(unit(5), 0.9, "t")], photo=(photo, "image/jpeg"))
    assert photo[-40:] not in _files(db_path)
    assert gallery.enrolment_photo("p1") == (photo, "image/jpeg")
    template_keys.rotate(gallery.conn, key_path, actor="dpo")  # photos are rotated too
    assert Gallery.open(gallery.conn, key_path).enrolment_photo("p1") == (photo, "image/jpeg")
    assert erase_customer(gallery.conn, "p1", actor="dpo", reason="erasure request").anything
    assert gallery.conn.execute("SELECT count(*) FROM enrolment_photos").fetchone()[0] == 0
