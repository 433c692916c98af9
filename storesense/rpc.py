"""The web process ⇄ hub request/response protocol over MQTT (version 1), both sides' contract.

The web process (``hub.web``) is a stateless gateway: it holds no database, no template key and
no hub credentials, so everything it shows or changes is a ``Request`` to the hub and the hub's
``Reply``. MQTT 3.1.1 has no response topic, so each web instance has its own pair of topics
(``storesense.topics.Topics.rpc_request(web_id)`` / ``rpc_reply(web_id)``); the hub answers on
the reply topic *derived from the request's topic*, never from the payload, so a request
cannot direct an answer (a session token, a customer card) to somebody else's topic.

Deadlines (the "ghost claim" rule): every request carries an absolute ``deadline`` (epoch s,
the web's wall clock; web and hub run on the same machine). The hub refuses a request it takes
off its queue after the deadline and never applies it later, even when the broker delivers it
after a hub restart. The web tells the caller "timed out" only once ``deadline +
REPLY_GRACE_S`` has passed without a reply: by then a request the hub did apply (at the latest
at the deadline) has had its reply on the wire for the grace period, so the two sides agree.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storesense.ids import CustomerId, Ident
from storesense.messages import MsgId, PayloadError, new_msg_id

SCHEMA_VERSION: Final = 1  # Final: typed Literal[1], like the fields `v`
DEFAULT_TIMEOUT_S = 5.0  # what a phone waits for a button press or a page's data
# After the deadline, how long the web still waits for a reply before saying "timed out": the
# hub's reply to a request applied just before the deadline is a few ms on loopback.
REPLY_GRACE_S = 1.0
# The hub refuses deadlines further ahead than this: a request must not stay applicable for
# ever because a web process (or its clock) said so.
MAX_HORIZON_S = 60.0
MAX_REQUEST_BYTES = 256 * 1024  # a POS basket (the web caps HTTP bodies at 64 KiB) + envelope
MAX_REPLY_BYTES = 16 * 1024 * 1024  # a floor report with its embedded heatmap, as base64
MAX_PASSWORD = 256  # argon2 would hash a megabyte happily: both sides refuse longer ones

Op = Literal[
    "ping",  # -> {"at": the hub's clock}: the web's heartbeat with the hub's worker
    "login",  # staff_id, password, client -> LoginResult (the hub verifies the argon2 hash)
    "session",  # token -> SessionInfo
    "session_check",  # token -> SessionInfo, not counted as use (the web re-checks a socket)
    "logout",  # token -> None
    "staff_names",  # -> {staff_id: name}
    "claim",  # token, alert_id, action -> ClaimAnswer (hub.alerts.claims decides)
    "customer_view",  # token, customer_id, alert_id -> {"alert_id", "card"} (audited)
    "manager_day",  # token, date (YYYY-MM-DD or None) -> the manager page's day report
    "erase_customer",  # token, customer_id, reason -> ErasureAnswer
    "pos_transaction",  # bearer, idempotency_key, body (text) -> WebhookResult JSON
    "report_file",  # token, day (YYYY-MM-DD or "latest"), name -> FileAnswer
    "my_customers",  # token -> [{alert_id, customer_id, customer_name, camera_id, …}] held
    "missed_alerts",  # token (manager), date -> {"date", "count", "alerts": [expired alerts]}
    "push_key",  # token -> {"key": VAPID public key, base64url}
    "push_subscribe",  # token, endpoint, p256dh, auth -> None (hub/push)
    "push_unsubscribe",  # token, endpoint -> None
    "arrival_hint",  # token, customer_id, alert_id -> {"photo": bool, "hint": str | None}
    "arrival_photo",  # token, customer_id, alert_id -> FileAnswer (audited; refused once ended)
    "withdraw_photo_consent",  # token (manager), customer_id, reason -> {"withdrawn": True}
    "staff_list",  # token (manager) -> [{staff_id, name, role, active, created_at, updated_at}]
    "staff_add",  # token (manager), staff_id, name, role, password -> {staff_id, name, role}
    "staff_set_active",  # token (manager), staff_id, active -> {staff_id, active}
    "staff_reset_password",  # token (manager), staff_id, password -> {password_reset: True}
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Request(_Strict):
    """web → hub on ``rpc/<web_id>/request``."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["rpc_request"] = "rpc_request"
    request_id: MsgId = Field(default_factory=new_msg_id)
    op: Op
    deadline: float = Field(description="epoch s; the hub refuses the request after it")
    args: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Reply(_Strict):
    """hub → web on ``rpc/<web_id>/reply``: ``status`` is an HTTP status the web passes on."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["rpc_reply"] = "rpc_reply"
    request_id: MsgId
    status: int = Field(200, ge=100, le=599)
    result: Any = None
    detail: str | dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @property
    def ok(self) -> bool:
        return self.status < 400


class RpcError(Exception):
    """A refusal with the HTTP status and the one-line detail the phone is shown."""

    def __init__(self, status: int, detail: str | dict[str, Any]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class SessionInfo(_Strict):
    staff_id: Ident
    name: str
    role: Literal["salesperson", "manager"]
    csrf_token: str
    expires_at: float


class LoginResult(_Strict):
    token: str = Field(description="the cookie value; the hub stores only its SHA-256")
    session: SessionInfo


class ClaimAnswer(_Strict):
    alert_id: Ident
    outcome: str
    message: str
    claimed_by: Ident | None
    customer_id: CustomerId | None = Field(None, description="only for the claimer")


class ErasureAnswer(_Strict):
    customer_id: str
    profile_deleted: bool
    receipts_unlinked: int
    audit_rows_redacted: int


class FileAnswer(_Strict):
    name: str
    media_type: str
    content_b64: str


def new_request(op: Op, args: dict[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> Request:
    return Request(op=op, args=args, deadline=time.time() + timeout_s)


def too_late(deadline: float, now: float) -> bool:
    """The one deadline rule, for requests and claims alike: past it, never apply."""
    return now > deadline


def beyond_horizon(deadline: float, now: float) -> bool:
    return deadline > now + MAX_HORIZON_S


def _decode(payload: bytes, limit: int, cls: type[_Strict]) -> Any:
    if len(payload) > limit:
        raise PayloadError("too_large", f"{len(payload)} bytes > {limit}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("bad_json", str(exc)) from None
    if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
        raise PayloadError("bad_version", "not a version 1 JSON object")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PayloadError("bad_schema", f"{where}: {first['msg']}") from None


def decode_request(payload: bytes) -> Request:
    return _decode(payload, MAX_REQUEST_BYTES, Request)


def decode_reply(payload: bytes) -> Reply:
    return _decode(payload, MAX_REPLY_BYTES, Reply)
