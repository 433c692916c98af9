"""Customers and their face templates: consent-gated enrolment, erasure, and the search matrix.

Only the hub process and the ``storesense enroll`` command enrol here (erasure and retention go
through ``hub.faces.profiles``). Every change bumps the ``gallery_version`` counter, which the
live matcher polls to reload its in-memory matrix.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hub.faces import profiles, template_crypto
from hub.faces.template_crypto import TemplateCipher
from hub.faces.template_keys import open_cipher
from hub.privacy import audit
from hub.store import db
from storesense import ids
from storesense.face_models import DEFAULT_MODEL
from storesense.privacy_config import DEFAULT_MAX_TEMPLATES

log = logging.getLogger(__name__)


class EnrolmentRefused(ValueError):
    """Enrolment was refused for a reason the operator must fix (consent, photo quality…)."""


CONSENT_METHODS = ("written", "digital")
TEMPLATES_DROPPED = "templates_dropped"  # audit action: the per-customer cap removed some
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
    # Another separate item: "my face template may go to the chain's other stores" (issue 16,
    # docs/chain.md). Without it nothing about the customer's face leaves this store.
    chain: bool = False

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
class DroppedTemplate:
    template_id: int
    quality: float
    source: str
    created_at: float


@dataclass(frozen=True)
class EnrolResult:
    """What an enrolment left in the gallery: the true count, not just this call's photos."""

    customer_id: str
    added: int  # this call's templates still kept after the cap
    total: int  # the customer's templates now
    dropped: tuple[DroppedTemplate, ...]  # removed by the cap (earlier or this call's)
    reenrolment: bool
    earlier_consent: str | None  # reference of the consent this one superseded


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _dropped(d: DroppedTemplate, *, new: bool) -> str:
    made = "from this enrolment" if new else f"made {_when(d.created_at)}"
    return f"#{d.template_id} (quality {d.quality:.2f}, {d.source}, {made})"


@dataclass(frozen=True)
class GalleryMatrix:
    """Row i of ``matrix`` belongs to ``customer_ids[labels[i]]``."""

    version: int
    labels: np.ndarray  # int64 (N,)
    matrix: np.ndarray  # float32 (N, 128)
    customer_ids: list[str]
    names: dict[str, str]
    # enrolled under an id the alert message cannot carry (before the one id rule): left out
    # of matching, named in the hub log at every load (docs/privacy.md says how to fix one)
    skipped_ids: tuple[str, ...] = ()


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
        max_templates: int = DEFAULT_MAX_TEMPLATES,
        model: str = DEFAULT_MODEL,
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> EnrolResult:
        """Store a customer's templates (vector, quality, source label); say what now exists.

        ``model``: the embedding model the vectors came from (storesense.face_models); the
        hub matches only the templates of the model it runs.

        ``photo`` (bytes, media type) is kept only where the store opted in
        (``privacy.keep_enrolment_photo``); the caller decides, this encrypts it.

        Re-enrolment (the id exists) adds the new templates to the earlier ones and records the
        new consent as the one in force; the earlier consent stays in ``consent_records``
        (superseded) and the audit row names both. At most ``max_templates``
        (``privacy.max_templates_per_customer``) are kept: the lowest-quality ones go first,
        the oldest among equals, and the audit row says which were dropped. The customer id
        must follow the one rule (``storesense.ids``): an id the alert message could not carry
        would be enrolled and then never alerted on.

        ``also`` runs inside the enrolment's transaction (the chain room records the message
        that brought a chain customer's templates as seen, atomically with them).

        The consent taker is NOT looked up here (the face room does not read staff accounts):
        ``storesense_tools.enrolment.enrol_customer``, the operator's path, checks it.
        """
        try:
            ids.validate_customer_id(customer_id)
        except ids.InvalidId as exc:
            raise EnrolmentRefused(str(exc)) from None
        if max_templates < 1:
            raise ValueError("max_templates must be at least 1")
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
        reference = consent.reference.strip()
        with db.write(self.conn) as c:
            self._check_key(c)
            earlier = c.execute(
                "SELECT consent_id, reference, method, notice_version, staff_id, given_at "
                "FROM consent_records WHERE customer_id=? AND superseded_at IS NULL "
                "ORDER BY consent_id DESC LIMIT 1",
                (customer_id,),
            ).fetchone()
            existed = (
                c.execute("SELECT 1 FROM customers WHERE customer_id=?", (customer_id,)).fetchone()
                is not None
            )
            c.execute(
                "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at, "
                "consent_notice, consent_method, consent_staff, last_visit_at, "
                "photo_consent_at, arrival_hint, chain_consent_at) "
                "VALUES (?,?,?,?,?,?,?,?,NULL,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
                "name=excluded.name, consent_ref=excluded.consent_ref, "
                "consent_at=excluded.consent_at, consent_notice=excluded.consent_notice, "
                "consent_method=excluded.consent_method, consent_staff=excluded.consent_staff, "
                "photo_consent_at=excluded.photo_consent_at, arrival_hint=excluded.arrival_hint, "
                "chain_consent_at=excluded.chain_consent_at",
                (customer_id, name, reference, given_at, now,
                 consent.notice_version, consent.method, consent.staff_id,
                 given_at if consent.photo_shown else None, hint,
                 given_at if consent.chain else None),
            )  # fmt: skip
            c.execute(
                "UPDATE consent_records SET superseded_at=? "
                "WHERE customer_id=? AND superseded_at IS NULL",
                (now, customer_id),
            )
            c.execute(
                "INSERT INTO consent_records(customer_id, reference, method, notice_version, "
                "staff_id, given_at, recorded_at, photo_shown, chain_consent) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (customer_id, reference, consent.method, consent.notice_version,
                 consent.staff_id, given_at, now, int(consent.photo_shown), int(consent.chain)),
            )  # fmt: skip
            new_ids = [
                int(
                    c.execute(
                        "INSERT INTO templates(customer_id, vector_enc, quality, source, "
                        "created_at, model) VALUES (?,?,?,?,?,?)",
                        (customer_id, self.cipher.encrypt(customer_id, vector), quality,
                         source, now, model),
                    ).lastrowid  # type: ignore[arg-type]
                )
                for vector, quality, source in templates
            ]  # fmt: skip
            dropped = self._cap_templates(c, customer_id, max_templates, model)
            total = int(
                c.execute(
                    "SELECT count(*) FROM templates WHERE customer_id=? AND model=?",
                    (customer_id, model),
                ).fetchone()[0]
            )
            if photo is not None:
                c.execute(
                    "INSERT INTO enrolment_photos(customer_id, photo_enc, media_type, created_at) "
                    "VALUES (?,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
                    "photo_enc=excluded.photo_enc, media_type=excluded.media_type, "
                    "created_at=excluded.created_at",
                    (customer_id, self.cipher.encrypt_bytes(customer_id, photo[0]), photo[1], now),
                )
            gone = {d.template_id for d in dropped}
            added = sum(1 for t in new_ids if t not in gone)
            before = (
                f"; re-enrolment: earlier consent {earlier['reference']} ({earlier['method']}, "
                f"notice {earlier['notice_version']}, taken by {earlier['staff_id']}, given "
                f"{_when(earlier['given_at'])}) kept in the consent history"
                if earlier is not None
                else ("; re-enrolment" if existed else "")
            )
            audit.append(
                c, at=now, actor=actor, action="enrol", customer_id=customer_id,
                detail=(
                    f"{added} of {len(templates)} new templates kept, {total} in all (at most "
                    f"{max_templates}){'; photo kept' if photo else ''}; consent "
                    f"{reference} ({consent.method}, notice "
                    f"{consent.notice_version}, taken by {consent.staff_id}); photo shown to "
                    f"staff at arrival: {'yes' if consent.photo_shown else 'no'}"
                    f"{'; hint for staff given' if hint else ''}; shared with the chain's "
                    f"stores: {'yes' if consent.chain else 'no'}{before}"
                ),
            )  # fmt: skip
            if dropped:
                audit.append(
                    c, at=now, actor=actor, action=TEMPLATES_DROPPED, customer_id=customer_id,
                    detail=(
                        f"template cap {max_templates}: dropped "
                        + ", ".join(_dropped(d, new=d.template_id in new_ids) for d in dropped)
                    ),
                )  # fmt: skip
            profiles.gallery_changed(c)
            if also is not None:
                also(c)
        return EnrolResult(
            customer_id=customer_id,
            added=added,
            total=total,
            dropped=tuple(dropped),
            reenrolment=existed,
            earlier_consent=earlier["reference"] if earlier is not None else None,
        )

    @staticmethod
    def _cap_templates(
        c: sqlite3.Connection, customer_id: str, max_templates: int, model: str
    ) -> list[DroppedTemplate]:
        """Inside the enrolment's transaction: delete all but the ``max_templates`` best of
        ``model`` (another model's templates are not compared with these, nor capped by them).

        Lowest quality goes first; among equal qualities the oldest (lowest id) goes, so a
        re-enrolment with equally good photos refreshes the gallery instead of ignoring them.
        """
        rows = c.execute(
            "SELECT template_id, quality, source, created_at FROM templates WHERE customer_id=? "
            "AND model=? ORDER BY quality DESC, template_id DESC",
            (customer_id, model),
        ).fetchall()
        dropped = [
            DroppedTemplate(int(r[0]), float(r[1]), str(r[2]), float(r[3]))
            for r in rows[max_templates:]
        ]
        for d in dropped:
            c.execute("DELETE FROM templates WHERE template_id=?", (d.template_id,))
        return dropped

    def _check_key(self, c: sqlite3.Connection) -> None:
        """Refuse to write with a key the database no longer uses (rotated meanwhile)."""
        stored = db.get_meta(c, template_crypto.FINGERPRINT_KEY)
        if stored is None:
            db.put_meta(c, template_crypto.FINGERPRINT_KEY, self.cipher.fingerprint)
        elif stored != self.cipher.fingerprint:
            raise template_crypto.TemplateKeyError(
                "the template key was rotated since this process loaded it: run again"
            )

    def customer_templates(
        self, customer_id: str, model: str
    ) -> list[tuple[np.ndarray, float, str]]:
        """A customer's templates of ``model``, decrypted (vector, quality, source): for
        sealing them for another store of the chain (hub.chain.customers), never stored so."""
        rows = self.conn.execute(
            "SELECT vector_enc, quality, source FROM templates WHERE customer_id=? AND model=? "
            "ORDER BY template_id",
            (customer_id, model),
        ).fetchall()
        return [(self.cipher.decrypt(customer_id, r[0]), float(r[1]), str(r[2])) for r in rows]

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

    def load_matrix(self, model: str = DEFAULT_MODEL) -> GalleryMatrix:
        """Every matchable template of ``model``, decrypted; other models' are named in the
        log (their customers need re-enrolment with the model this hub runs)."""
        version = self.version()
        if self.key_path is not None:
            stored = db.get_meta(self.conn, template_crypto.FINGERPRINT_KEY)
            if stored is not None and stored != self.cipher.fingerprint:
                self.cipher = open_cipher(self.conn, self.key_path)  # rotated meanwhile
        rows = self.conn.execute(
            "SELECT t.customer_id, t.vector_enc, c.name FROM templates t "
            "JOIN customers c USING (customer_id) WHERE t.model=? "
            "ORDER BY t.customer_id, t.template_id",
            (model,),
        ).fetchall()
        other = self.conn.execute(
            "SELECT count(DISTINCT customer_id) FROM templates WHERE model<>? AND customer_id "
            "NOT IN (SELECT customer_id FROM templates WHERE model=?)",
            (model, model),
        ).fetchone()[0]
        if other:
            log.error(
                "%d enrolled customer(s) have templates of another face model only and are NOT "
                "matched by this hub (recognition.model %s): re-enrol them (docs/face-models.md)",
                other, model,
            )  # fmt: skip
        skipped = sorted(
            {r["customer_id"] for r in rows if not ids.is_customer_id(r["customer_id"])}
        )
        if skipped:
            log.error(
                "%d enrolled customer id(s) break the id rule (%s) and are NOT matched: %s; "
                "export, erase and re-enrol each under a valid id (docs/privacy.md)",
                len(skipped), ids.CUSTOMER_ID_RULE, ", ".join(map(repr, skipped)),
            )  # fmt: skip
            rows = [r for r in rows if r["customer_id"] not in set(skipped)]
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
        return GalleryMatrix(version, labels, matrix, customer_ids, names, tuple(skipped))


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
