"""Every MQTT payload Storesense sends, version 1. The edge and the hub both import this module.

Rules every schema here follows (see docs/mqtt.md for the topic of each):
- JSON objects with ``"v": 1``; a consumer rejects other versions instead of guessing.
- ``msg_id`` is unique per message; QoS 1 is at-least-once, so consumers drop repeats by it.
- No face images ever: entrance cameras send 128-d embeddings (base64 little-endian float32)
  plus the quality metadata the hub needs to weigh them.
- Unknown fields are rejected: a typo on one side must not silently lose data on the other.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Annotated, Any, Final, Literal, TypeVar, overload

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
)

from storesense.face_models import DLIB_RESNET, FaceModel
from storesense.ids import CustomerId, Ident  # the id rules: storesense/ids.py

SCHEMA_VERSION: Final = 1  # Final: its type is Literal[1], as the field ``v`` says
EMBEDDING_DIM = 128
MAX_PAYLOAD_BYTES = 64 * 1024

MsgId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class PayloadError(ValueError):
    """A payload that cannot be accepted; ``reason`` is a short counter key for metrics/logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def new_msg_id() -> str:
    return uuid.uuid4().hex


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    msg_id: MsgId = Field(default_factory=new_msg_id)
    sent_at: float = Field(default_factory=time.time, description="sender's wall clock, epoch s")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class EmbeddingSample(BaseModel):
    """One quality-passing face of a track, as the hub needs it for a weighted vote."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    vector: np.ndarray
    quality: float = Field(ge=0, le=1)
    face_px: float = Field(ge=0)
    sharpness: float = Field(ge=0)
    frontalness: float = Field(ge=0, le=1)
    t: float = Field(description="capture time, epoch s")

    @field_validator("vector", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            arr = value.astype("<f4", copy=False).reshape(-1)
        elif isinstance(value, str):
            try:
                raw = base64.b64decode(value, validate=True)
            except ValueError:
                raise ValueError("vector is not valid base64") from None
            if len(raw) != EMBEDDING_DIM * 4:
                raise ValueError(f"vector has {len(raw) // 4} floats, expected {EMBEDDING_DIM}")
            arr = np.frombuffer(raw, dtype="<f4")
        else:
            raise ValueError("vector must be base64 of little-endian float32")
        if arr.shape != (EMBEDDING_DIM,):
            raise ValueError(f"vector has {arr.size} floats, expected {EMBEDDING_DIM}")
        if not np.isfinite(arr).all():
            raise ValueError("vector contains NaN or infinity")
        return arr.astype(np.float32)

    @field_serializer("vector")
    def _encode(self, vector: np.ndarray) -> str:
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()


class FaceTrack(_Message):
    """edge → hub: the best embeddings of one face track so far (first early, then on improve)."""

    kind: Literal["face_track"] = "face_track"
    camera_id: Ident
    track_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    update: int = Field(ge=0, description="0 for the first message of the track, then 1, 2, …")
    final: bool = Field(description="the track ended; the hub decides now or calls it unknown")
    first_usable_at: float = Field(description="epoch s of the track's first usable face frame")
    samples: list[EmbeddingSample] = Field(min_length=0, max_length=10)
    # Added with SFace, defaulted: agents from before it sent dlib ResNet vectors only. The hub
    # compares a track only with templates of the same model (storesense.face_models).
    model: FaceModel = Field(DLIB_RESNET, description="the embedding model of every sample")


B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]


class SealedFaceTrack(_Message):
    """edge → hub: a ``FaceTrack`` sealed for the hub (``storesense.face_seal``, AES-256-GCM).

    Outside, in clear and authenticated: what the hub needs before it opens anything (the
    message id for dedupe, the camera, the time for the staleness bound, the key id). Inside:
    the whole ``FaceTrack`` with its embeddings; the broker and the outbox never see them.
    """

    kind: Literal["sealed_face_track"] = "sealed_face_track"
    camera_id: Ident
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    nonce: B64 = Field(min_length=16, max_length=16, description="12 bytes, base64")
    ciphertext: B64 = Field(min_length=24, description="the FaceTrack JSON + 16-byte tag")


class EdgeStatus(_Message):
    """edge → hub, retained (also the last-will with online=false): node health."""

    kind: Literal["edge_status"] = "edge_status"
    camera_id: Ident
    role: Literal["entrance", "floor"]
    online: bool
    fps: float = Field(0.0, ge=0)
    frames: int = Field(0, ge=0)
    queue_depth: int = Field(0, ge=0)
    reconnects: int = Field(0, ge=0)
    rejections: dict[str, int] = Field(default_factory=dict)
    # Added after v1 shipped, with a default: older agents' heartbeats stay valid.
    errors: dict[str, int] = Field(
        default_factory=dict,
        description="exceptions the agent's loops survived since start, by step "
        "(storesense.loop_guard): logged, counted, and the loop went on",
    )


# Lower edges (px, of the analysed frame) of the person-height bands a floor camera counts its
# detections in (FloorPositions.height_counts); the last band is open-ended. Finer where the
# detector's recall changes fastest (small, far people); hub/floor/recall_by_height.yaml holds
# the recall measured per band. Changing the edges changes the contract: both sides and the
# table together.
FLOOR_HEIGHT_BANDS_PX: Final = (0, 32, 40, 48, 56, 64, 80, 96, 128, 192, 256)


def height_band(height_px: float) -> int:
    """Index of the FLOOR_HEIGHT_BANDS_PX band a box ``height_px`` tall falls in."""
    band = 0
    for i, lo in enumerate(FLOOR_HEIGHT_BANDS_PX):
        if height_px >= lo:
            band = i
    return band


class FloorPosition(BaseModel):
    """One tracked person's foot point on the store floor, metres (see floor_config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track_id: int = Field(ge=0, description="the camera's tracker id; unique per camera run")
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    conf: float = Field(ge=0, le=1, allow_inf_nan=False)
    # Added after v1 shipped, with a default, so older agents' messages stay valid.
    coasted_s: float = Field(
        0.0,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="0: detected in this frame; else seconds since the track's last detection "
        "(a person counted through a short miss, at the tracker's predicted place)",
    )


class FloorSample(BaseModel):
    """Everyone the camera saw in one analysed frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    t: float = Field(allow_inf_nan=False, description="frame time, epoch s")
    people: list[FloorPosition] = Field(max_length=200)


class FloorPositions(_Message):
    """edge (floor role) → hub, every ``floor.publish_interval_s``: who is where, no images.

    ``samples`` holds one entry per analysed frame in the interval (``t`` epoch s), so the hub
    can integrate person-seconds exactly instead of assuming one frame per interval.
    """

    kind: Literal["floor_positions"] = "floor_positions"
    camera_id: Ident
    run_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(
        default_factory=new_msg_id, description="new per agent start: track ids restart"
    )
    seq: int = Field(ge=0, description="per run, +1 per message; gaps = lost intervals")
    interval_start: float
    interval_s: float = Field(gt=0, le=60)
    samples: list[FloorSample] = Field(max_length=600)
    # Added after v1 shipped; None from older agents (the hub then has no self-check figures).
    height_counts: list[int] | None = Field(
        None,
        description="people counted in the interval's samples (person-frames, coasted ones "
        "included, at their predicted box) per box pixel-height band FLOOR_HEIGHT_BANDS_PX: "
        "the camera's self-check (hub/floor/camera_trust.py)",
    )

    @field_validator("height_counts")
    @classmethod
    def _one_count_per_band(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if len(value) != len(FLOOR_HEIGHT_BANDS_PX):
                raise ValueError(
                    f"{len(value)} height counts, expected {len(FLOOR_HEIGHT_BANDS_PX)} "
                    "(one per FLOOR_HEIGHT_BANDS_PX band)"
                )
            if any(n < 0 for n in value):
                raise ValueError("height counts must not be negative")
        return value


AlertState = Literal["open", "claimed", "done", "expired", "rejected"]


class Alert(_Message):
    """hub → phones, retained per alert: the whole current state, so a late subscriber resyncs.

    ``seq`` grows with every alert state change in the store; a phone keeps the highest it saw.
    """

    kind: Literal["alert"] = "alert"
    alert_id: Ident
    seq: int = Field(ge=1)
    state: AlertState
    customer_id: CustomerId
    customer_name: str
    greeting: str
    tier: str | None = None
    new_customer: bool = Field(
        False, description="no purchase on file yet: phones say 'new customer', not a tier"
    )
    camera_id: Ident
    arrived_at: float
    expires_at: float
    claimed_by: Ident | None = None
    claimed_at: float | None = None
    closed_by: Ident | None = Field(
        None, description="state 'rejected': who said the match was the wrong person"
    )


# "reject": 'Not this person' — the match was wrong; closes the alert, logs a false match.
# "handover": the claimer hands the customer to a colleague; the alert is open again for all.
# "keep": "Yes, still with them" when an idle claim asks (hub/alerts ends unanswered ones).
ClaimAction = Literal["claim", "done", "reject", "handover", "keep"]


class ClaimRequest(_Message):
    """phone → hub: a salesperson accepts an alert (or ends the service)."""

    kind: Literal["claim_request"] = "claim_request"
    alert_id: Ident
    staff_id: Ident
    action: ClaimAction = "claim"
    deadline: float | None = Field(
        None, description="epoch s; the hub refuses (never applies) the request after it"
    )


ClaimOutcome = Literal[
    "won",
    "already_yours",
    "taken",
    "expired",
    "done",
    "unknown_alert",
    "not_yours",
    "rejected",
    "handed_over",
    "kept",
]


class ClaimResult(_Message):
    """hub → the asking phone only: what became of its request, in words it can show."""

    kind: Literal["claim_result"] = "claim_result"
    request_id: MsgId
    alert_id: Ident
    staff_id: Ident
    outcome: ClaimOutcome
    claimed_by: Ident | None = None
    message: str


class HubStatus(_Message):
    """hub → everyone, retained (last-will online=false)."""

    kind: Literal["hub_status"] = "hub_status"
    online: bool
    gallery_size: int = Field(0, ge=0)
    rejected: dict[str, int] = Field(default_factory=dict)
    # Added after v1 shipped, with a default: older hubs' statuses stay valid.
    errors: dict[str, int] = Field(
        default_factory=dict,
        description="exceptions the hub's loops survived since start, by step "
        "(storesense.loop_guard): logged, counted, and the loop went on",
    )


class NodeHealth(_Message):
    """hub → ops, retained: every camera's health as the hub sees it."""

    kind: Literal["node_health"] = "node_health"
    nodes: dict[str, Literal["up", "offline", "down"]]


Message = (
    FaceTrack
    | SealedFaceTrack
    | FloorPositions
    | EdgeStatus
    | Alert
    | ClaimRequest
    | ClaimResult
    | HubStatus
    | NodeHealth
)
# Every message kind, told apart by its ``kind`` literal: pydantic picks the one model to
# validate against from the tag (one validation, errors about that model only) and reports an
# unknown tag itself, so no hand-kept kind → class table can miss a new message.
_ANY_MESSAGE: TypeAdapter[Message] = TypeAdapter(Annotated[Message, Field(discriminator="kind")])

M = TypeVar("M", bound=_Message)


def envelope(payload: bytes) -> dict[str, Any]:
    """The checks every payload passes before its schema: size, JSON object, version.

    Raises ``PayloadError`` with a countable reason: ``too_large``, ``bad_json``,
    ``bad_version`` (checked before the schema: a v2 sender deserves that answer, not a list
    of field errors) or ``bad_schema``. Shared by the store's union (:func:`parse`) and the
    chain's (``storesense.chain_messages.parse``), so both count rejections alike.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise PayloadError("bad_schema", "payload is not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise PayloadError("bad_version", f"schema version {data.get('v')!r}, expected 1")
    return data


U = TypeVar("U")


def validate_tagged(adapter: TypeAdapter[U], data: dict[str, Any]) -> U:
    """``data`` through a discriminated union on ``kind``; ``PayloadError('bad_schema')`` naming
    the unknown kind or the first bad field."""
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid" or first["type"] == "union_tag_not_found":
            raise PayloadError("bad_schema", f"unknown kind {data.get('kind')!r}") from None
        # the first location item is the tag pydantic dispatched on; the field path follows
        where = ".".join(str(p) for p in first["loc"][1:])
        raise PayloadError("bad_schema", f"{where}: {first['msg']}") from None


def parse(payload: bytes) -> Message:
    """Bytes off the wire → the validated message of whatever kind it says it is.

    Raises ``PayloadError`` (:func:`envelope`'s reasons, then ``bad_schema``).
    """
    return validate_tagged(_ANY_MESSAGE, envelope(payload))


@overload
def decode(payload: bytes, expected: type[M]) -> M: ...
@overload
def decode(payload: bytes, expected: None = None) -> Message: ...
def decode(payload: bytes, expected: type[_Message] | None = None) -> _Message:
    """:func:`parse`, then refuse a message of another kind than the topic carries."""
    msg = parse(payload)
    if expected is not None and not isinstance(msg, expected):
        raise PayloadError("bad_schema", f"kind {msg.kind!r} not allowed on this topic")
    return msg
