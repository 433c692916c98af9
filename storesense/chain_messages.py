"""What a store sends its chain's central office, version 1 (docs/chain.md).

The store hub writes these into its outbox and publishes them on ``…/<store>/chain/<kind>``;
the store broker's bridge forwards them to ``chain/v1/<store>/<kind>`` on the central broker;
the central office (``central/``) applies each exactly once by ``msg_id``. Both sides import
this module and nothing of each other.

What may cross is only what is here: an alert's state without the customer's id or name, a
claim (which salesperson took which alert when), zone visits and dwell per zone per interval,
the hub's health, and a day's summary of the store's floor report (figures, advice sentences,
a small density picture). No embedding, face image, customer id, name or per-person position
has a field in the clear, and unknown fields are refused, so none can ride along. The one
exception is consented: a customer who gave the separate chain consent crosses as a random
reference (``chain_ref``) and their id, name and templates *sealed* for one receiving store's
key (``ChainTemplate``), which the central office relays without being able to open; and the
downlink (central → one store, at the end) carries those sealed templates, the stores'
public keys and erasure orders.

Message ids are derived from what the message is about (``chain_msg_id``) wherever a message
can be made twice (a hub restored from a backup re-reads its alerts): the same fact always
gets the same id, so the central office's idempotent upsert also drops such copies.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from storesense.ids import Ident
from storesense.messages import AlertState, PayloadError, _Message, envelope, validate_tagged

ChainKind = Literal[
    "alert_summary", "claim", "zone_interval", "store_health", "daily_summary",
    "store_key", "chain_template", "chain_erasure", "chain_member",
]  # fmt: skip


def chain_msg_id(store_id: str, kind: str, *key: object) -> str:
    """The message id of a fact: 32 hex of SHA-256 over store, kind and the fact's key.

    ``repr`` of each part keeps ``("a", "b c")`` and ``("a b", "c")`` apart.
    """
    text = "\x1f".join([store_id, kind, *(repr(k) for k in key)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _ChainMessage(_Message):
    store_id: Ident

    @property
    def event_at(self) -> float:
        """The time the fact belongs to (epoch s): the central office files it under that
        day. Taken from the payload, so a re-delivery always lands in the same partition."""
        return self.sent_at


class AlertSummary(_ChainMessage):
    """An alert's current state, highest ``seq`` wins (the store's own rule, alert_state)."""

    kind: Literal["alert_summary"] = "alert_summary"
    alert_id: Ident
    seq: int = Field(ge=1)
    state: AlertState
    camera_id: Ident
    arrived_at: float = Field(allow_inf_nan=False)
    expires_at: float = Field(allow_inf_nan=False)
    claimed_by: Ident | None = None
    claimed_at: float | None = Field(None, allow_inf_nan=False)
    tier: str | None = Field(None, max_length=40)
    new_customer: bool = False

    @property
    def event_at(self) -> float:
        return self.arrived_at


class Claim(_ChainMessage):
    """A salesperson took an alert's customer (a hand-over makes a second claim)."""

    kind: Literal["claim"] = "claim"
    alert_id: Ident
    staff_id: Ident
    camera_id: Ident
    arrived_at: float = Field(allow_inf_nan=False)
    claimed_at: float = Field(allow_inf_nan=False)

    @property
    def event_at(self) -> float:
        return self.claimed_at


class ZoneInterval(_ChainMessage):
    """Zone visits that began in ``[interval_start, interval_start + interval_s)`` and their
    dwell: counts, never people. ``revision`` > 0 would correct an interval already sent
    (the central office keeps the highest); the hub sends 0 today."""

    kind: Literal["zone_interval"] = "zone_interval"
    zone: str = Field(min_length=1, max_length=64)
    interval_start: float = Field(allow_inf_nan=False)
    interval_s: int = Field(ge=60, le=86400)
    visits: int = Field(ge=0)
    dwell_s: float = Field(ge=0, allow_inf_nan=False)
    revision: int = Field(0, ge=0)

    @property
    def event_at(self) -> float:
        return self.interval_start


class StoreHealth(_ChainMessage):
    """The hub's health every ``chain.health_interval_s``: cameras, outbox, rejections."""

    kind: Literal["store_health"] = "store_health"
    cameras: dict[str, Literal["up", "offline", "down"]] = Field(default_factory=dict)
    outbox_unsent: int = Field(0, ge=0)
    rejected: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)


InsightKind = Literal["advertising", "new_product", "cold_region", "high_footfall_low_sales"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_THUMBNAIL_BYTES = 40_000  # the whole message must stay under the 64 KiB payload limit
MAX_THUMBNAIL_PX = 200
MAX_ADVICE = 4


class AdviceItem(BaseModel):
    """One piece of the store report's advice, as its page prints it: a plain sentence about
    a zone or a floor spot, never about a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: InsightKind
    rank: int = Field(ge=1, le=20)
    zone: str | None = Field(None, max_length=64)
    advice: str = Field(min_length=1, max_length=400)
    confidence: Literal["high", "medium", "low"]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; ``ValueError`` if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class DailySummary(_ChainMessage):
    """One store-local day of the store's floor report, once the day is settled: footfall,
    visits, sales, conversion, the top advice and a small heatmap picture. Aggregates only.

    The figures are the store report's own (``hub.floor.kpis``): ``footfall`` counts people
    through entrance zones (None: no entrance zone; then ``people_seen``, the people seen in
    any zone, is the count), ``sales`` the net revenue of the observed zones' categories in
    ``currency`` (None: no POS data), ``selling_visits`` the visits of those zones, and
    ``conversion`` = ``sales`` / ``selling_visits`` (money per visit), so a week's conversion
    is recomputed from the summed parts. ``receipts`` counts the day's invoices (not cancellations).
    ``heatmap_png`` is base64 of a PNG at most ``MAX_THUMBNAIL_PX`` wide: mean person-seconds
    per floor cell, the same density the store report draws. ``revision`` > 0 replaces a day
    already sent (the central office keeps the highest).
    """

    kind: Literal["daily_summary"] = "daily_summary"
    day: dt.date
    revision: int = Field(0, ge=0)
    observed_s: float = Field(ge=0, le=86400 * 2, allow_inf_nan=False)
    footfall: int | None = Field(None, ge=0)
    people_seen: int = Field(ge=0)
    visits: int = Field(ge=0)
    selling_visits: int = Field(0, ge=0)
    sales: float | None = Field(None, allow_inf_nan=False)
    receipts: int | None = Field(None, ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    conversion: float | None = Field(None, allow_inf_nan=False)
    provisional: bool = False
    advice: list[AdviceItem] = Field(default_factory=list, max_length=MAX_ADVICE)
    heatmap_png: str | None = Field(None, max_length=MAX_THUMBNAIL_BYTES * 4 // 3 + 4)

    @field_validator("heatmap_png")
    @classmethod
    def _small_png(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("heatmap_png is not base64") from None
        width, height = png_size(data)
        if not (0 < width <= MAX_THUMBNAIL_PX and 0 < height <= MAX_THUMBNAIL_PX * 2):
            raise ValueError(f"heatmap_png is {width}x{height} px, at most {MAX_THUMBNAIL_PX} wide")
        return value

    @property
    def event_at(self) -> float:
        """Noon UTC of ``day``: the central office files the summary under that date."""
        noon = dt.datetime.combine(self.day, dt.time(12), dt.UTC)
        return noon.timestamp()


# -- chain-wide customers (issue 16 part 3; docs/chain.md "Chain-wide customers") -----------
# Only for customers who gave the separate chain consent. A template crosses sealed for ONE
# receiving store's X25519 key (``sealed``: ephemeral public key, nonce, AES-GCM ciphertext of
# the customer id, name and templates, hub.chain.seal); the office relays it, cannot open it.

X25519_KEY_B64 = 44  # 32 bytes in base64
# A chain customer is named on the chain by a random reference the enrolling store makes,
# never by their customer id: the id and the name travel only inside the seal, so the office
# never learns who a chain customer is, and once every store has erased its row mapping the
# reference to the customer (``chain_customers``), the reference leads to nobody.
ChainRef = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
MAX_SEALED_B64 = 48_000  # the whole message stays under the 64 KiB payload limit


def _b64_bytes(value: str, *, exact: int | None = None, what: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if exact is not None and len(raw) != exact:
        raise ValueError(f"{what} must be {exact} bytes, not {len(raw)}")
    return value


# A sealed template (hub.chain.seal) as it crosses: base64, bounded; ChainTemplate going up,
# TemplateDelivery coming down.
SealedB64 = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SEALED_B64),
    AfterValidator(lambda value: _b64_bytes(value, what="sealed")),
]


class StoreKey(_ChainMessage):
    """The store's X25519 public key, which the other stores seal templates for. The private
    key stays in the store's ``secrets/chain.key``. Id: the store and the key."""

    kind: Literal["store_key"] = "store_key"
    public_key: str = Field(min_length=X25519_KEY_B64, max_length=X25519_KEY_B64)

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        return _b64_bytes(value, exact=32, what="public_key")


class ChainTemplate(_ChainMessage):
    """A chain-consented customer's templates, sealed for ``target_store`` only.

    ``revision`` is the customer's chain consent time at the enrolling store: a re-enrolment
    makes a new revision; the same revision made twice is the same message."""

    kind: Literal["chain_template"] = "chain_template"
    chain_ref: ChainRef
    target_store: Ident
    model: str = Field(min_length=1, max_length=40)
    revision: float = Field(allow_inf_nan=False)
    sealed: SealedB64


class ChainErasure(_ChainMessage):
    """A chain customer was erased at this store: erase them everywhere."""

    kind: Literal["chain_erasure"] = "chain_erasure"
    chain_ref: ChainRef
    erased_at: float = Field(allow_inf_nan=False)


class ChainMember(_ChainMessage):
    """A chain customer is enrolled at this store under this loyalty id: the office sends the
    store their purchase history from every store (part 4, the central POS feed). The one
    chain message with a customer id in the clear, and only for chain-consented customers:
    the chain consent covers loyalty and purchases kept centrally (docs/chain.md)."""

    kind: Literal["chain_member"] = "chain_member"
    chain_ref: ChainRef
    customer_id: Ident


ChainMessage = (
    AlertSummary | Claim | ZoneInterval | StoreHealth | DailySummary
    | StoreKey | ChainTemplate | ChainErasure | ChainMember
)  # fmt: skip
_ANY: TypeAdapter[ChainMessage] = TypeAdapter(Annotated[ChainMessage, Field(discriminator="kind")])


def parse(payload: bytes) -> ChainMessage:
    """Bytes off the central broker → a chain message; ``PayloadError`` with the store
    union's reasons (``too_large``, ``bad_json``, ``bad_version``, ``bad_schema``)."""
    return validate_tagged(_ANY, envelope(payload))


def decode_for(topic_store: str, topic_kind: str, payload: bytes) -> ChainMessage:
    """:func:`parse`, then refuse a message whose store or kind is not its topic's
    (``topic_mismatch``): the topic's store id is the one the broker's ACL vouches for."""
    msg = parse(payload)
    if msg.store_id != topic_store:
        raise PayloadError("topic_mismatch", f"store_id {msg.store_id!r} on {topic_store!r}'s tree")
    if msg.kind != topic_kind:
        raise PayloadError("topic_mismatch", f"kind {msg.kind!r} on a {topic_kind!r} topic")
    return msg


# -- the downlink: central office -> one store (``chain/v1/<store>/down/<kind>``) -------------
# The store's bridge maps it in to ``storesense/v1/<store>/chain-down/<kind>``; only the hub
# reads there. ``store_id`` is the RECEIVING store: a message for another store is refused.
# The central office makes each one once into its ``downlink`` table (its outbox) and the
# hub applies each exactly once by ``msg_id`` (``seen_messages``).

DownKind = Literal["key_directory", "template_delivery", "erasure_order", "purchase"]


class KeyDirectory(_ChainMessage):
    """Every store's public key as the office knows them (the receiver's own included)."""

    kind: Literal["key_directory"] = "key_directory"
    keys: dict[Ident, str] = Field(max_length=5000)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for store, key in value.items():
            _b64_bytes(key, exact=32, what=f"key of {store}")
        return value


class TemplateDelivery(_ChainMessage):
    """A sealed template from ``origin_store`` for this store, as the office received it."""

    kind: Literal["template_delivery"] = "template_delivery"
    chain_ref: ChainRef
    origin_store: Ident
    model: str = Field(min_length=1, max_length=40)
    revision: float = Field(allow_inf_nan=False)
    sealed: SealedB64


class ErasureOrder(_ChainMessage):
    """Erase this chain customer: they asked for it at ``origin_store``."""

    kind: Literal["erasure_order"] = "erasure_order"
    chain_ref: ChainRef
    origin_store: Ident
    erased_at: float = Field(allow_inf_nan=False)


class PurchaseLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=200)
    quantity: int = Field(ge=-1_000_000, le=1_000_000)
    unit_price: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)


class Purchase(_ChainMessage):
    """One receipt of a chain customer enrolled at this store, from the office's POS import
    (part 4): ``source_store`` is the till's store. ``invoiced_at`` is that store's wall
    clock (``YYYY-MM-DD HH:MM:SS``), as the till printed it."""

    kind: Literal["purchase"] = "purchase"
    chain_ref: ChainRef
    customer_id: Ident
    source_store: Ident
    invoice_no: str = Field(min_length=1, max_length=64)
    invoiced_at: dt.datetime
    country: str = Field("", max_length=64)
    cancellation: bool = False
    lines: list[PurchaseLine] = Field(min_length=1, max_length=400)


DownMessage = KeyDirectory | TemplateDelivery | ErasureOrder | Purchase
_DOWN: TypeAdapter[DownMessage] = TypeAdapter(Annotated[DownMessage, Field(discriminator="kind")])


def parse_down(payload: bytes) -> DownMessage:
    """Bytes off the store's ``chain-down`` topics → a downlink message (``PayloadError``)."""
    return validate_tagged(_DOWN, envelope(payload))


def decode_down_for(store_id: str, topic_kind: str, payload: bytes) -> DownMessage:
    """:func:`parse_down`, then refuse one addressed to another store (``wrong_store``) or on
    another kind's topic (``topic_mismatch``)."""
    msg = parse_down(payload)
    if msg.store_id != store_id:
        raise PayloadError("wrong_store", f"for store {msg.store_id!r}, this is {store_id!r}")
    if msg.kind != topic_kind:
        raise PayloadError("topic_mismatch", f"kind {msg.kind!r} on a {topic_kind!r} topic")
    return msg
