"""The central office's configuration (``central.yaml``): its database and its broker.

Its own small model, not a part of the store's: a head-office machine has no cameras, zones
or staff. ``mqtt`` is the store's ``MqttConfig`` (the same TLS and account settings), pointed
at the central broker with the ingest account ``storesense central bridge-config`` made.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from storesense.config import MqttConfig, parse_model, read_config_text


class CentralConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field(
        description="libpq connection string or URL, e.g. postgresql://central@db/storesense"
    )
    mqtt: MqttConfig = MqttConfig()
    client_id: str = Field("storesense-central", min_length=1, max_length=64)
    # A fact older than this (or more than a day ahead) is refused as ``bad_time``: a store
    # whose clock is wrong must not make partitions for 1970. Longer than any outage a store's
    # broker can queue through (docs/chain.md).
    max_age_days: int = Field(35, ge=1, le=3660)


def load_central_config(path: Path) -> CentralConfig:
    text = read_config_text(path)
    return parse_model(text, CentralConfig, str(path), reference="docs/chain.md")
