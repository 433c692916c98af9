"""Serving the web app: uvicorn with the limits an open store Wi-Fi needs, and the systemd hooks.

``storesense web run`` calls ``serve``; tests, the benchmark and the demo use ``ServerThread``
(the same configuration, on a thread of their own, on a port the OS picked).

What uvicorn does not do by itself, and is added here:

- **A request-head timeout** (``GuardedH11Protocol``): uvicorn's keep-alive timer starts only
  after a first response and is cancelled by any byte received, so a client that opens a
  connection and sends nothing, or a header a byte at a time, holds its socket (and, with
  ``limit_concurrency``, a slot that turns real phones away with 503) for ever. Here a timer
  runs from the connection (or the end of the previous response) until the whole request
  head has arrived; when it fires the connection is closed. (The gap inside a request body
  is ``hub.web.security.BodyLimit``'s; a TLS handshake that never finishes is bounded by
  asyncio's 60 s handshake timeout and costs only a file descriptor, which the unit's
  ``LimitNOFILE=`` provides.)
- **Rate-limited accept-error logging** (``AcceptErrorFilter``): when the process runs out of
  file descriptors asyncio logs every failed ``accept()``; an attack wrote 112 MB of log in
  27 s that way. One line per interval, with the count of those suppressed.
- **systemd** ``Type=notify``: READY once uvicorn listens, WATCHDOG pings from the event loop
  itself (a wedged loop stops them, and systemd restarts the unit), STOPPING at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from storesense import service_notify
from storesense.shop_config import AppConfig

log = logging.getLogger(__name__)
WS_MAX_BYTES = 16 * 1024  # phones only send pings
ACCEPT_LOG_INTERVAL_S = 10.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a timer on the request head (see the module docstring).

    ``header_timeout_s`` is set on a subclass made per server (``_protocol_for``)."""

    header_timeout_s: float = 10.0
    timed_out_heads = 0  # class-wide count, for tests and the status line

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        GuardedH11Protocol.timed_out_heads += 1
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        # abort, not close: a TLS close waits (30 s) for the silent peer's close_notify, and
        # until connection_lost the connection still counts against limit_concurrency
        self.connections.discard(self)
        self.transport.abort()

    def handle_events(self) -> None:
        scope_before = self.scope
        super().handle_events()
        if self.scope is not scope_before:  # a whole request head arrived (or a WS upgrade)
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.scope is not None:
            # the next request's head has as long as the first one's; uvicorn's keep-alive
            # timer (cancelled by the first byte) stays for the idle connection
            scope_now = self.scope
            self._arm_head_timer()
            if self.scope is not scope_now:  # a pipelined request was already complete
                self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def _protocol_for(header_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


class AcceptErrorFilter(logging.Filter):
    """At most one 'accept() failed' record per ``interval_s``; the next says how many were
    dropped. Other records pass untouched."""

    def __init__(self, interval_s: float = ACCEPT_LOG_INTERVAL_S) -> None:
        super().__init__("accept-errors")
        self.interval_s = interval_s
        self.suppressed = 0
        self._last = -float("inf")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "accept" not in text and "Too many open files" not in text:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                self.suppressed += 1
                return False
            self._last = now
            if self.suppressed:
                record.msg = f"{text} ({self.suppressed} similar lines suppressed)"
                record.args = None
                self.suppressed = 0
        return True


_accept_filter = AcceptErrorFilter()


def install_accept_error_filter() -> AcceptErrorFilter:
    """On the loggers asyncio and uvicorn report failed accepts on (idempotent)."""
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _accept_filter not in logger.filters:
            logger.addFilter(_accept_filter)
    return _accept_filter


@dataclass(frozen=True)
class Tls:
    certfile: str
    keyfile: str


def uvicorn_config(
    app: FastAPI,
    app_cfg: AppConfig,
    *,
    host: str,
    port: int,
    tls: Tls | None,
    log_level: str = "info",
) -> uvicorn.Config:
    """The one uvicorn configuration of the web app (``web run`` and ``ServerThread``)."""
    proxies = list(app_cfg.trusted_proxies)
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs.update(ssl_certfile=tls.certfile, ssl_keyfile=tls.keyfile)
    install_accept_error_filter()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_protocol_for(app_cfg.header_timeout_s),
        ws_max_size=WS_MAX_BYTES,
        timeout_keep_alive=max(1, round(app_cfg.keepalive_s)),
        limit_concurrency=app_cfg.limit_concurrency,
        backlog=min(app_cfg.limit_concurrency, 2048),
        h11_max_incomplete_event_size=16 * 1024,  # request line + headers of a phone: < 4 KiB
        # X-Forwarded-For/-Proto only from the configured proxies (uvicorn's own default
        # believes 127.0.0.1, i.e. anything else on the hub)
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        date_header=True,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **kwargs,
    )


async def _watchdog(server: uvicorn.Server) -> None:
    """READY once listening; WATCHDOG from the event loop at half the unit's interval."""
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.05)
    service_notify.ready()
    service_notify.status("serving the phone app")
    interval = service_notify.watchdog_interval_s()
    if interval is None:
        return
    while not server.should_exit:
        service_notify.watchdog()
        await asyncio.sleep(interval / 2)


async def _serve(server: uvicorn.Server) -> None:
    dog = asyncio.create_task(_watchdog(server))
    try:
        await server.serve()
    finally:
        service_notify.stopping()
        dog.cancel()


def serve(config: uvicorn.Config) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's handlers), telling systemd how it goes."""
    asyncio.run(_serve(uvicorn.Server(config)))


class ServerThread:
    """uvicorn on a background thread, listening on ``host`` (port 0: any free port), with the
    app's own serving limits (``app.state.cfg.app``) and optionally TLS."""

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: Tls | None = None,
        app_cfg: AppConfig | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.tls = tls
        cfg = app_cfg or app.state.cfg.app
        config = uvicorn_config(
            app, cfg, host=self.host, port=self.port, tls=tls, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="web"
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
