"""The store's own match threshold: what a manager applied after ``storesense faces review``.

Where it lives, and why: in the face room's ``threshold_settings`` table (one row per change,
newest in force), not in the store YAML. The YAML is the installer's file (a re-flash or a
config push would silently undo a manager's decision), and the hub must be able to show who
changed the operating point, when, from what evidence. The hub builds its recognizer from the
config's ``recognition`` section with this threshold in place of ``recognition.threshold``
(``recognition_config``), at start and whenever the gallery version moves (``apply`` bumps
it, so a running hub takes a change within one message or tick).

The hub never writes here by itself: only ``apply`` does, called by the CLI once a manager's
password and an explicit confirmation were given; every change is audited with the previous
value and the evidence. A ``None`` threshold returns to the config's value.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from hub.faces import profiles
from hub.privacy import audit
from hub.store import db
from storesense.config import RecognitionConfig
from storesense.face_models import DEFAULT_MODEL

APPLY_THRESHOLD = "apply_threshold"  # audit action


@dataclass(frozen=True)
class ThresholdSetting:
    threshold: float | None  # None: the store config's recognition.threshold again
    previous: float
    applied_at: float
    staff_id: str
    reason: str
    evidence: dict[str, Any]


def current(conn: sqlite3.Connection, model: str = DEFAULT_MODEL) -> ThresholdSetting | None:
    """The newest setting applied for ``model``; None if no manager ever applied one.

    Per model: a threshold is a distance of one embedding model, so a store that switches
    model starts from that model's default, not from a number on another scale.
    """
    row = conn.execute(
        "SELECT threshold, previous, applied_at, staff_id, reason, evidence "
        "FROM threshold_settings WHERE model=? ORDER BY setting_id DESC LIMIT 1",
        (model,),
    ).fetchone()
    if row is None:
        return None
    return ThresholdSetting(
        threshold=None if row[0] is None else float(row[0]),
        previous=float(row[1]),
        applied_at=float(row[2]),
        staff_id=str(row[3]),
        reason=str(row[4]),
        evidence=json.loads(row[5]),
    )


def effective_threshold(
    conn: sqlite3.Connection, configured: float, model: str = DEFAULT_MODEL
) -> float:
    """The threshold the hub matches with: the applied one (for ``model``), else the config's."""
    setting = current(conn, model)
    return configured if setting is None or setting.threshold is None else setting.threshold


def recognition_config(conn: sqlite3.Connection, base: RecognitionConfig) -> RecognitionConfig:
    """``base`` (the store config's section) with the applied threshold, if any, in force.

    The single-frame threshold (one very confident frame alerts at once) moves with it in
    proportion, never above it: a store that tightened its threshold must not keep a
    single-frame path that accepts what the new threshold refuses.
    """
    t = effective_threshold(conn, base.threshold, base.model)
    if t == base.threshold:
        return base
    update: dict[str, float] = {"threshold": t}
    single = getattr(base, "single_frame_threshold", None)
    if single is not None:
        update["single_frame_threshold"] = min(t, single * t / base.threshold)
    return base.model_copy(update=update)


def apply(
    conn: sqlite3.Connection,
    *,
    threshold: float | None,
    configured: float,
    staff_id: str,
    reason: str,
    evidence: dict[str, Any],
    actor: str,
    now: float | None = None,
    model: str = DEFAULT_MODEL,
) -> float:
    """Record a manager's new threshold (``None``: back to ``configured``), audited; the
    threshold now in force is returned. The caller has checked the manager and the
    confirmation (``storesense_tools.cli_faces``); this refuses an out-of-range value."""
    if threshold is not None and not 0 < threshold < 2:
        raise ValueError(f"threshold {threshold} out of range (0, 2): distances are 0-2")
    if not reason.strip():
        raise ValueError("a threshold change needs a reason (it is written to the audit log)")
    at = time.time() if now is None else now
    with db.write(conn) as c:
        previous = effective_threshold(c, configured, model)
        c.execute(
            "INSERT INTO threshold_settings(threshold, previous, applied_at, staff_id, reason, "
            "evidence, model) VALUES (?,?,?,?,?,?,?)",
            (threshold, previous, at, staff_id, reason.strip(), json.dumps(evidence), model),
        )
        after = configured if threshold is None else threshold
        direction = "tighter" if after < previous else "looser" if after > previous else "unchanged"
        audit.append(
            c, at=at, actor=actor, action=APPLY_THRESHOLD,
            detail=(
                f"match threshold {previous:.3f} -> {after:.3f} ({direction}"
                f"{', the store config value' if threshold is None else ''}); confirmed by "
                f"manager {staff_id}: {reason.strip()}"
            ),
        )  # fmt: skip
        profiles.gallery_changed(c)  # the running hub rebuilds its recognizer on this
    return after
