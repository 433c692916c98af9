"""Enrolment: consent first, one clear face per photo, templates only.

Composes the edge face pipeline (the same one the door camera runs, so gallery templates and
live embeddings come from identical code) with the hub gallery.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from edge.entrance.face_pipeline import FaceImageError, FacePipeline
from hub.faces.gallery import Consent, EnrolmentRefused, EnrolResult, Gallery
from hub.privacy.consent import consent_taker_problem
from storesense import ids
from storesense.privacy_config import DEFAULT_MAX_TEMPLATES


@dataclass(frozen=True)
class PhotoVerdict:
    path: Path
    accepted: bool
    reason: str


@dataclass(frozen=True)
class Enrolment:
    verdicts: list[PhotoVerdict]
    result: EnrolResult  # the gallery's true state afterwards (re-enrolment, cap, consent)


def enrol_customer(
    gallery: Gallery,
    pipeline: FacePipeline,
    *,
    customer_id: str,
    name: str,
    consent: Consent,
    images: list[Path],
    actor: str = "cli",
    keep_photo: bool = False,
    max_templates: int = DEFAULT_MAX_TEMPLATES,
) -> Enrolment:
    """Enrol from photos; raises ``EnrolmentRefused`` unless at least one photo is usable.

    Checked before any photo is read: the customer id follows the one id rule
    (``storesense.ids``: an id the door alert could not carry is refused here, not at the
    door), the consent record is complete, and the staff member who took the consent has an
    existing, active staff account. Re-enrolling an existing id adds templates (at most
    ``max_templates`` are kept) and records the new consent; the result says the true count.

    A photo is refused when it has no face, several faces (which one is the customer?), or a
    face that fails the quality gate. By default no image is stored: only the embedding and a
    SHA-256 of the file, so an auditor can tell which photo a template came from. With
    ``keep_photo`` (the store's opt-in) the best accepted photo is kept, encrypted; only then
    may the consent carry ``photo_shown`` (the photo is shown on the door alert).
    """
    problems = []
    if not ids.is_customer_id(customer_id):
        problems.append(f"invalid customer id {customer_id!r}: {ids.CUSTOMER_ID_RULE}")
    problems += consent.problems()
    if consent.staff_id.strip():  # an empty one is already among ``consent.problems()``
        taker = consent_taker_problem(gallery.conn, consent.staff_id)
        if taker is not None:
            problems.append(taker)
    if consent.photo_shown and not keep_photo:
        # Decided (issue 17): the "photo shown to staff at arrival" consent never makes the
        # hub keep a photo; it needs the store's own opt-in to keeping one.
        problems.append(
            "the 'photo shown to staff at arrival' consent needs a kept enrolment photo, and "
            "this store does not keep photos (privacy.keep_enrolment_photo: false)"
        )
    if problems:  # before any photo is even read
        raise EnrolmentRefused("refusing to enrol: " + "; ".join(problems))
    if not images:
        raise EnrolmentRefused("no photos given")
    verdicts: list[PhotoVerdict] = []
    templates = []
    best_photo: tuple[float, Path] | None = None
    for path in images:
        try:
            observations = pipeline.observations_from_image_file(path)
        except FaceImageError as exc:
            verdicts.append(PhotoVerdict(path, False, f"unreadable image: {exc}"))
            continue
        if not observations:
            verdicts.append(PhotoVerdict(path, False, "no face found"))
            continue
        if len(observations) > 1:
            verdicts.append(
                PhotoVerdict(
                    path, False, f"{len(observations)} faces: use a photo with the customer alone"
                )
            )
            continue
        obs = observations[0]
        if not obs.quality.passed or obs.embedding is None:
            why = ", ".join(obs.quality.reasons) or "quality gate"
            verdicts.append(PhotoVerdict(path, False, f"face fails the quality gate ({why})"))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        templates.append((obs.embedding, obs.quality.score, f"photo-sha256:{digest}"))
        if best_photo is None or obs.quality.score > best_photo[0]:
            best_photo = (obs.quality.score, path)
        verdicts.append(PhotoVerdict(path, True, f"quality {obs.quality.score:.2f}"))
    if not templates:
        detail = "; ".join(f"{v.path.name}: {v.reason}" for v in verdicts)
        raise EnrolmentRefused(f"no usable photo ({detail})")
    photo = None
    if keep_photo and best_photo is not None:
        kind = mimetypes.guess_type(best_photo[1].name)[0] or "application/octet-stream"
        photo = (best_photo[1].read_bytes(), kind)
    result = gallery.enrol(
        customer_id,
        name,
        consent,
        templates,
        actor=actor,
        photo=photo,
        max_templates=max_templates,
        model=pipeline.model_id,
    )
    return Enrolment(verdicts, result)
