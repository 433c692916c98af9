"""The floor reports over HTTP: managers only, only the report files, latest first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient

from hub.floor.report import build_report, reports_root
from hub.store import db
from storesense.config import StoreConfig
from storesense.paths import hub_db_path
from tests.hub.web.conftest import MANAGER, login


def _write(home: Path, cfg: StoreConfig, day: dt.date) -> None:
    conn = db.open_db(hub_db_path(home))
    build_report(conn, cfg, day, reports_root(home) / day.isoformat())
    conn.close()


def test_reports_for_managers_only(client: TestClient, home: Path, cfg: StoreConfig):
    assert client.get("/reports/latest").status_code == 401
    login(client, "alice")
    assert client.get("/reports/latest").status_code == 403
    client.post("/api/logout")
    client.cookies.clear()
    login(client, MANAGER[0])
    assert client.get("/reports/latest").status_code == 404  # none written yet
    _write(home, cfg, dt.date(2025, 3, 1))
    _write(home, cfg, dt.date(2025, 3, 2))
    page = client.get("/reports/latest")
    assert page.status_code == 200 and "2025-03-02" in page.text
    png = client.get("/reports/2025-03-01/heatmap.png")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get("/reports/latest/zones.csv").text.startswith("zone,kind")
    assert client.get("/reports/2025-03-01/store.yaml").status_code == 422
    assert client.get("/reports/2025-03-01/..%2F..%2Fhub.sqlite3").status_code in (404, 422)
    assert client.get("/reports/2025-02-30/report.html").status_code == 422
    assert client.get("/reports/2024-01-01/report.html").status_code == 404
