"""The face room's tables as other rooms need them: who is enrolled and their names, what a
person's profile holds, a customer's last visit, forgetting or expiring a profile, and the
strangers the door cameras saw.

These are the only ways another room reads or changes ``customers``, ``templates``,
``enrolment_photos`` or ``unknown_visitors`` (hub/store/tables.py): alerts name the customer
on an alert and move the last visit, the shop names the customer on the card and lists the
enrolled, privacy exports, erases and expires. Anything that changes who can be matched bumps
the ``gallery_version`` counter, which the live matcher polls to reload.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.store import db
from storesense import ids

GALLERY_VERSION = "gallery_version"


def gallery_changed(conn: sqlite3.Connection) -> int:
    """Inside a write transaction: the running hub reloads its matcher before the next match."""
    return db.next_counter(conn, GALLERY_VERSION)


def gallery_version(conn: sqlite3.Connection) -> int:
    return db.counter(conn, GALLERY_VERSION)


# ids per ``IN (?, …)``: well under SQLite's bound-variable limit (999 before 3.32)
_CHUNK = 500


def customer_names(conn: sqlite3.Connection, customer_ids: Iterable[str]) -> dict[str, str]:
    """``{customer_id: name}`` of the enrolled ones among ``customer_ids``; others are absent.

    The one way another room learns a name (the alert greeting, the customer card, the
    manager's lists): a room that joined ``customers`` itself would break when the face room
    changes how it keeps profiles.
    """
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        out.update(
            (r[0], r[1])
            for r in conn.execute(
                f"SELECT customer_id, name FROM customers WHERE customer_id IN ({marks})", part
            )
        )
    return out


def customer_name(conn: sqlite3.Connection, customer_id: str) -> str | None:
    """The enrolled customer's name; None if they are not enrolled (the name is NOT NULL)."""
    return customer_names(conn, [customer_id]).get(customer_id)


def template_count(conn: sqlite3.Connection, customer_id: str) -> int:
    """How many face templates the customer has (0: not enrolled)."""
    row = conn.execute("SELECT count(*) FROM templates WHERE customer_id=?", (customer_id,))
    return int(row.fetchone()[0])


def ids_breaking_rule(conn: sqlite3.Connection) -> list[str]:
    """Enrolled customer ids the id rule (``storesense.ids``) refuses: enrolled before the rule
    held everywhere. They are left out of matching (``Gallery.load_matrix``) until erased and
    re-enrolled under a valid id; ``storesense faces review`` lists them."""
    return [cid for cid in enrolled_ids(conn) if not ids.is_customer_id(cid)]


def enrolled_ids(conn: sqlite3.Connection) -> list[str]:
    """Every enrolled customer's id, sorted (the shop lists them with its POS customers)."""
    return [r[0] for r in conn.execute("SELECT customer_id FROM customers ORDER BY customer_id")]


def customer_data(conn: sqlite3.Connection, customer_id: str) -> dict[str, Any]:
    """What the face room holds about one person, for the right of access (hub.privacy.export).

    The profile and consent record, and which templates exist (when, how good, from which
    photo), never the vectors: 128 numbers mean nothing to a person and stay encrypted here.
    The mirror of ``forget_customer``; keys ``profile`` (None if not enrolled),
    ``face_templates`` and ``enrolment_photo_kept``.
    """
    cid = (customer_id,)
    profile = conn.execute(
        "SELECT customer_id, name, consent_ref, consent_at, consent_notice, consent_method, "
        "consent_staff, photo_consent_at, chain_consent_at, arrival_hint, created_at, "
        "last_visit_at FROM customers WHERE customer_id=?",
        cid,
    ).fetchone()
    templates = conn.execute(
        "SELECT template_id, created_at, quality, source FROM templates "
        "WHERE customer_id=? ORDER BY template_id",
        cid,
    ).fetchall()
    photo = conn.execute("SELECT 1 FROM enrolment_photos WHERE customer_id=?", cid).fetchone()
    consents = conn.execute(
        "SELECT reference, method, notice_version, staff_id, given_at, recorded_at, "
        "photo_shown, chain_consent, superseded_at FROM consent_records WHERE customer_id=? "
        "ORDER BY consent_id",
        cid,
    ).fetchall()
    return {
        "profile": dict(profile) if profile is not None else None,
        "face_templates": [dict(r) for r in templates],
        "enrolment_photo_kept": photo is not None,
        "consents": [dict(r) for r in consents],  # every consent recorded, the earlier ones too
    }


@dataclass(frozen=True)
class ArrivalIdentity:
    """What may help staff greet the right person: ``photo`` (consent given, not withdrawn,
    and a photo kept) or the customer's own ``hint``."""

    photo: bool
    hint: str | None


def arrival_identity(conn: sqlite3.Connection, customer_id: str) -> ArrivalIdentity:
    row = conn.execute(
        "SELECT c.photo_consent_at, c.arrival_hint, p.customer_id IS NOT NULL FROM customers c "
        "LEFT JOIN enrolment_photos p USING (customer_id) WHERE c.customer_id=?",
        (customer_id,),
    ).fetchone()
    if row is None:
        return ArrivalIdentity(False, None)
    return ArrivalIdentity(photo=row[0] is not None and bool(row[2]), hint=row[1])


def withdraw_photo_consent(conn: sqlite3.Connection, customer_id: str) -> bool:
    """Inside a write transaction: the photo is no longer shown; True if it had been allowed.

    The kept photo itself stays: it is kept under the enrolment consent and the store's
    ``privacy.keep_enrolment_photo``; only its display to staff was this consent.
    """
    return bool(
        conn.execute(
            "UPDATE customers SET photo_consent_at=NULL "
            "WHERE customer_id=? AND photo_consent_at IS NOT NULL",
            (customer_id,),
        ).rowcount
    )


def touch_last_visit(conn: sqlite3.Connection, customer_id: str, now: float) -> None:
    """Inside a write transaction: the customer was seen (retention counts from here)."""
    conn.execute("UPDATE customers SET last_visit_at=? WHERE customer_id=?", (now, customer_id))


def forget_customer(conn: sqlite3.Connection, customer_id: str) -> bool:
    """Inside the erasure's transaction: profile, templates and photo go; True if enrolled."""
    gone = conn.execute("DELETE FROM customers WHERE customer_id=?", (customer_id,)).rowcount
    conn.execute("DELETE FROM templates WHERE customer_id=?", (customer_id,))
    conn.execute("DELETE FROM enrolment_photos WHERE customer_id=?", (customer_id,))
    conn.execute("DELETE FROM consent_records WHERE customer_id=?", (customer_id,))
    if gone:
        gallery_changed(conn)  # the live matcher reloads without them
    return bool(gone)


@dataclass(frozen=True)
class ChainConsented:
    customer_id: str
    chain_consent_at: float
    name: str
    consent_ref: str
    notice_version: str


def chain_consented(conn: sqlite3.Connection) -> list[ChainConsented]:
    """The customers who gave the chain consent (hub.chain.customers seals theirs only)."""
    rows = conn.execute(
        "SELECT customer_id, chain_consent_at, name, consent_ref, consent_notice FROM customers "
        "WHERE chain_consent_at IS NOT NULL ORDER BY customer_id"
    ).fetchall()
    return [ChainConsented(r[0], float(r[1]), r[2], r[3] or "", r[4] or "") for r in rows]


def profiles_unseen_since(conn: sqlite3.Connection, cutoff: float) -> list[str]:
    """Customers with no visit (or, never back, no enrolment) since ``cutoff``."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT customer_id FROM customers "
            "WHERE coalesce(last_visit_at, consent_at, created_at) < ?",
            (cutoff,),
        )
    ]


def delete_profile(conn: sqlite3.Connection, customer_id: str) -> tuple[int, int]:
    """Inside a write transaction: one expired profile goes; returns (templates, photos).

    The caller bumps the gallery version once for the batch (``gallery_changed``).
    """
    templates = conn.execute("DELETE FROM templates WHERE customer_id=?", (customer_id,)).rowcount
    photos = conn.execute(
        "DELETE FROM enrolment_photos WHERE customer_id=?", (customer_id,)
    ).rowcount
    conn.execute("DELETE FROM consent_records WHERE customer_id=?", (customer_id,))
    conn.execute("DELETE FROM customers WHERE customer_id=?", (customer_id,))
    return templates, photos


def record_unknown(
    conn: sqlite3.Connection,
    track_id: str,
    camera_id: str,
    now: float,
    best_distance: float | None,
) -> None:
    """Inside a write transaction: a track that matched nobody (counted, never identified)."""
    conn.execute(
        "INSERT OR IGNORE INTO unknown_visitors(track_id, camera_id, seen_at, best_distance) "
        "VALUES (?,?,?,?)",
        (track_id, camera_id, now, best_distance),
    )


def purge_unknown_before(conn: sqlite3.Connection, cutoff: float) -> int:
    return conn.execute("DELETE FROM unknown_visitors WHERE seen_at < ?", (cutoff,)).rowcount
