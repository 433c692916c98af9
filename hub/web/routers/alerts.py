"""Alerts for the phones: the WebSocket push, a polling snapshot, and the three buttons.

Accept, 'Not this person' and 'Done with customer' are POSTs (session + CSRF token) that the
gateway sends to the hub as ``claim`` requests with a deadline; the hub arbitrates
(``hub.alerts.claims``) and answers. A press the hub did not answer by the deadline (hub down,
broker away) is answered 503 "nothing was changed", and the hub refuses it if it ever arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, WebSocket
from fastapi.websockets import WebSocketDisconnect
from pydantic import BaseModel

from hub.web.errors import POST_SESSION, SESSION, errors
from hub.web.gateway import Gateway, PhoneLink
from hub.web.security import (
    CSRF_HEADER,
    Session,
    ask_hub,
    current_session,
    press_token,
    session_key,
    websocket_session,
)
from storesense import rpc

log = logging.getLogger(__name__)
router = APIRouter(tags=["alerts"])

AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Since = Annotated[int, Query(ge=0, le=2**62, description="highest alert seq the phone has seen")]
MAX_WS_TEXT = 1024  # phones only send pings


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
    action: Literal["claim", "reject", "done"],
    token: Annotated[str, Depends(press_token)],
) -> ActionResult:
    csrf = request.headers.get(CSRF_HEADER, "")[:128]
    args = {"token": token, "csrf": csrf, "alert_id": alert_id, "action": action}
    answer = rpc.ClaimAnswer.model_validate(await ask_hub(request, "claim", args))
    return ActionResult(**answer.model_dump())


@router.websocket("/ws")
async def phone_socket(websocket: WebSocket, since: int = 0) -> None:
    """Snapshot (resync by seq) first, then every alert change as it reaches the gateway."""
    session = await websocket_session(websocket)
    if session is None or not 0 <= since <= 2**62:
        await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
        return
    await websocket.accept()
    gateway: Gateway = websocket.app.state.gateway
    link = gateway.register(session.staff.staff_id, session_key(session.token))
    # register and snapshot with no await between: no change can fall in the gap
    await websocket.send_text(json.dumps(gateway.snapshot(since)))
    sender = asyncio.create_task(_send_loop(websocket, link, session.expires_at))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text") or ""
            if message.get("bytes") is not None or len(text) > MAX_WS_TEXT:
                await websocket.close(code=1003)  # phones only send short text pings
                break
            if text == "ping":
                link.queue.put_nowait('{"type": "pong"}')
    except (WebSocketDisconnect, RuntimeError, asyncio.QueueFull):
        pass
    finally:
        gateway.unregister(link)
        link.close()
        sender.cancel()


async def _send_loop(websocket: WebSocket, link: PhoneLink, expires_at: float) -> None:
    try:
        while True:
            text = await link.queue.get()
            if text is None or time.time() >= expires_at:
                await websocket.close(code=1008 if text is not None else 1000)
                return
            await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    except Exception:  # a send on a half-closed socket; never take the server down
        log.debug("phone socket send failed", exc_info=True)
