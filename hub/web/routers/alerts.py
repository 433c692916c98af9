"""Alerts for the phones: the WebSocket push, a polling snapshot, "My customers", the buttons.

Accept, 'Not this person', 'Done with customer' and 'Hand over' are POSTs (session + CSRF
token) that the gateway sends to the hub as ``claim`` requests with a deadline; the hub arbitrates
(``hub.alerts.claims``) and answers. A press the hub did not answer by the deadline (hub down,
broker away) is answered 503 "nothing was changed", and the hub refuses it if it ever arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, WebSocket
from fastapi.responses import Response
from fastapi.websockets import WebSocketDisconnect, WebSocketState
from pydantic import BaseModel, Field

from hub.web.errors import POST_SESSION, SESSION, errors
from hub.web.gateway import Gateway, PhoneLink
from hub.web.params import IsoDate
from hub.web.security import (
    CSRF_HEADER,
    Session,
    ask_hub,
    csrf_session,
    current_session,
    manager_session,
    press_token,
    refuse_handshake,
    session_key,
    watch_session,
    websocket_same_origin,
    websocket_session,
)
from storesense import ids, rpc

log = logging.getLogger(__name__)
router = APIRouter(tags=["alerts"])

AlertId = Annotated[str, Path(pattern=ids.IDENT_PATTERN)]  # storesense/ids.py
Since = Annotated[int, Query(ge=0, le=2**62, description="highest alert seq the phone has seen")]
MAX_WS_TEXT = 1024  # phones only send pings


class MyCustomer(BaseModel):
    """A customer this salesperson holds (claimed, not done), as the hub's table says."""

    alert_id: str
    customer_id: str
    customer_name: str
    camera_id: str
    entrance_name: str
    arrived_at: float
    claimed_at: float | None
    ask_at: float  # the phone asks "still with …?" from here
    ends_at: float  # and the hub ends the claim here if nobody answered


class ActionResult(BaseModel):
    alert_id: str
    outcome: str
    message: str
    claimed_by: str | None
    customer_id: str | None = None


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


@router.get("/api/alerts", responses=errors(*SESSION))
async def snapshot(
    request: Request,
    _: Annotated[Session, Depends(current_session)],
    since: Since = 0,
) -> dict:
    """The same resync a WebSocket gets on connect, for a phone that polls."""
    return _gateway(request).snapshot(since)


@router.post(
    "/api/alerts/{alert_id}/{action}",
    response_model=ActionResult,
    responses=errors(*POST_SESSION, 404, 503),
)
async def act(
    request: Request,
    alert_id: AlertId,
    action: Literal["claim", "reject", "done", "handover", "keep"],
    token: Annotated[str, Depends(press_token)],
) -> ActionResult:
    csrf = request.headers.get(CSRF_HEADER, "")[:128]
    args = {"token": token, "csrf": csrf, "alert_id": alert_id, "action": action}
    answer = rpc.ClaimAnswer.model_validate(await ask_hub(request, "claim", args))
    return ActionResult(**answer.model_dump())


@router.get("/api/my-customers", response_model=list[MyCustomer], responses=errors(401, 403))
async def my_customers(
    request: Request, token: Annotated[str, Depends(press_token)]
) -> list[MyCustomer]:
    """The phone's "My customers": from the hub's table, so Back, a reload or a new login
    never loses a claimed customer (the retained alert may be long gone)."""
    held = await ask_hub(request, "my_customers", {"token": token})
    gateway = _gateway(request)
    return [MyCustomer(**h, entrance_name=gateway.entrance_name(h["camera_id"])) for h in held]


@router.get("/api/missed-alerts", responses=errors(*SESSION, 403))
async def missed_alerts(
    request: Request,
    session: Annotated[Session, Depends(manager_session)],
    date: Annotated[IsoDate | None, Query(description="YYYY-MM-DD; default today")] = None,
) -> dict[str, Any]:
    """Managers: customers whose alert expired with nobody accepting (count and list)."""
    args = {"token": session.token, "date": date.isoformat() if date else None}
    return await ask_hub(request, "missed_alerts", args)


# HTTPS on a known push service only (the hub checks again, hub.push.subscriptions): the
# endpoint comes from a phone, and the hub must not POST wherever a phone says.
PUSH_ENDPOINT = (
    r"^https://(fcm\.googleapis\.com|updates\.push\.services\.mozilla\.com|web\.push\.apple\.com"
    r"|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.notify\.windows\.com)/[!-~]+$"
)


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=20, max_length=128, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+=*$")


class PushEndpointIn(BaseModel):
    endpoint: str = Field(max_length=1024, pattern=PUSH_ENDPOINT)


class PushSubscriptionIn(PushEndpointIn):
    """What the browser's ``PushSubscription.toJSON()`` gives (``expirationTime`` ignored)."""

    keys: PushKeys
    expirationTime: float | None = None  # the browser's spelling


@router.get("/api/push/key", responses=errors(401, 404))
async def push_key(request: Request, token: Annotated[str, Depends(press_token)]) -> dict:
    """The store's VAPID public key, for ``pushManager.subscribe``."""
    return await ask_hub(request, "push_key", {"token": token})


@router.post(
    "/api/push/subscribe", status_code=204, response_class=Response,
    responses=errors(*POST_SESSION, 404),
)  # fmt: skip
async def push_subscribe(
    request: Request,
    body: PushSubscriptionIn,
    session: Annotated[Session, Depends(csrf_session)],
) -> Response:
    """Store this phone's Web Push subscription in the hub (hub/push)."""
    args = {"token": session.token, "endpoint": body.endpoint,
            "p256dh": body.keys.p256dh, "auth": body.keys.auth}  # fmt: skip
    await ask_hub(request, "push_subscribe", args)
    return Response(status_code=204)


@router.post(
    "/api/push/unsubscribe", status_code=204, response_class=Response,
    responses=errors(*POST_SESSION),
)  # fmt: skip
async def push_unsubscribe(
    request: Request,
    body: PushEndpointIn,
    session: Annotated[Session, Depends(csrf_session)],
) -> Response:
    """Forget this phone's subscription (logout on a shared phone)."""
    await ask_hub(request, "push_unsubscribe", {"token": session.token, "endpoint": body.endpoint})
    return Response(status_code=204)


@router.websocket("/ws")
async def phone_socket(websocket: WebSocket, since: int = 0) -> None:
    """Snapshot (resync by seq) first, then every alert change as it reaches the gateway.

    One socket's failure stays that socket's: its sender and session watcher are supervised
    tasks (:func:`_supervise`), its receive loop catches what it did not expect, and either
    way the failure is logged with its traceback, counted in ``/healthz`` ``errors``
    (``ws_send``, ``ws_session``, ``ws_receive``) and only this socket is closed (1011: the
    phone reconnects and resyncs by seq). Frames a phone never sends (binary, over
    ``MAX_WS_TEXT``, any text but ``ping``) are counted as rejections (``/healthz``
    ``rejected``); the first two close the socket, the third is ignored.
    """
    if not websocket_same_origin(websocket):
        await refuse_handshake(websocket, 403, "cross-site WebSocket refused")
        return
    session = await websocket_session(websocket)
    if session is None:
        await refuse_handshake(websocket, 401, "not logged in (or the session ended)")
        return
    if not 0 <= since <= 2**62:
        await refuse_handshake(websocket, 422, "since: out of range")
        return
    await websocket.accept()
    gateway: Gateway = websocket.app.state.gateway
    link = gateway.register(session.staff.staff_id, session_key(session.token))
    # register and snapshot with no await between: no change can fall in the gap
    await websocket.send_text(json.dumps(gateway.snapshot(since)))
    sender = _supervise(websocket, link, "ws_send", _send_loop(websocket, link, session.expires_at))
    # closes the socket (code 4401) when the session expires, idles out or is ended
    watcher = _supervise(websocket, link, "ws_session", watch_session(websocket, session, link))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text") or ""
            if message.get("bytes") is not None or len(text) > MAX_WS_TEXT:
                why = "ws_binary" if message.get("bytes") is not None else "ws_too_large"
                gateway.stats.rejected[why] += 1
                await websocket.close(code=1003)  # phones only send short text pings
                break
            if text == "ping":
                link.queue.put_nowait('{"type": "pong"}')
            else:
                gateway.stats.rejected["ws_unknown_text"] += 1
    except (WebSocketDisconnect, asyncio.QueueFull):
        pass
    except RuntimeError as exc:  # Starlette: a receive or close after the socket closed
        if websocket.client_state != WebSocketState.DISCONNECTED and (
            websocket.application_state != WebSocketState.DISCONNECTED
        ):
            _socket_failed(websocket, link, "ws_receive", exc)
    except Exception as exc:
        _socket_failed(websocket, link, "ws_receive", exc)
    finally:
        gateway.unregister(link)
        link.close()
        sender.cancel()
        watcher.cancel()


def _supervise(
    websocket: WebSocket, link: PhoneLink, step: str, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """``coro`` as a task of this socket whose exception is never lost: without this an
    unawaited task's error surfaces only as "exception was never retrieved" at garbage
    collection, and the socket lives on without its sender (no more alerts) or its session
    watch (no logout)."""
    task = asyncio.create_task(coro, name=f"{step}:{link.staff_id}")

    def ended(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and (exc := t.exception()) is not None:
            _socket_failed(websocket, link, step, exc)

    task.add_done_callback(ended)
    return task


def _socket_failed(websocket: WebSocket, link: PhoneLink, step: str, exc: BaseException) -> None:
    """Log and count one socket's failure and close that socket (1011), nothing else."""
    gateway: Gateway = websocket.app.state.gateway
    gateway.guard.count(step)
    log.error("phone socket of %s: %s failed; closing it", link.staff_id, step, exc_info=exc)
    gateway.unregister(link)  # no more alerts queue for it; the receive loop's end tidies up
    closing = asyncio.ensure_future(_close(websocket, 1011))
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


_closing: set[asyncio.Future[None]] = set()  # close tasks in flight (asyncio keeps weak refs)


async def _close(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code=code)


async def _send_loop(websocket: WebSocket, link: PhoneLink, expires_at: float) -> None:
    try:
        while True:
            text = await link.queue.get()
            if text is None or time.time() >= expires_at:
                await websocket.close(code=1008 if text is not None else 1000)
                return
            await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # a send on a closing or closed socket: the receive loop ends it
    # anything else reaches the supervisor (_supervise): logged, counted, this socket closed
