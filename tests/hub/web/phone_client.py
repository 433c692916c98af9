"""A scripted phone for tests: logs in over HTTP, listens on the WebSocket like app.js does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.hub.web.conftest import PASSWORD


class ScriptedPhone:
    """Keeps the highest seq per alert (the app's rule) and records when each state arrived."""

    def __init__(self, base_url: str, staff_id: str) -> None:
        self.base_url = base_url
        self.staff_id = staff_id
        self.http = httpx.Client(base_url=base_url, timeout=10)
        res = self.http.post("/api/login", json={"staff_id": staff_id, "password": PASSWORD})
        res.raise_for_status()
        self.csrf = res.json()["csrf_token"]
        self.alerts: dict[str, dict[str, Any]] = {}
        self.arrived: dict[tuple[str, str], float] = {}  # (alert_id, state) -> monotonic s
        self.snapshots: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []  # the store's health as the gateway relays it
        self.gone: list[str] = []  # alerts the gateway said are gone
        self.max_seq = 0
        self._cond = threading.Condition()
        self.ws: ClientConnection | None = None
        self._reader: threading.Thread | None = None

    def open_socket(self) -> ScriptedPhone:
        cookie = f"ss_session={self.http.cookies['ss_session']}"
        url = self.base_url.replace("http://", "ws://") + f"/ws?since={self.max_seq}"
        self.ws = connect(url, additional_headers={"Cookie": cookie}, open_timeout=10)
        self._reader = threading.Thread(target=self._read, args=(self.ws,), daemon=True)
        self._reader.start()
        return self

    def close_socket(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self._reader.join(timeout=5)
            self.ws = None

    def _apply(self, alert: dict[str, Any]) -> None:
        known = self.alerts.get(alert["alert_id"])
        if known is not None and known["seq"] >= alert["seq"]:
            return
        self.alerts[alert["alert_id"]] = alert
        self.max_seq = max(self.max_seq, alert["seq"])
        self.arrived.setdefault((alert["alert_id"], alert["state"]), time.monotonic())

    def _read(self, ws: ClientConnection) -> None:
        try:
            for text in ws:
                msg = json.loads(text)
                with self._cond:
                    if msg["type"] == "snapshot":
                        self.snapshots.append(msg)
                        for a in msg["alerts"]:
                            self._apply(a)
                        for aid, a in list(self.alerts.items()):
                            if a["state"] == "open" and aid not in msg["open_ids"]:
                                del self.alerts[aid]
                    elif msg["type"] == "alert":
                        self._apply(msg["alert"])
                    elif msg["type"] == "gone":  # the hub cleared it (an erasure)
                        self.alerts.pop(msg["alert_id"], None)
                        self.gone.append(msg["alert_id"])
                    elif msg["type"] == "status":
                        self.statuses.append(msg)
                    self._cond.notify_all()
        except Exception:  # the socket closed under us: the test decides what that means
            return

    def open_ids(self) -> set[str]:
        with self._cond:
            return {aid for aid, a in self.alerts.items() if a["state"] == "open"}

    def wait(self, predicate: Callable[[ScriptedPhone], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def act(self, alert_id: str, action: str) -> httpx.Response:
        return self.http.post(
            f"/api/alerts/{alert_id}/{action}", headers={"X-CSRF-Token": self.csrf}
        )

    def close(self) -> None:
        self.close_socket()
        self.http.close()
