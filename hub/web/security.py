"""Request guards: database per request, session cookie, CSRF, roles, body size, headers.

The session cookie is HttpOnly and SameSite=Strict; on top of that every state-changing
request must carry the session's CSRF token in ``X-CSRF-Token`` (compared in constant time)
and, when the browser sends an ``Origin``, it must be this site. WebSockets get the same
Origin check (cross-site WebSocket hijacking), since browsers send cookies with them.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, WebSocket
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.store import db
from hub.web.accounts import Session, get_session

COOKIE = "ss_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 64 * 1024  # the biggest legitimate body is a POS basket, a few KiB


def get_db(request: Request) -> Iterator[sqlite3.Connection]:
    """A connection per request: FastAPI may run a dependency and its endpoint on different
    pool threads, so a per-thread connection could be shared by two requests at once. Opening
    one costs well under a millisecond (WAL is a property of the file, set by the hub)."""
    conn = db.connect(request.app.state.db_path)
    try:
        yield conn
    finally:
        conn.close()


Conn = Annotated[sqlite3.Connection, Depends(get_db)]


def _same_origin(origin: str | None, host: str | None) -> bool:
    """No Origin (curl, native clients, same-origin GET) passes; a foreign one does not."""
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc == host


def session_from_cookie(conn: sqlite3.Connection, token: str | None) -> Session | None:
    return get_session(conn, token) if token else None


def current_session(request: Request, conn: Conn) -> Session:
    session = session_from_cookie(conn, request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(401, "not logged in (or the session expired): log in again")
    return session


def csrf_session(
    request: Request, session: Annotated[Session, Depends(current_session)]
) -> Session:
    """For every POST: a logged-in session whose CSRF token the request repeats."""
    if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise HTTPException(403, "cross-site request refused")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return session


def manager_session(session: Annotated[Session, Depends(current_session)]) -> Session:
    if session.staff.role != "manager":
        raise HTTPException(403, "managers only")
    return session


def websocket_session(websocket: WebSocket, conn: sqlite3.Connection) -> Session | None:
    if not _same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
        return None
    return session_from_cookie(conn, websocket.cookies.get(COOKIE))


class LoginThrottle:
    """At most ``limit`` failed logins per staff id and per client address in ``window_s``.

    In memory: a restart forgets, which is acceptable for a store LAN; argon2 already makes
    each guess cost ~0.1 s of CPU.
    """

    def __init__(self, limit: int = 10, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, keys: list[str], now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            return any(len(self._recent(k, now)) >= self.limit for k in keys)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)


class BodyLimit:
    """Pure ASGI: refuse bodies over ``max_bytes`` with 413 before any endpoint parses them.

    Checks ``Content-Length`` first, then counts chunked bodies as they arrive, so a client
    that lies about the length or streams without one is cut off too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
            message = await receive()
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
    """Pure ASGI: the headers above on every response; ``no-store`` on the API (customer data
    must not linger in a shared phone's HTTP cache)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
