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
from hub.faces.gallery import Consent, EnrolmentRefused, Gallery


@dataclass(frozen=True)
class PhotoVerdict:
    path: Path
    accepted: bool
    reason: str


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
) -> list[PhotoVerdict]:
    """Enrol from photos; raises ``EnrolmentRefused`` unless at least one photo is usable.

    A photo is refused when it has no face, several faces (which one is the customer?), or a
    face that fails the quality gate. By default no image is stored: only the embedding and a
    SHA-256 of the file, so an auditor can tell which photo a template came from. With
    ``keep_photo`` (the store's opt-in) the best accepted photo is kept, encrypted; only then
    may the consent carry ``photo_shown`` (the photo is shown on the door alert).
    """
    problems = consent.problems()
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
    gallery.enrol(customer_id, name, consent, templates, actor=actor, photo=photo)
    return verdicts
