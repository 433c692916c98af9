"""The floor reports over HTTP: managers only, only the report files, latest first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient

from hub.floor.report import build_report, period_bounds, reports_root
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


def test_weeks_months_and_the_pdf(client: TestClient, home: Path, cfg: StoreConfig):
    """The nightly job keeps a folder per day, ISO week and month; managers fetch each, the
    latest of each, and the PDF. Names that are not a real week or month are refused."""
    conn = db.open_db(hub_db_path(home))
    for period in ("day", "week", "month"):
        _, _, folder = period_bounds(period, dt.date(2025, 3, 5))
        build_report(conn, cfg, dt.date(2025, 3, 5), reports_root(home) / folder, period=period)
    conn.close()
    login(client, MANAGER[0])
    week = client.get("/reports/weeks/latest")
    assert week.status_code == 200 and "2025-03-03 to 2025-03-09" in week.text  # Mon..Sun
    month = client.get("/reports/months/latest")
    assert month.status_code == 200 and "2025-03-01 to 2025-03-31" in month.text
    assert "2025-03-05" in client.get("/reports/latest").text
    pdf = client.get("/reports/weeks/2025-W10/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    assert client.get("/reports/months/2025-03/insights.json").json()["period"] == {
        "kind": "month",
        "start": "2025-03-01",
        "end": "2025-03-31",
        "observed_s": 0.0,
    }
    assert client.get("/reports/2025-03-05/report.pdf").content[:5] == b"%PDF-"
    assert client.get("/reports/months/latest/zones.csv").text.startswith("zone,kind")
    assert client.get("/reports/weeks/2025-W11/report.html").status_code == 404
    # shaped like a week, but 2025 has 52: no such report (a 422 is for a malformed name)
    assert client.get("/reports/weeks/2025-W53/report.html").status_code == 404
    assert client.get("/reports/weeks/2025-W54/report.html").status_code == 422
    assert client.get("/reports/months/2025-13/report.html").status_code == 422
    assert client.get("/reports/months/2025-03/store.yaml").status_code == 422
    client.post("/api/logout")
    client.cookies.clear()
    login(client, "alice")
    assert client.get("/reports/weeks/latest").status_code == 403
