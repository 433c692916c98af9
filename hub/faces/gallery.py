"""Customers and their face templates: consent-gated enrolment, erasure, and the search matrix.

Only the hub process and the ``storesense enroll`` command enrol here (erasure and retention go
through ``hub.faces.profiles``). Every change bumps the ``gallery_version`` counter, which the
live matcher polls to reload its in-memory matrix.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hub.faces import profiles, template_crypto
from hub.faces.template_crypto import TemplateCipher
from hub.faces.template_keys import open_cipher
from hub.privacy import audit
from hub.store import db


class EnrolmentRefused(ValueError):
    """Enrolment was refused for a reason the operator must fix (consent, photo quality…)."""


CONSENT_METHODS = ("written", "digital")
HINT_MAX = 80  # "usually wears glasses", "tall, often with a red scarf"


@dataclass(frozen=True)
class Consent:
    """The consent record enrolment needs: GDPR Art. 9 explicit consent, BIPA written release.

    ``reference`` points at the signed form or the app's consent record; the staff member who
    took it and the notice version the customer read are stored with it and audited.
    """

    reference: str
    staff_id: str
    notice_version: str
    method: str = "written"
    given_at: float | None = None
    # A separate consent item, asked for separately: "photo shown to staff at arrival". With
    # it the hub shows the kept enrolment photo on the door alert (hub.faces.gallery.
    # arrival_photo); without it at most ``hint``, the customer's own words for staff.
    photo_shown: bool = False
    hint: str | None = None

    def problems(self) -> list[str]:
        out = []
        if self.hint is not None and (
            len(self.hint.strip()) > HINT_MAX or not self.hint.isprintable()
        ):
            out.append(f"the hint for staff must be one line of at most {HINT_MAX} characters")
        if not self.reference or not self.reference.strip():
            out.append("no consent reference: enrolment needs the customer's recorded consent")
        if not self.staff_id or not self.staff_id.strip():
            out.append("no staff member recorded as taking the consent")
        if not self.notice_version or not self.notice_version.strip():
            out.append("no privacy notice version recorded with the consent")
        if self.method not in CONSENT_METHODS:
            out.append(f"consent method must be one of {', '.join(CONSENT_METHODS)}")
        return out


@dataclass(frozen=True)
class GalleryMatrix:
    """Row i of ``matrix`` belongs to ``customer_ids[labels[i]]``."""

    version: int
    labels: np.ndarray  # int64 (N,)
    matrix: np.ndarray  # float32 (N, 128)
    customer_ids: list[str]
    names: dict[str, str]


class Gallery:
    def __init__(
        self, conn: sqlite3.Connection, cipher: TemplateCipher, *, key_path: Path | None = None
    ) -> None:
        self.conn = conn
        self.cipher = cipher
        self.key_path = key_path  # given: a rotated key is picked up on the next reload

    @classmethod
    def open(cls, conn: sqlite3.Connection, key_path: Path) -> Gallery:
        return cls(conn, open_cipher(conn, key_path), key_path=key_path)

    def version(self) -> int:
        return profiles.gallery_version(self.conn)

    def enrol(
        self,
        customer_id: str,
        name: str,
        consent: Consent,
        templates: list[tuple[np.ndarray, float, str]],
        *,
        actor: str = "cli",
        photo: tuple[bytes, str] | None = None,
    ) -> int:
        """Store a customer's templates (vector, quality, source label); returns how many.

        ``photo`` (bytes, media type) is kept only where the store opted in
        (``privacy.keep_enrolment_photo``); the caller decides, this encrypts it.
        """
        problems = consent.problems()
        if problems:
            raise EnrolmentRefused("; ".join(problems))
        if not templates:
            raise EnrolmentRefused("no usable face template to store")
        if consent.photo_shown and photo is None:
            # Decided: the photo consent never makes the hub keep a photo the store did not
            # opt in to keeping (privacy.keep_enrolment_photo): enrolment refuses instead.
            raise EnrolmentRefused(
                "the 'photo shown to staff at arrival' consent needs a kept enrolment photo: "
                "this store does not keep photos (privacy.keep_enrolment_photo is off); enrol "
                "without it (a hint for staff is possible)"
            )
        hint = consent.hint.strip() if consent.hint and consent.hint.strip() else None
        now = time.time()
        given_at = now if consent.given_at is None else consent.given_at
        with db.write(self.conn) as c:
            self._check_key(c)
            c.execute(
                "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at, "
                "consent_notice, consent_method, consent_staff, last_visit_at, "
                "photo_consent_at, arrival_hint) "
                "VALUES (?,?,?,?,?,?,?,?,NULL,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
                "name=excluded.name, consent_ref=excluded.consent_ref, "
                "consent_at=excluded.consent_at, consent_notice=excluded.consent_notice, "
                "consent_method=excluded.consent_method, consent_staff=excluded.consent_staff, "
                "photo_consent_at=excluded.photo_consent_at, arrival_hint=excluded.arrival_hint",
                (customer_id, name, consent.reference.strip(), given_at, now,
                 consent.notice_version, consent.method, consent.staff_id,
                 given_at if consent.photo_shown else None, hint),
            )  # fmt: skip
            for vector, quality, source in templates:
                c.execute(
                    "INSERT INTO templates(customer_id, vector_enc, quality, source, created_at) "
                    "VALUES (?,?,?,?,?)",
                    (customer_id, self.cipher.encrypt(customer_id, vector), quality, source, now),
                )
            if photo is not None:
                c.execute(
                    "INSERT INTO enrolment_photos(customer_id, photo_enc, media_type, created_at) "
                    "VALUES (?,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
                    "photo_enc=excluded.photo_enc, media_type=excluded.media_type, "
                    "created_at=excluded.created_at",
                    (customer_id, self.cipher.encrypt_bytes(customer_id, photo[0]), photo[1], now),
                )
            audit.append(
                c, at=now, actor=actor, action="enrol", customer_id=customer_id,
                detail=(
                    f"{len(templates)} templates{'; photo kept' if photo else ''}; consent "
                    f"{consent.reference.strip()} ({consent.method}, notice "
                    f"{consent.notice_version}, taken by {consent.staff_id}); photo shown to "
                    f"staff at arrival: {'yes' if consent.photo_shown else 'no'}"
                    f"{'; hint for staff given' if hint else ''}"
                ),
            )  # fmt: skip
            profiles.gallery_changed(c)
        return len(templates)

    def _check_key(self, c: sqlite3.Connection) -> None:
        """Refuse to write with a key the database no longer uses (rotated meanwhile)."""
        stored = db.get_meta(c, template_crypto.FINGERPRINT_KEY)
        if stored is None:
            db.put_meta(c, template_crypto.FINGERPRINT_KEY, self.cipher.fingerprint)
        elif stored != self.cipher.fingerprint:
            raise template_crypto.TemplateKeyError(
                "the template key was rotated since this process loaded it: run again"
            )

    def enrolment_photo(self, customer_id: str) -> tuple[bytes, str] | None:
        row = self.conn.execute(
            "SELECT photo_enc, media_type FROM enrolment_photos WHERE customer_id=?",
            (customer_id,),
        ).fetchone()
        if row is None:
            return None
        return self.cipher.decrypt_bytes(customer_id, row["photo_enc"]), row["media_type"]

    def customer_name(self, customer_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT name FROM customers WHERE customer_id=?", (customer_id,)
        ).fetchone()
        return row["name"] if row else None

    def counts(self) -> tuple[int, int]:
        customers = self.conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        templates = self.conn.execute("SELECT count(*) FROM templates").fetchone()[0]
        return int(customers), int(templates)

    def load_matrix(self) -> GalleryMatrix:
        version = self.version()
        if self.key_path is not None:
            stored = db.get_meta(self.conn, template_crypto.FINGERPRINT_KEY)
            if stored is not None and stored != self.cipher.fingerprint:
                self.cipher = open_cipher(self.conn, self.key_path)  # rotated meanwhile
        rows = self.conn.execute(
            "SELECT t.customer_id, t.vector_enc, c.name FROM templates t "
            "JOIN customers c USING (customer_id) ORDER BY t.customer_id, t.template_id"
        ).fetchall()
        customer_ids: list[str] = []
        index: dict[str, int] = {}
        names: dict[str, str] = {}
        labels = np.empty(len(rows), dtype=np.int64)
        matrix = np.empty((len(rows), 128), dtype=np.float32)
        for i, row in enumerate(rows):
            cid = row["customer_id"]
            if cid not in index:
                index[cid] = len(customer_ids)
                customer_ids.append(cid)
                names[cid] = row["name"]
            labels[i] = index[cid]
            matrix[i] = self.cipher.decrypt(cid, row["vector_enc"])
        return GalleryMatrix(version, labels, matrix, customer_ids, names)


def arrival_photo(
    conn: sqlite3.Connection, key_path: Path, customer_id: str
) -> tuple[bytes, str] | None:
    """The enrolment photo, decrypted, if the customer gave the "photo shown to staff at
    arrival" consent (and not withdrawn it) and a photo is kept; None otherwise.

    Decrypted per call and never cached: the caller (``hub.api``, op ``arrival_photo``) hands
    it to one phone for one alert and audits that display.
    """
    if not profiles.arrival_identity(conn, customer_id).photo:
        return None
    return Gallery.open(conn, key_path).enrolment_photo(customer_id)
