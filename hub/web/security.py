"""Request guards: the session (asked of the hub), CSRF, roles, body size, headers.

The web process keeps no session state: the cookie's token goes to the hub with every request
(``storesense.rpc`` op ``session``, or as the ``token`` argument of the op itself), and the hub
answers who it is. The cookie is HttpOnly and SameSite=Strict; on top of that every
state-changing request must carry the session's CSRF token in ``X-CSRF-Token`` (compared in
constant time) and, when the browser sends an ``Origin``, it must be this site. WebSockets get
the same Origin check (cross-site WebSocket hijacking), since browsers send cookies with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.web.gateway import Gateway, GatewayUnavailable, HubRefused, PhoneLink
from storesense import rpc

COOKIE = "ss_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 64 * 1024  # the biggest legitimate body is a POS basket, a few KiB
BODY_TIMEOUT_S = 15.0
# Paths that are the same for every user (code, icons): cacheable. Everything else (the API,
# report files, customer photos, the pages that show them) is sent with no-store, so customer
# data never lingers in a shared phone's HTTP cache.
CACHEABLE_PREFIXES = ("/static/", "/icons/", "/manifest.webmanifest")


@dataclass(frozen=True)
class Staff:
    staff_id: str
    name: str
    role: Literal["salesperson", "manager"]


@dataclass(frozen=True)
class Session:
    """Who the hub says the cookie belongs to, for this one request (never cached)."""

    staff: Staff
    csrf_token: str
    expires_at: float
    token: str

    @classmethod
    def from_info(cls, info: rpc.SessionInfo, token: str) -> Session:
        return cls(Staff(info.staff_id, info.name, info.role), info.csrf_token,
                   info.expires_at, token)  # fmt: skip


def session_key(token: str) -> str:
    """A name for a session's sockets (logout closes them); the same digest the hub stores."""
    return hashlib.sha256(token.encode()).hexdigest()


def gateway_of(request: Request | WebSocket) -> Gateway:
    return request.app.state.gateway


async def ask_hub(
    request: Request | WebSocket, op: rpc.Op, args: dict[str, Any], timeout_s: float | None = None
) -> Any:
    """One request to the hub, its refusals turned into the HTTP answers they stand for."""
    try:
        return await gateway_of(request).call(op, args, timeout_s)
    except GatewayUnavailable as exc:
        raise HTTPException(503, f"{exc}; try again") from None
    except HubRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None


def _same_origin(origin: str | None, host: str | None) -> bool:
    """No Origin (curl, native clients, same-origin GET) passes; a foreign one does not."""
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc == host


async def session_from_token(request: Request | WebSocket, token: str | None) -> Session:
    if not token or len(token) > 128:
        raise HTTPException(401, "not logged in (or the session expired): log in again")
    info = rpc.SessionInfo.model_validate(await ask_hub(request, "session", {"token": token}))
    gateway_of(request).learn_name(info.staff_id, info.name)
    return Session.from_info(info, token)


async def current_session(request: Request) -> Session:
    return await session_from_token(request, request.cookies.get(COOKIE))


async def csrf_session(
    request: Request, session: Annotated[Session, Depends(current_session)]
) -> Session:
    """For every POST: a logged-in session whose CSRF token the request repeats."""
    if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise HTTPException(403, "cross-site request refused")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return session


async def press_token(request: Request) -> str:
    """For a button press: the cookie's token, same-origin checked here; the hub checks the
    session and the CSRF token inside the claim request itself (one round trip, not two: a
    press is the path whose latency the phones feel)."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        raise HTTPException(401, "not logged in (or the session expired): log in again")
    if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise HTTPException(403, "cross-site request refused")
    return token


async def manager_session(session: Annotated[Session, Depends(current_session)]) -> Session:
    """A convenience check for a clear 403 early; the hub checks the role again itself."""
    if session.staff.role != "manager":
        raise HTTPException(403, "managers only")
    return session


async def websocket_session(websocket: WebSocket) -> Session | None:
    if not websocket_same_origin(websocket):
        return None
    try:
        return await session_from_token(websocket, websocket.cookies.get(COOKIE))
    except HTTPException:
        return None


def websocket_same_origin(websocket: WebSocket) -> bool:
    return _same_origin(websocket.headers.get("origin"), websocket.headers.get("host"))


async def refuse_handshake(websocket: WebSocket, status: int, detail: str) -> None:
    """Answer a WebSocket upgrade with an HTTP status instead of accepting it: 401 for no
    (or an ended) session, as every other route says it, 403 for a foreign origin.

    Through the ASGI denial-response extension (uvicorn has it); a server without it gets a
    close before accept, which every server turns into a bare 403. A browser's WebSocket
    never exposes the handshake's status either way, so the page asks ``/api/me`` when a
    socket closes before opening, and a 401 there returns it to the login."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:
        await websocket.close(code=1008)


SESSION_RECHECK_S = 5.0
# WebSocket close code for "your session ended" (expired, idle, logged out, account disabled):
# the page returns to the login instead of reconnecting. 4000-4999 are the application's.
SESSION_ENDED = 4401


@dataclass(eq=False)
class _Watch:
    websocket: WebSocket
    link: PhoneLink


def _watches(app: Any) -> dict[str, set[_Watch]]:
    if not hasattr(app.state, "session_watches"):
        app.state.session_watches = {}
    return app.state.session_watches


async def end_socket(websocket: WebSocket, link: PhoneLink) -> None:
    """Close one phone socket because its session ended: no more alerts reach it from now."""
    gateway_of(websocket).unregister(link)
    with contextlib.suppress(RuntimeError, OSError):  # already closing or closed
        await websocket.close(code=SESSION_ENDED, reason="session ended: log in again")


async def end_session_sockets(request: Request, token: str) -> int:
    """Logout: close that session's sockets now, with the 'session ended' code."""
    watches = _watches(request.app).pop(session_key(token), set())
    for w in watches:
        await end_socket(w.websocket, w.link)
    gateway_of(request).drop_session(session_key(token))
    return len(watches)


async def watch_session(
    websocket: WebSocket,
    session: Session,
    link: PhoneLink,
    recheck_s: float = SESSION_RECHECK_S,
) -> None:
    """Keep an open WebSocket only while its session lives.

    The session's end (``expires_at``: the 12-hour expiry or the idle deadline, whichever
    comes first) is known, so the socket is closed at that instant, not at the next alert;
    and the hub is asked every ``recheck_s`` (op ``session_check``, which does not count as
    use) so an account disabled or a session ended elsewhere closes within that time. A hub
    that cannot be asked keeps the socket until the known end (failing closed only then).
    """
    key = session_key(session.token)
    watch = _Watch(websocket, link)
    _watches(websocket.app).setdefault(key, set()).add(watch)
    ends_at = session.expires_at
    try:
        while True:
            await asyncio.sleep(max(0.0, min(ends_at - time.time(), recheck_s)))
            try:
                answer = await gateway_of(websocket).call("session_check", {"token": session.token})
                ends_at = rpc.SessionInfo.model_validate(answer).expires_at
            except HubRefused as exc:
                if exc.status in (401, 403):
                    break  # expired, idle, logged out or disabled
                continue  # a hub error is no logout
            except GatewayUnavailable:
                if time.time() >= ends_at:
                    break
                continue
            if time.time() >= ends_at:
                break
        await end_socket(websocket, link)
    finally:
        watches = _watches(websocket.app).get(key)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                _watches(websocket.app).pop(key, None)


class BodyLimit:
    """Pure ASGI: refuse bodies over ``max_bytes`` with 413 before any endpoint parses them.

    Checks ``Content-Length`` first, then counts chunked bodies as they arrive, so a client
    that lies about the length or streams without one is cut off too; a body with a gap of
    more than ``timeout_s`` gets 408 (uvicorn has no body timeout of its own).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _plain(send, 413, f"request body over {self.max_bytes} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:  # a body that stops arriving must not hold the connection (and a slot)
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                await _plain(send, 408, f"request body stalled for {self.timeout_s:g} s")
                return
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _plain(send, 413, f"request body over {self.max_bytes} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _plain(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = {
    # Only our own scripts, styles and socket; no inline script, no framing (clickjacking).
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """Pure ASGI: the headers above on every response; ``Cache-Control: no-store`` on all but
    the shared static files (customer, photo and report responses must not linger in a shared
    phone's HTTP cache); ``Strict-Transport-Security`` when the request came over TLS (the
    scheme is uvicorn's, or a configured proxy's X-Forwarded-Proto), so a phone that once
    reached the app over HTTPS never again sends its cookie in clear."""

    def __init__(self, app: ASGIApp, hsts_max_age_s: int = 31_536_000) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age_s}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = not scope["path"].startswith(CACHEABLE_PREFIXES)
        tls = scope.get("scheme") == "https"

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if not private or
                    k.lower() != b"cache-control"
                ]  # fmt: skip
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if private:
                    headers.append((b"cache-control", b"no-store"))
                if tls:
                    headers.append((b"strict-transport-security", self.hsts))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
