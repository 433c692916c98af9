"""``Api.handle``: one web request off the hub's queue → the owning room → one reply.

Runs on the hub's single worker thread with the worker's connection (the hub is the only
writer of its database). The deadline is checked before anything else, and once more by
``hub.alerts.claims.handle_claim``, before and inside the claim's transaction (taking the
write lock can wait): a request taken off the queue after its deadline (e.g. delivered by the
broker when the hub comes back) is answered 504 and has no effect at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.alerts import claims as alerts
from hub.alerts import views as alert_views
from hub.api import pos_token
from hub.floor.report import latest_report, reports_root
from hub.privacy.audit import record_profile_view
from hub.privacy.erasure import erase_customer
from hub.shop.card import CustomerCard, CustomerNotFound, customer_card
from hub.shop.pos_webhook import WebhookRejected, ingest_webhook
from hub.staff import accounts
from hub.staff.throttle import LoginThrottle
from storesense import messages as m
from storesense import rpc
from storesense.config import StoreConfig
from storesense.rpc import RpcError
from storesense.topics import Topics

log = logging.getLogger(__name__)

Ident = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
REPORT_MEDIA = {
    "report.html": "text/html; charset=utf-8",
    "heatmap.png": "image/png",
    "zones.csv": "text/csv; charset=utf-8",
    "insights.json": "application/json",
}
NOT_LOGGED_IN = "not logged in (or the session expired): log in again"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Token(_Args):
    token: str = Field(max_length=128)


class LoginArgs(_Args):
    staff_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=rpc.MAX_PASSWORD)
    client: str = Field("?", max_length=128)


class ClaimArgs(_Token):
    csrf: str = Field("", max_length=128, description="the X-CSRF-Token the phone sent")
    alert_id: str = Field(pattern=Ident)
    action: m.ClaimAction


class CustomerArgs(_Token):
    customer_id: str = Field(pattern=Ident)
    alert_id: str = Field(pattern=Ident)


class DayArgs(_Token):
    date: dt.date | None = None


class EraseArgs(_Token):
    customer_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    reason: str = Field(min_length=3, max_length=200)


class PosArgs(_Args):
    authorization: str | None = Field(None, max_length=1024)
    idempotency_key: str | None = Field(None, max_length=128)
    body: str = Field(max_length=rpc.MAX_REQUEST_BYTES)


class ReportArgs(_Token):
    day: str = Field(pattern=r"^(latest|\d{4}-\d{2}-\d{2})$")
    name: str


def _with_offset(value: Any) -> Any:
    """Naive datetimes (the card's store-local wall clock) made aware in the hub's zone.

    The web's schema promises ``date-time`` (RFC 3339), which needs an offset; without one a
    phone whose clock zone differs from the store's, or any strict client, reads another
    instant.
    """
    if isinstance(value, datetime):
        return value.astimezone() if value.tzinfo is None else value
    if isinstance(value, dict):
        return {k: _with_offset(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_offset(v) for v in value]
    return value


class Api:
    """The op table; one instance per hub, called only from the hub's worker thread."""

    def __init__(
        self, conn: sqlite3.Connection, cfg: StoreConfig, home: Path, topics: Topics
    ) -> None:
        self.conn = conn
        self.cfg = cfg
        self.home = home
        self.topics = topics
        self.throttle = LoginThrottle()
        self.stats: Counter[str] = Counter()
        self._ops: dict[str, tuple[type[_Args] | None, Callable[[Any, rpc.Request, float], Any]]]
        self._ops = {
            "login": (LoginArgs, self._login),
            "session": (_Token, self._session_op),
            "logout": (_Token, self._logout),
            "staff_names": (None, self._staff_names),
            "claim": (ClaimArgs, self._claim),
            "customer_view": (CustomerArgs, self._customer_view),
            "manager_day": (DayArgs, self._manager_day),
            "erase_customer": (EraseArgs, self._erase),
            "pos_transaction": (PosArgs, self._pos),
            "report_file": (ReportArgs, self._report_file),
        }

    # -- entry point ------------------------------------------------------------------------
    def handle(self, payload: bytes, now: float) -> rpc.Reply | None:
        """The reply to send, or None for a payload too broken to answer (counted)."""
        try:
            req = rpc.decode_request(payload)
        except m.PayloadError as exc:
            self.stats[f"rejected_{exc.reason}"] += 1
            log.warning("rejected a web request: %s", exc)
            return None
        self.stats[req.op] += 1
        if rpc.too_late(req.deadline, now):
            self.stats["past_deadline"] += 1
            log.info("refused %s request %s: %.1f s past its deadline", req.op,
                     req.request_id[:8], now - req.deadline)  # fmt: skip
            return rpc.Reply(
                request_id=req.request_id, status=504, detail="past its deadline: not applied"
            )
        if rpc.beyond_horizon(req.deadline, now):
            return rpc.Reply(request_id=req.request_id, status=400, detail="deadline too far")
        model, fn = self._ops[req.op]
        try:
            args: Any = None
            if model is not None:
                try:
                    args = model.model_validate(req.args)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise RpcError(422, f"{where}: {first['msg']}") from None
            result = fn(args, req, now)
        except RpcError as exc:
            return rpc.Reply(request_id=req.request_id, status=exc.status, detail=exc.detail)
        except Exception:  # a bug: answer at once (the phone is waiting), keep the hub running
            self.stats["internal_error"] += 1
            log.exception("web request %s failed in the hub", req.op)
            return rpc.Reply(request_id=req.request_id, status=500, detail="internal error")
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return rpc.Reply(request_id=req.request_id, result=result)

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, token: str, now: float) -> accounts.Session:
        session = accounts.get_session(self.conn, token, now) if token else None
        if session is None:
            raise RpcError(401, NOT_LOGGED_IN)
        return session

    def _manager(self, token: str, now: float) -> accounts.Session:
        session = self._session(token, now)
        if session.staff.role != "manager":
            raise RpcError(403, "managers only")
        return session

    @staticmethod
    def _info(session: accounts.Session) -> rpc.SessionInfo:
        s = session.staff
        return rpc.SessionInfo(
            staff_id=s.staff_id,
            name=s.name,
            role=s.role,
            csrf_token=session.csrf_token,
            expires_at=session.expires_at,
        )

    def _login(self, args: LoginArgs, req: rpc.Request, now: float) -> rpc.LoginResult:
        keys = [f"id:{args.staff_id}", f"ip:{args.client}"]
        if self.throttle.blocked(keys, now):
            raise RpcError(429, "too many failed logins: wait a few minutes")
        staff = accounts.authenticate(self.conn, args.staff_id, args.password)
        if staff is None:
            self.throttle.failed(keys, now)
            raise RpcError(401, "wrong staff id or password")
        token, session = accounts.create_session(self.conn, staff, now)
        return rpc.LoginResult(token=token, session=self._info(session))

    def _session_op(self, args: _Token, req: rpc.Request, now: float) -> rpc.SessionInfo:
        return self._info(self._session(args.token, now))

    def _logout(self, args: _Token, req: rpc.Request, now: float) -> None:
        self._session(args.token, now)
        accounts.end_session(self.conn, args.token)

    def _staff_names(self, args: None, req: rpc.Request, now: float) -> dict[str, str]:
        return accounts.staff_names(self.conn)

    # -- alerts -----------------------------------------------------------------------------
    def _claim(self, args: ClaimArgs, req: rpc.Request, now: float) -> rpc.ClaimAnswer:
        session = self._session(args.token, now)
        if not hmac.compare_digest(args.csrf.encode(), session.csrf_token.encode()):
            raise RpcError(403, "missing or wrong CSRF token: reload the page")
        staff = session.staff
        if self.cfg.staff and staff.staff_id not in self.cfg.staff:
            raise RpcError(403, f"{staff.staff_id!r} is not on the store's staff list")
        claim = m.ClaimRequest(
            msg_id=req.request_id,  # a redelivered request is a duplicate, never a second claim
            alert_id=args.alert_id,
            staff_id=staff.staff_id,
            action=args.action,
            deadline=req.deadline,
        )
        result = alerts.handle_claim(self.conn, self.topics, claim, now)
        if result is None:
            raise RpcError(409, "this request was already handled")
        if result.outcome == "unknown_alert":
            raise RpcError(404, "no such alert (it may have been cleared): pull to refresh")
        customer_id = None
        if result.outcome in ("won", "already_yours"):
            held = alert_views.alert_access(self.conn, args.alert_id)
            customer_id = held.customer_id if held else None
        return rpc.ClaimAnswer(
            alert_id=args.alert_id,
            outcome=result.outcome,
            message=result.message,
            claimed_by=result.claimed_by,
            customer_id=customer_id,
        )

    # -- customers --------------------------------------------------------------------------
    def _customer_view(self, args: CustomerArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        """Only through an alert the viewer claimed (a manager: any alert); every view audited."""
        session = self._session(args.token, now)
        held = alert_views.alert_access(self.conn, args.alert_id)
        if held is None or held.customer_id != args.customer_id:
            raise RpcError(404, "no such alert for this customer")
        staff = session.staff
        if held.state == "claimed" and held.claimed_by == staff.staff_id:
            reason = f"claimed alert {args.alert_id}"
        elif staff.role == "manager":
            reason = f"manager review of alert {args.alert_id}"
        else:
            raise RpcError(403, "you can open a customer only from an alert you have claimed")
        try:
            card = customer_card(self.conn, args.customer_id, self.cfg, datetime.now())
        except CustomerNotFound:  # erased since the alert (right to erasure): nothing to show
            raise RpcError(404, "this customer's profile no longer exists") from None
        record_profile_view(
            self.conn, actor=staff.staff_id, customer_id=args.customer_id, reason=reason
        )
        card = CustomerCard.model_validate(_with_offset(card.model_dump()))
        return {"alert_id": args.alert_id, "card": card.model_dump(mode="json")}

    def _manager_day(self, args: DayArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        self._manager(args.token, now)
        day = args.date or dt.date.today()
        return alert_views.day_report(self.conn, day, accounts.staff_names(self.conn))

    def _erase(self, args: EraseArgs, req: rpc.Request, now: float) -> rpc.ErasureAnswer:
        session = self._manager(args.token, now)
        report = erase_customer(
            self.conn,
            args.customer_id,
            actor=session.staff.staff_id,
            reason=f"manager page: {args.reason}",
        )
        if not report.anything:
            raise RpcError(404, "no such customer in the gallery or the purchase data")
        return rpc.ErasureAnswer(
            customer_id=args.customer_id,
            profile_deleted=report.profile,
            receipts_unlinked=report.receipts_unlinked,
            audit_rows_redacted=report.audit_rows_redacted,
        )

    # -- the till ---------------------------------------------------------------------------
    def _pos(self, args: PosArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        """Token first (a caller without it learns nothing about its body), then the key."""
        expected = pos_token.configured_token(self.home)
        if expected is None:
            raise RpcError(503, "POS webhook not configured: run `storesense web pos-token`")
        if not pos_token.matches(expected, args.authorization):
            raise RpcError(401, "missing or wrong bearer token")
        if not args.idempotency_key:
            raise RpcError(400, "the Idempotency-Key header is required")
        try:
            body = json.loads(args.body)
        except json.JSONDecodeError as exc:
            raise RpcError(422, f"body: not valid JSON ({exc.msg})") from None
        try:
            result = ingest_webhook(self.conn, body, args.idempotency_key)
        except WebhookRejected as exc:
            raise RpcError(422, {"message": str(exc), "errors": exc.errors}) from None
        return result.model_dump(mode="json")

    # -- reports ----------------------------------------------------------------------------
    def _report_file(self, args: ReportArgs, req: rpc.Request, now: float) -> rpc.FileAnswer:
        """Only the four files ``hub/floor/report.py`` writes, only from date-named folders:
        the path never comes from the request."""
        self._manager(args.token, now)
        if args.name not in REPORT_MEDIA:
            raise RpcError(404, "no such report file")
        if args.day == "latest":
            folder = latest_report(self.home)
        else:
            try:
                day = dt.date.fromisoformat(args.day)
            except ValueError:
                raise RpcError(422, "day: must be a date as YYYY-MM-DD") from None
            folder = reports_root(self.home) / day.isoformat()
        if folder is None or not (folder / args.name).is_file():
            raise RpcError(404, "no such report yet: the hub writes one every night")
        data = (folder / args.name).read_bytes()
        return rpc.FileAnswer(
            name=args.name,
            media_type=REPORT_MEDIA[args.name],
            content_b64=base64.b64encode(data).decode(),
        )
