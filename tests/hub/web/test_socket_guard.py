"""One phone socket's trouble stays that socket's: real Mosquitto, the real hub, uvicorn, real
WebSocket clients.

While a hostile client keeps sending what no phone sends (malformed JSON, text over the
1 KiB a ping needs, a 1 MiB frame, binary) and reconnecting, and two other sockets' tasks fail
(an injected fault in bob's sender and in carol's session watch), alice's phone receives every
alert raised meanwhile, the server keeps serving, each failure is logged and counted in
``/healthz`` (``errors``: ``ws_send``, ``ws_session``; ``rejected``: the hostile frames), and
only the failing sockets are closed (1011, so the app reconnects and resyncs).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hub.faces.gallery import Gallery
from hub.store import db
from hub.web.gateway import PhoneLink
from hub.web.routers import alerts as alerts_router
from storesense.paths import hub_db_path, template_key_path
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.web.conftest import Stack, camera_sends, face_track
from tests.hub.web.phone_client import ScriptedPhone
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)


def _close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            ws.recv(timeout=20)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        return None


def _closed_with(phone: ScriptedPhone, timeout_s: float = 20) -> int | None:
    """The close code the server sent a scripted phone's socket, once its reader has ended."""
    assert phone.ws is not None and phone._reader is not None
    phone._reader.join(timeout_s)
    return None if phone._reader.is_alive() else phone.ws.close_code


class _Hostile(threading.Thread):
    """Logged in (a valid session: the frames reach the app), reconnecting after every close."""

    def __init__(self, base_url: str, cookie: str) -> None:
        super().__init__(daemon=True)
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.cookie = cookie
        self.stop = threading.Event()
        self.rounds = 0
        self.codes: list[int | None] = []
        self.error: BaseException | None = None

    def _socket(self) -> ClientConnection:
        ws = connect(self.url, additional_headers={"Cookie": self.cookie}, open_timeout=10)
        ws.recv(timeout=10)  # the snapshot
        return ws

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                ws = self._socket()
                ws.send('{"type": "claim", "alert_id": ')  # malformed JSON: ignored, counted
                ws.send('{"type": "ping"}')  # JSON a phone never sends: ignored, counted
                ws.send(b"\x00\xff" * 64)  # binary: closed 1003
                self.codes.append(_close_code(ws))
                ws = self._socket()
                ws.send("y" * 5000)  # over a ping's 1 KiB: closed 1003
                self.codes.append(_close_code(ws))
                ws = self._socket()
                with contextlib.suppress(ConnectionClosed):
                    ws.send("z" * (1 << 20))  # over uvicorn's ws_max_size: closed 1009
                self.codes.append(_close_code(ws))
                self.rounds += 1
        except BaseException as exc:  # the test reports it
            self.error = exc


def test_hostile_frames_and_failing_socket_tasks_leave_other_phones_and_the_server_alone(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    real_send, real_watch = alerts_router._send_loop, alerts_router.watch_session

    async def send_loop(websocket: Any, link: PhoneLink, expires_at: float) -> None:
        if link.staff_id == "bob":
            await link.queue.get()  # bob's sender dies on the first alert it should send
            raise KeyError("injected fault in bob's sender")
        await real_send(websocket, link, expires_at)

    def watch(websocket: Any, session: Any, link: PhoneLink) -> Coroutine[Any, Any, None]:
        async def failing() -> None:
            raise ValueError("injected fault in carol's session watch")

        return failing() if link.staff_id == "carol" else real_watch(websocket, session, link)

    monkeypatch.setattr(alerts_router, "_send_loop", send_loop)
    monkeypatch.setattr(alerts_router, "watch_session", watch)

    conn = db.connect(hub_db_path(stack.home))
    gallery = Gallery.open(conn, template_key_path(stack.home))
    for i in (2, 3):
        gallery.enrol(f"c{i}", f"Customer {i}", consent(f"consent-{i}"), [(unit(i), 0.9, "t")])
    conn.close()

    alice = ScriptedPhone(stack.web.url, "alice").open_socket()
    bob = ScriptedPhone(stack.web.url, "bob").open_socket()
    carol = ScriptedPhone(stack.web.url, "carol").open_socket()
    maria = ScriptedPhone(stack.web.url, "maria")
    hostile = _Hostile(stack.web.url, f"ss_session={maria.http.cookies['ss_session']}")
    try:
        assert _closed_with(carol) == 1011  # its watch failed
        hostile.start()
        assert wait_for(lambda: hostile.rounds >= 1 or hostile.error, 60), hostile.error
        for i in (1, 2, 3):  # alerts raised while the hostile client goes on
            camera_sends(stack.cfg, face_track(unit(i)))
            assert alice.wait(lambda p, n=i: len(p.open_ids()) == n, 30), f"alert {i} missed"
        assert _closed_with(bob) == 1011  # its sender failed
        assert wait_for(lambda: hostile.rounds >= 3 or hostile.error, 90), hostile.error
    finally:
        hostile.stop.set()
        if hostile.ident is not None:
            hostile.join(60)
    try:
        assert hostile.error is None, repr(hostile.error)
        assert not hostile.is_alive()
        assert set(hostile.codes) == {1003, 1009}, hostile.codes
        health = httpx.get(f"{stack.web.url}/healthz", timeout=10).json()
        assert health["errors"] == {"ws_send": 1, "ws_session": 1}, health
        rejected = health["rejected"]
        assert rejected["ws_binary"] == hostile.rounds and rejected["ws_too_large"] == (
            hostile.rounds
        ), (rejected, hostile.rounds)
        assert rejected["ws_unknown_text"] == 2 * hostile.rounds, rejected
        said = caplog.text
        assert "phone socket of bob: ws_send failed" in said
        assert "phone socket of carol: ws_session failed" in said
        assert "injected fault in bob's sender" in said  # with its traceback
        assert "was never retrieved" not in said
        # alice never noticed; a new socket of hers resyncs to the same three open alerts
        assert alice.ws is not None and alice.ws.close_code is None
        again = ScriptedPhone(stack.web.url, "alice").open_socket()
        try:
            assert again.wait(lambda p: p.open_ids() == alice.open_ids(), 20)
        finally:
            again.close()
    finally:
        for phone in (alice, bob, carol, maria):
            phone.close()
