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
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.alerts import claims as alerts
from hub.alerts import views as alert_views
from hub.api import pos_token
from hub.faces import profiles as face_profiles
from hub.faces.gallery import arrival_photo
from hub.floor.report import Period, latest_report, period_of_folder, reports_root
from hub.privacy.audit import record_photo_display, record_profile_view
from hub.privacy.consent import withdraw_photo_consent
from hub.privacy.erasure import erase_customer
from hub.push import subscriptions as push_subscriptions
from hub.push.sender import application_server_key, load_or_create_vapid
from hub.shop.card import CustomerCard, CustomerNotFound, customer_card
from hub.shop.pos_webhook import WebhookRejected, ingest_webhook
from hub.staff import accounts
from hub.staff.throttle import LoginThrottle, Reservation, Throttled
from hub.staff.verifier import PasswordVerifier, VerifierBusy
from storesense import ids, rpc
from storesense import messages as m
from storesense.config import StoreConfig
from storesense.paths import template_key_path
from storesense.rpc import RpcError
from storesense.topics import Topics

log = logging.getLogger(__name__)

Ident = ids.IDENT_PATTERN  # the id rules: storesense/ids.py
CustomerId = ids.CUSTOMER_ID_PATTERN
REPORT_MEDIA = {
    "report.html": "text/html; charset=utf-8",
    "heatmap.png": "image/png",
    "zones.csv": "text/csv; charset=utf-8",
    "insights.json": "application/json",
    "report.pdf": "application/pdf",
}
# "latest" (the newest day), "latest-week", "latest-month", or a folder: YYYY-MM-DD, YYYY-Www
# (ISO week), YYYY-MM (hub/floor/report.py names them).
REPORT_DAY = r"^(latest|latest-week|latest-month|\d{4}-\d{2}-\d{2}|\d{4}-W\d{2}|\d{4}-\d{2})$"
LATEST: dict[str, Period] = {"latest": "day", "latest-week": "week", "latest-month": "month"}
NOT_LOGGED_IN = "not logged in (or the session expired): log in again"
Respond = Callable[[rpc.Reply], None]


class Deferred:
    """``Api.handle``'s answer for a request answered later, through its ``respond``."""


DEFERRED = Deferred()


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
    customer_id: str = Field(pattern=CustomerId)
    alert_id: str = Field(pattern=Ident)


class StaffIdArgs(_Token):
    staff_id: str = Field(pattern=Ident)


class StaffActiveArgs(StaffIdArgs):
    active: bool


class StaffPasswordArgs(StaffIdArgs):
    password: str = Field(min_length=1, max_length=rpc.MAX_PASSWORD)


class StaffAddArgs(StaffPasswordArgs):
    name: str = Field(min_length=1, max_length=100)
    role: accounts.Role = "salesperson"


class WithdrawPhotoArgs(_Token):
    customer_id: str = Field(pattern=CustomerId)
    reason: str = Field(min_length=3, max_length=200)


class DayArgs(_Token):
    date: dt.date | None = None


class EraseArgs(_Token):
    customer_id: str = Field(pattern=CustomerId)
    reason: str = Field(min_length=3, max_length=200)


class PushArgs(_Token):
    endpoint: str = Field(max_length=1024)
    p256dh: str = Field("", max_length=128)
    auth: str = Field("", max_length=64)


class PosArgs(_Args):
    authorization: str | None = Field(None, max_length=1024)
    idempotency_key: str | None = Field(None, max_length=128)
    body: str = Field(max_length=rpc.MAX_REQUEST_BYTES)


class ReportArgs(_Token):
    day: str = Field(pattern=REPORT_DAY)
    name: str


def _report_folder(name: str) -> str:
    """A report folder name checked for a real period (no 2025-02-30, 2021-W53, month 13)."""
    period = period_of_folder(name)
    try:
        if period == "day":
            return dt.date.fromisoformat(name).isoformat()
        if period == "week":
            year, week = name.split("-W")
            dt.date.fromisocalendar(int(year), int(week), 1)
            return name
        if period == "month" and 1 <= int(name[5:]) <= 12:
            return name
    except ValueError:
        pass
    # The shape was already checked (REPORT_DAY); a shaped name that is no real period (week 53
    # of a 52-week year, year 0) has no report, which is what the manager is told.
    raise RpcError(404, "no report for that period")


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
        self,
        conn: sqlite3.Connection,
        cfg: StoreConfig,
        home: Path,
        topics: Topics,
        *,
        push_hosts: tuple[str, ...] = push_subscriptions.KNOWN_PUSH_HOSTS,
        verifier: PasswordVerifier | None = None,
    ) -> None:
        """``verifier``: where password checks run (``hub.staff.verifier``), its answers
        brought back to this worker; None: on the calling thread (tools, unit tests)."""
        self.conn = conn
        self.verifier = verifier
        self.push_hosts = push_hosts
        self.cfg = cfg
        self.home = home
        self.topics = topics
        self.throttle = LoginThrottle()
        self.stats: Counter[str] = Counter()
        self._ops: dict[str, tuple[type[_Args] | None, Callable[[Any, rpc.Request, float], Any]]]
        self._ops = {
            "ping": (None, self._ping),
            "login": (LoginArgs, self._login),
            "session": (_Token, self._session_op),
            "session_check": (_Token, self._session_check),
            "logout": (_Token, self._logout),
            "staff_names": (None, self._staff_names),
            "claim": (ClaimArgs, self._claim),
            "customer_view": (CustomerArgs, self._customer_view),
            "manager_day": (DayArgs, self._manager_day),
            "erase_customer": (EraseArgs, self._erase),
            "pos_transaction": (PosArgs, self._pos),
            "report_file": (ReportArgs, self._report_file),
            "my_customers": (_Token, self._my_customers),
            "missed_alerts": (DayArgs, self._missed_alerts),
            "push_key": (_Token, self._push_key),
            "push_subscribe": (PushArgs, self._push_subscribe),
            "push_unsubscribe": (PushArgs, self._push_unsubscribe),
            "arrival_hint": (CustomerArgs, self._arrival_hint),
            "arrival_photo": (CustomerArgs, self._arrival_photo),
            "withdraw_photo_consent": (WithdrawPhotoArgs, self._withdraw_photo),
            "staff_list": (_Token, self._staff_list),
            "staff_add": (StaffAddArgs, self._staff_add),
            "staff_set_active": (StaffActiveArgs, self._staff_set_active),
            "staff_reset_password": (StaffPasswordArgs, self._staff_reset_password),
        }

    # -- entry point ------------------------------------------------------------------------
    def handle(
        self, payload: bytes, now: float, respond: Respond | None = None
    ) -> rpc.Reply | Deferred | None:
        """The reply to send, or None for a payload too broken to answer (counted), or
        ``DEFERRED``: a login whose password check runs on the verifier; its reply goes to
        ``respond`` later, on this thread (the verifier's ``later`` brings it back)."""
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
            if isinstance(args, LoginArgs) and self.verifier is not None and respond:
                self._login_later(args, req, now, respond)
                return DEFERRED
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

    @staticmethod
    def _ping(args: None, req: rpc.Request, now: float) -> dict[str, float]:
        """The web's heartbeat: answered by the worker that serves every request and raises
        every alert, so an answer means the hub is doing its job, not just connected."""
        return {"at": now}

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, token: str, now: float, *, touch: bool = True) -> accounts.Session:
        idle_s = self.cfg.app.session_idle_s
        session = (
            accounts.get_session(self.conn, token, now, idle_s=idle_s, touch=touch)
            if token
            else None
        )
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
        # reserved before verifying (hub.staff.throttle): a refused attempt costs no argon2
        try:
            attempt = self.throttle.reserve(args.staff_id, args.client, now)
        except Throttled as exc:
            raise RpcError(429, str(exc)) from None
        self.stats["password_verifications"] += 1
        staff = accounts.authenticate(self.conn, args.staff_id, args.password)
        if staff is None:
            self.throttle.failed(attempt)
            raise RpcError(401, "wrong staff id or password")
        self.throttle.succeeded(attempt)
        token, session = accounts.create_session(
            self.conn, staff, now, idle_s=self.cfg.app.session_idle_s
        )
        return rpc.LoginResult(token=token, session=self._info(session))

    def _login_later(self, args: LoginArgs, req: rpc.Request, now: float, respond: Respond) -> None:
        """``_login`` with the argon2 check on the verifier's threads: the worker reserves
        the attempt (the throttle), reads the hash, and goes on with claims and alerts; the
        session is created here again, on the worker, when the check is done."""
        assert self.verifier is not None
        try:
            attempt = self.throttle.reserve(args.staff_id, args.client, now)
        except Throttled as exc:
            raise RpcError(429, str(exc)) from None
        cred = accounts.load_credentials(self.conn, args.staff_id, args.password)
        try:
            self.verifier.submit(
                cred,
                args.password,
                lambda staff: self._login_done(staff, cred, attempt, req, respond),
            )
        except VerifierBusy:
            self.throttle.release(attempt)  # not a failed attempt: nobody checked it
            self.stats["login_busy"] += 1
            raise RpcError(503, "the hub is checking other logins: try again in a moment") from None
        self.stats["password_verifications"] += 1

    def _login_done(
        self,
        staff: accounts.Staff | None,
        cred: accounts.Credentials,
        attempt: Reservation,
        req: rpc.Request,
        respond: Respond,
    ) -> None:
        """On the worker, once the password was checked: settle the throttle, then the
        session, unless the request's deadline passed meanwhile (the web has said "timed
        out, nothing changed", so nothing may change)."""
        now = time.time()
        try:
            if staff is None or not accounts.still_valid(self.conn, cred):
                self.throttle.failed(attempt)
                raise RpcError(401, "wrong staff id or password")
            self.throttle.succeeded(attempt)
            if rpc.too_late(req.deadline, now):
                self.stats["past_deadline"] += 1
                raise RpcError(504, "past its deadline: not applied")
            token, session = accounts.create_session(
                self.conn, staff, now, idle_s=self.cfg.app.session_idle_s
            )
            result = rpc.LoginResult(token=token, session=self._info(session))
            reply = rpc.Reply(request_id=req.request_id, result=result.model_dump(mode="json"))
        except RpcError as exc:
            reply = rpc.Reply(request_id=req.request_id, status=exc.status, detail=exc.detail)
        except Exception:
            self.stats["internal_error"] += 1
            log.exception("login failed in the hub")
            reply = rpc.Reply(request_id=req.request_id, status=500, detail="internal error")
        respond(reply)

    def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()

    def _session_op(self, args: _Token, req: rpc.Request, now: float) -> rpc.SessionInfo:
        return self._info(self._session(args.token, now))

    def _session_check(self, args: _Token, req: rpc.Request, now: float) -> rpc.SessionInfo:
        """The web's re-check of an open WebSocket's session: not a use (no idle reset)."""
        return self._info(self._session(args.token, now, touch=False))

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
        result = alerts.handle_claim(
            self.conn, self.topics, claim, now, reopen_ttl_s=self.cfg.visits.alert_ttl_s
        )
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

    def _my_customers(self, args: _Token, req: rpc.Request, now: float) -> list[dict[str, Any]]:
        """What this salesperson holds (claimed, not done): survives reload and a new login."""
        staff_id = self._session(args.token, now).staff.staff_id
        v = self.cfg.visits
        return alert_views.my_customers(
            self.conn, staff_id, idle_s=v.claim_idle_s, confirm_s=v.claim_confirm_s
        )

    def _missed_alerts(self, args: DayArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        """Managers: the day's customers nobody accepted before the alert expired."""
        self._manager(args.token, now)
        day = args.date or dt.date.today()
        missed = alert_views.missed_alerts(self.conn, day)
        return {"date": day.isoformat(), "count": len(missed), "alerts": missed}

    # -- Web Push ---------------------------------------------------------------------------
    def _push_key(self, args: _Token, req: rpc.Request, now: float) -> dict[str, str]:
        """The VAPID public key a phone subscribes with (``applicationServerKey``)."""
        self._session(args.token, now)
        self._push_on()
        return {"key": application_server_key(load_or_create_vapid(self.home))}

    def _push_on(self) -> None:
        if not self.cfg.app.web_push_on:
            raise RpcError(404, "Web Push is off in this store (app.push_contact not set): "
                           "open pages still get every alert")  # fmt: skip

    def _push_subscribe(self, args: PushArgs, req: rpc.Request, now: float) -> None:
        staff = self._session(args.token, now).staff
        self._push_on()
        try:
            push_subscriptions.subscribe(
                self.conn, staff.staff_id, args.endpoint, args.p256dh, args.auth, now,
                hosts=self.push_hosts,
            )  # fmt: skip
        except push_subscriptions.BadSubscription as exc:
            raise RpcError(422, str(exc)) from None

    def _push_unsubscribe(self, args: PushArgs, req: rpc.Request, now: float) -> None:
        staff = self._session(args.token, now).staff
        push_subscriptions.unsubscribe(self.conn, args.endpoint, staff.staff_id)

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

    # -- who to greet (the "photo shown to staff at arrival" consent) ----------------------
    def _arrival_access(self, args: CustomerArgs, now: float) -> accounts.Session:
        """Any staff member while the alert is open (the card every phone shows); the claimer
        (or a manager) while it is claimed; nobody once it has ended."""
        session = self._session(args.token, now)
        held = alert_views.alert_access(self.conn, args.alert_id)
        if held is None or held.customer_id != args.customer_id:
            raise RpcError(404, "no such alert for this customer")
        staff = session.staff
        if held.state not in ("open", "claimed"):
            raise RpcError(404, "this alert has ended: the photo is no longer shown")
        serving = held.state == "claimed" and staff.staff_id != held.claimed_by
        if serving and staff.role != "manager":
            raise RpcError(403, "this customer is being served by a colleague")
        return session

    def _arrival_hint(self, args: CustomerArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        """Whether a photo may be shown, else the customer's own hint (nothing is decrypted)."""
        self._arrival_access(args, now)
        who = face_profiles.arrival_identity(self.conn, args.customer_id)
        return {"photo": who.photo, "hint": None if who.photo else who.hint}

    def _arrival_photo(self, args: CustomerArgs, req: rpc.Request, now: float) -> rpc.FileAnswer:
        """The enrolment photo for this alert only: decrypted here, audited per display."""
        session = self._arrival_access(args, now)
        photo = arrival_photo(self.conn, template_key_path(self.home), args.customer_id)
        if photo is None:
            raise RpcError(404, "no photo: the customer did not agree to it being shown")
        record_photo_display(
            self.conn,
            actor=session.staff.staff_id,
            customer_id=args.customer_id,
            alert_id=args.alert_id,
        )
        data, media_type = photo
        return rpc.FileAnswer(
            name="photo", media_type=media_type, content_b64=base64.b64encode(data).decode()
        )

    def _withdraw_photo(
        self, args: WithdrawPhotoArgs, req: rpc.Request, now: float
    ) -> dict[str, Any]:
        session = self._manager(args.token, now)
        done = withdraw_photo_consent(
            self.conn,
            args.customer_id,
            actor=session.staff.staff_id,
            reason=f"manager page: {args.reason}",
        )
        if not done:
            raise RpcError(404, "no photo consent on file for this customer")
        return {"customer_id": args.customer_id, "withdrawn": True}

    # -- staff administration (managers) ---------------------------------------------------
    def _staff_list(self, args: _Token, req: rpc.Request, now: float) -> list[dict[str, Any]]:
        self._manager(args.token, now)
        return accounts.list_staff(self.conn)

    def _staff_add(self, args: StaffAddArgs, req: rpc.Request, now: float) -> dict[str, Any]:
        session = self._manager(args.token, now)
        try:
            staff = accounts.add_staff(
                self.conn, args.staff_id, args.name, args.role, args.password,
                actor=session.staff.staff_id,
            )  # fmt: skip
        except accounts.AccountError as exc:
            raise RpcError(409 if "already exists" in str(exc) else 422, str(exc)) from None
        return {"staff_id": staff.staff_id, "name": staff.name, "role": staff.role}

    def _staff_set_active(
        self, args: StaffActiveArgs, req: rpc.Request, now: float
    ) -> dict[str, Any]:
        session = self._manager(args.token, now)
        if args.staff_id == session.staff.staff_id and not args.active:
            raise RpcError(409, "you cannot disable your own account")
        if not accounts.set_active(
            self.conn, args.staff_id, args.active, actor=session.staff.staff_id,
            on_disable=push_subscriptions.forget_staff,
        ):  # fmt: skip
            raise RpcError(404, "no such staff member")
        return {"staff_id": args.staff_id, "active": args.active}

    def _staff_reset_password(
        self, args: StaffPasswordArgs, req: rpc.Request, now: float
    ) -> dict[str, Any]:
        session = self._manager(args.token, now)
        try:
            done = accounts.reset_password(
                self.conn, args.staff_id, args.password, actor=session.staff.staff_id
            )
        except accounts.AccountError as exc:
            raise RpcError(422, str(exc)) from None
        if not done:
            raise RpcError(404, "no such staff member")
        return {"staff_id": args.staff_id, "password_reset": True}

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
        """Only the files ``hub/floor/report.py`` writes, only from folders named by a real
        day, ISO week or month: the path never comes from the request."""
        self._manager(args.token, now)
        if args.name not in REPORT_MEDIA:
            raise RpcError(404, "no such report file")
        if args.day.startswith("latest"):
            folder = latest_report(self.home, LATEST[args.day])
        else:
            folder = reports_root(self.home) / _report_folder(args.day)
        if folder is None or not (folder / args.name).is_file():
            raise RpcError(404, "no such report yet: the hub writes one every night")
        data = (folder / args.name).read_bytes()
        return rpc.FileAnswer(
            name=args.name,
            media_type=REPORT_MEDIA[args.name],
            content_b64=base64.b64encode(data).decode(),
        )
