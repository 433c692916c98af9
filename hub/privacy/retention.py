"""The retention schedule, enforced: each purpose's data goes when its time is up.

Run nightly (``storesense retention run``, systemd ``storesense-retention.timer``) and on
demand. Every run writes one audit row with what it removed, and the CLI writes a JSON report
that also records the audit chain's head, so a later truncation of the log can be noticed
against a copy kept outside the hub.

Face profiles go a fixed time after the customer's *last visit* (``customers.last_visit_at``,
or the enrolment if they never came back): they are biometric data, held only while the
customer keeps using the service (BIPA: at most 3 years after the last interaction). Purchase
history is not biometric and is not touched here.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass

from hub.alerts import records as alert_records
from hub.faces import profiles as face_profiles
from hub.privacy import audit
from hub.store import db
from storesense.privacy_config import DAY_S, RetentionConfig


@dataclass(frozen=True)
class RetentionReport:
    at: float
    face_profiles: int
    templates: int
    photos: int
    visits: int
    alerts: int
    false_matches: int
    unknown_visitors: int
    audit_rows: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def run_retention(
    conn: sqlite3.Connection, policy: RetentionConfig, *, now: float | None = None,
    dry_run: bool = False, actor: str = "retention",
) -> RetentionReport:  # fmt: skip
    """Delete what is past its time, in one transaction; ``dry_run`` counts and rolls back."""
    now = time.time() if now is None else now
    profile_cut = now - policy.templates_days_after_last_visit * DAY_S
    visit_cut = now - policy.visits_days * DAY_S
    try:
        with db.write(conn) as c:
            profiles = face_profiles.profiles_unseen_since(c, profile_cut)
            templates = photos = 0
            for cid in profiles:
                t, p = face_profiles.delete_profile(c, cid)
                templates, photos = templates + t, photos + p
                audit.append(
                    c, at=now, actor=actor, action="retention_delete", customer_id=cid,
                    detail=f"face profile deleted: no visit for "
                           f"{policy.templates_days_after_last_visit} days",
                )  # fmt: skip
            purged = alert_records.purge_before(
                c, visits_before=visit_cut,
                false_matches_before=now - policy.false_matches_days * DAY_S,
            )  # fmt: skip
            visits, alerts, false_matches = purged.visits, purged.alerts, purged.false_matches
            unknown = face_profiles.purge_unknown_before(
                c, now - policy.unknown_visitors_days * DAY_S
            )
            audit_rows = audit.purge_before(c, now - policy.audit_days * DAY_S)
            report = RetentionReport(
                now, len(profiles), templates, photos, visits, alerts, false_matches, unknown,
                audit_rows,
            )  # fmt: skip
            if profiles:
                face_profiles.gallery_changed(c)  # the running hub stops matching them
            audit.append(
                c, at=now, actor=actor, action="retention_run",
                detail=", ".join(f"{k} {v}" for k, v in report.as_dict().items() if k != "at"),
            )  # fmt: skip
            if dry_run:
                raise _DryRun(report)
    except _DryRun as dry:
        return dry.report
    return report


class _DryRun(Exception):
    def __init__(self, report: RetentionReport) -> None:
        super().__init__("dry run")
        self.report = report
