"""Store-YAML section for biometric privacy: the consent notice, the opt-in enrolment photo and
how long each kind of data is kept (docs/privacy.md).

Kept apart from ``storesense.config`` so the privacy settings read as one place an auditor can
check; ``StoreConfig`` embeds them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DAY_S = 86400.0
DEFAULT_MAX_TEMPLATES = 5  # per customer: a few good photos; more adds little (docs/privacy.md)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionConfig(_Strict):
    """Days each purpose keeps its data; the nightly `storesense retention run` enforces them."""

    # BIPA: destroy biometric identifiers within 3 years of the last interaction at the latest.
    templates_days_after_last_visit: int = Field(
        365, ge=1, le=1095, description="face profile kept this long after the last visit"
    )
    visits_days: int = Field(90, ge=1, le=3650, description="visits and their alerts")
    false_matches_days: int = Field(365, ge=1, le=3650, description="'not this person' reports")
    unknown_visitors_days: int = Field(
        7, ge=1, le=365, description="counts of unmatched tracks (no face data is kept)"
    )
    audit_days: int = Field(1095, ge=365, le=3650, description="the audit log (3 years)")


class PrivacyConfig(_Strict):
    notice_version: str = Field(
        "2026-12", min_length=1, max_length=32,
        description="version of the privacy notice customers see before they consent",
    )  # fmt: skip
    keep_enrolment_photo: bool = Field(
        False, description="opt-in: keep one enrolment photo, encrypted like the templates"
    )
    max_templates_per_customer: int = Field(
        DEFAULT_MAX_TEMPLATES, ge=1, le=50,
        description="face templates kept per customer; re-enrolling beyond it drops the "
        "lowest-quality ones (the oldest among equals), audited",
    )  # fmt: skip
    retention: RetentionConfig = RetentionConfig()
