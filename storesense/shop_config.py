"""Store-YAML sections for the staff phone app, POS intake and loyalty (issue: phones).

Kept apart from ``storesense.config`` so each part of the product owns its settings;
``StoreConfig`` embeds them.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoyaltyTier(_Strict):
    name: str = Field(min_length=1, max_length=32)
    min_spend_12m: float = Field(ge=0, description="spend over the last 12 months to reach it")
    points_multiplier: float = Field(1.0, ge=0, le=10, description="points earned × this")


class Promotion(_Strict):
    """Extra points for a while, on one product category or (``category`` unset) on all."""

    name: str = Field(min_length=1, max_length=64)
    category: str | None = Field(None, description="category name from config/categories.yaml")
    multiplier: float = Field(2.0, gt=0, le=10)
    starts: date
    ends: date = Field(description="last day of the promotion, inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> Promotion:
        if self.ends < self.starts:
            raise ValueError(f"promotion {self.name!r} ends before it starts")
        return self


class LoyaltyConfig(_Strict):
    """Loyalty rules, applied to the imported purchase history by ``hub/shop/loyalty.py``."""

    currency: str = Field("GBP", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    locale: str = Field(
        "en_GB",
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="how money is written on the staff phones (CLDR locale, e.g. de_DE: "
        "1.234,50 €); see hub/shop/card.py",
    )
    points_per_unit: float = Field(1.0, ge=0, description="points per currency unit spent")
    tiers: list[LoyaltyTier] = Field(
        default_factory=lambda: [
            LoyaltyTier(name="Bronze", min_spend_12m=0),
            LoyaltyTier(name="Silver", min_spend_12m=500, points_multiplier=1.25),
            LoyaltyTier(name="Gold", min_spend_12m=2000, points_multiplier=1.5),
        ]
    )
    tier_window_days: int = Field(365, ge=1, le=3660, description="spend window for tiers")
    points_valid_days: int = Field(365, ge=1, le=3660, description="points older than this expire")
    birthday_bonus_points: int = Field(200, ge=0)
    birthday_window_days: int = Field(
        7, ge=0, le=31, description="a purchase this many days either side earns the bonus"
    )
    promotions: list[Promotion] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _tiers_ordered(cls, tiers: list[LoyaltyTier]) -> list[LoyaltyTier]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        spends = [t.min_spend_12m for t in tiers]
        if spends != sorted(spends) or len(set(spends)) != len(spends):
            raise ValueError("tiers must be listed by strictly increasing min_spend_12m")
        return tiers


class AppConfig(_Strict):
    """The hub's HTTP server: phone app, manager pages, POS webhook, report downloads."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    # Phones install the app (PWA, service worker) only over HTTPS; with both set the server
    # speaks TLS and session cookies get the Secure flag.
    tls_cert: str | None = Field(None, description="PEM certificate file for HTTPS")
    tls_key: str | None = Field(None, description="PEM private key file for HTTPS")
    # Without tls_cert/tls_key, `storesense web run` issues its own certificate from the store
    # CA in its home (storesense/tls.py) and serves HTTPS: plain HTTP only when asked for here.
    plain_http: bool = Field(
        False, description="serve plain HTTP (a lab, or behind a TLS proxy): warned at start"
    )
    tls_hosts: list[str] = Field(
        default_factory=list,
        description="names/IPs phones use for the hub, put in the web certificate (the host "
        "name, its .local name, its IPv4 addresses and loopback are always added)",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header allow-list; empty: the web certificate's names",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses whose X-Forwarded-For/-Proto are believed; empty: none",
    )
    hsts_max_age_s: int = Field(31_536_000, ge=0, description="Strict-Transport-Security on TLS")
    session_idle_s: float = Field(
        4 * 3600.0, ge=60, description="a login session unused this long ends (the hub enforces)"
    )
    # uvicorn's limits: a client that opens connections and sends nothing (or a header a byte a
    # minute) must not hold file descriptors for ever.
    header_timeout_s: float = Field(10.0, gt=0, le=300, description="whole request head")
    keepalive_s: float = Field(5.0, gt=0, le=300, description="idle keep-alive connection")
    body_timeout_s: float = Field(15.0, gt=0, le=300, description="gap inside a request body")
    limit_concurrency: int = Field(
        1000, ge=10, description="connections + WebSockets at once; over it new ones get 503"
    )
    login_verifiers: int = Field(
        2, ge=1, le=8, description="argon2 password checks at once on the hub (64 MiB each)"
    )
    # Web Push (hub/push): the VAPID "sub" claim is how a push service (Google's, Mozilla's,
    # Apple's) reaches whoever runs the store's hub when its pushes misbehave; Apple refuses
    # pushes without a real one. A store's own, so configured, never made up by the program.
    push_contact: str | None = Field(
        None,
        pattern=r"^(mailto:[^@\s]+@[^@\s]+\.[^@\s]+|https://[^\s]+)$",
        description="VAPID contact: mailto:someone@your-shop.example or an https:// page",
    )
    web_push: bool | None = Field(
        None, description="alerts to the phones' push services (needs internet); "
        "default: on when push_contact is set"
    )  # fmt: skip

    @model_validator(mode="after")
    def _tls_pair(self) -> AppConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("app.tls_cert and app.tls_key go together: set both or neither")
        if self.web_push and self.push_contact is None:
            raise ValueError(
                "app.web_push is on but app.push_contact is not set: push services need a "
                "contact for the store (the VAPID 'sub' claim). Set app.push_contact: "
                "mailto:manager@your-shop.example (or an https:// page), or app.web_push: false"
            )
        return self

    @property
    def web_push_on(self) -> bool:
        return self.push_contact is not None if self.web_push is None else self.web_push
