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


def _expired_profiles(c: sqlite3.Connection, cutoff: float) -> list[str]:
    return [
        r[0]
        for r in c.execute(
            "SELECT customer_id FROM customers "
            "WHERE coalesce(last_visit_at, consent_at, created_at) < ?",
            (cutoff,),
        )
    ]


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
            profiles = _expired_profiles(c, profile_cut)
            templates = photos = 0
            for cid in profiles:
                templates += c.execute("DELETE FROM templates WHERE customer_id=?", (cid,)).rowcount
                photos += c.execute(
                    "DELETE FROM enrolment_photos WHERE customer_id=?", (cid,)
                ).rowcount
                c.execute("DELETE FROM customers WHERE customer_id=?", (cid,))
                audit.append(
                    c, at=now, actor=actor, action="retention_delete", customer_id=cid,
                    detail=f"face profile deleted: no visit for "
                           f"{policy.templates_days_after_last_visit} days",
                )  # fmt: skip
            # An open alert is minutes old by construction; only closed ones can be this old.
            old_alerts = (
                "SELECT a.alert_id FROM alerts a JOIN visits v USING (visit_id) "
                "WHERE v.last_seen_at < ? AND a.state <> 'open'"
            )
            c.execute(f"DELETE FROM alert_matches WHERE alert_id IN ({old_alerts})", (visit_cut,))
            alerts = c.execute(
                f"DELETE FROM alerts WHERE alert_id IN ({old_alerts})", (visit_cut,)
            ).rowcount
            visits = c.execute(
                "DELETE FROM visits WHERE last_seen_at < ? AND visit_id NOT IN "
                "(SELECT visit_id FROM alerts)",
                (visit_cut,),
            ).rowcount
            false_matches = c.execute(
                "DELETE FROM false_matches WHERE at < ?",
                (now - policy.false_matches_days * DAY_S,),
            ).rowcount
            unknown = c.execute(
                "DELETE FROM unknown_visitors WHERE seen_at < ?",
                (now - policy.unknown_visitors_days * DAY_S,),
            ).rowcount
            audit_rows = audit.purge_before(c, now - policy.audit_days * DAY_S)
            report = RetentionReport(
                now, len(profiles), templates, photos, visits, alerts, false_matches, unknown,
                audit_rows,
            )  # fmt: skip
            if profiles:
                db.next_counter(c, "gallery_version")  # the running hub stops matching them
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
