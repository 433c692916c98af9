"""Which key the templates are under, and rotating it without a window where they are lost.

Rotation re-encrypts every template and photo in one transaction, so the database is always
entirely under one key; the key *file* cannot join that transaction, so the order is:

1. the new key is written to ``template.key.next`` (fsync'd);
2. one transaction re-encrypts everything and records the new key's fingerprint in ``meta``;
3. ``template.key.next`` is renamed over ``template.key``.

A crash between 2 and 3 leaves a database under the ``.next`` key, and ``open_cipher`` finishes
the rename at the next start; a crash before 2 leaves everything under the old key and a stale
``.next`` that is discarded. A process that loaded the old key (the running hub) finds the
fingerprint changed when the gallery version bumps and reloads the key file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.faces import profiles
from hub.faces.template_crypto import (
    FINGERPRINT_KEY,
    TemplateCipher,
    TemplateKeyError,
    load_or_create_key,
)
from hub.privacy import audit
from hub.store import db


def _next_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".next")


def _stored_fingerprint(conn: sqlite3.Connection) -> str | None:
    return db.get_meta(conn, FINGERPRINT_KEY)


def open_cipher(conn: sqlite3.Connection, key_path: Path) -> TemplateCipher:
    """The cipher for this database's templates; finishes an interrupted rotation."""
    nxt = _next_path(key_path)
    stored = _stored_fingerprint(conn)
    if nxt.exists():
        pending = TemplateCipher(nxt.read_bytes())
        if stored == pending.fingerprint:
            os.replace(nxt, key_path)  # step 3 of a rotation that crashed after its commit
        else:
            nxt.unlink()  # a rotation that crashed before its commit: the old key holds
    cipher = TemplateCipher(load_or_create_key(key_path))
    if stored is None:  # a file from before fingerprints: prove the key on a row, then record
        row = conn.execute("SELECT customer_id, vector_enc FROM templates LIMIT 1").fetchone()
        if row is not None:
            try:
                cipher.decrypt_bytes(row[0], row[1])
            except TemplateKeyError:
                stored = "unknown"
        if stored is None:
            with db.write(conn) as c:
                db.put_meta(c, FINGERPRINT_KEY, cipher.fingerprint, keep=True)
            stored = _stored_fingerprint(conn)
    if stored != cipher.fingerprint:
        raise TemplateKeyError(
            f"{key_path} is not the key this hub's templates are encrypted with "
            "(restore the right key file; templates cannot be read without it)"
        )
    return cipher


def rotate(conn: sqlite3.Connection, key_path: Path, *, actor: str) -> int:
    """Re-encrypt every template and enrolment photo under a fresh key; returns rows changed."""
    old = open_cipher(conn, key_path)
    nxt = _next_path(key_path)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(nxt, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    new = TemplateCipher(key)
    changed = 0
    try:
        with db.write(conn) as c:
            stored = _stored_fingerprint(c)
            if stored is not None and stored != old.fingerprint:
                raise TemplateKeyError("the key was rotated by another process meanwhile")
            # written out per table (no f-string table names): the ownership check reads them
            for select, update in (
                ("SELECT template_id, customer_id, vector_enc FROM templates",
                 "UPDATE templates SET vector_enc=? WHERE template_id=?"),
                ("SELECT customer_id, customer_id, photo_enc FROM enrolment_photos",
                 "UPDATE enrolment_photos SET photo_enc=? WHERE customer_id=?"),
            ):  # fmt: skip
                rows = c.execute(select).fetchall()
                for row in rows:
                    plain = old.decrypt_bytes(row[1], row[2])
                    c.execute(update, (new.encrypt_bytes(row[1], plain), row[0]))
                changed += len(rows)
            db.put_meta(c, FINGERPRINT_KEY, new.fingerprint)
            audit.append(c, actor=actor, action="key_rotation",
                         detail=f"template key rotated; {changed} rows re-encrypted")  # fmt: skip
            profiles.gallery_changed(c)  # running hubs reload (and re-read the key)
    except BaseException:
        nxt.unlink(missing_ok=True)
        raise
    os.replace(nxt, key_path)
    return changed
