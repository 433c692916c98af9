"""Store-YAML sections for the staff phone app, POS intake and loyalty (issue: phones).

Kept apart from ``storesense.config`` so each part of the product owns its settings;
``StoreConfig`` embeds them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoyaltyTier(_Strict):
    name: str = Field(min_length=1, max_length=32)
    min_spend_12m: float = Field(ge=0, description="spend over the last 12 months to reach it")


class LoyaltyConfig(_Strict):
    currency: str = "GBP"
    points_per_unit: float = Field(1.0, ge=0, description="points per currency unit spent")
    tiers: list[LoyaltyTier] = Field(
        default_factory=lambda: [
            LoyaltyTier(name="Bronze", min_spend_12m=0),
            LoyaltyTier(name="Silver", min_spend_12m=500),
            LoyaltyTier(name="Gold", min_spend_12m=2000),
        ]
    )
    birthday_bonus_points: int = Field(200, ge=0)


class AppConfig(_Strict):
    """The hub's HTTP server: phone app, manager pages, POS webhook, report downloads."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
