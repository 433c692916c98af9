"""The nightly floor reports over HTTP, for managers: the latest one, or one day's.

Only the four files ``hub/floor/report.py`` writes can be fetched, and only from folders named by a
valid date under ``HOME/reports``: the path never comes from the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from hub.floor.report import latest_report, reports_root
from hub.web.accounts import Session
from hub.web.errors import errors
from hub.web.params import IsoDate
from hub.web.security import manager_session

router = APIRouter(prefix="/reports", tags=["reports"])

FileName = Literal["report.html", "heatmap.png", "zones.csv", "insights.json"]
MEDIA = {
    "report.html": "text/html; charset=utf-8",
    "heatmap.png": "image/png",
    "zones.csv": "text/csv; charset=utf-8",
    "insights.json": "application/json",
}
Manager = Annotated[Session, Depends(manager_session)]


def _files(*names: str, codes: tuple[int, ...] = (401, 403, 404, 422)) -> dict[int | str, Any]:
    """The route's answers for the schema: the file(s) with their media types, or an error."""
    content = {
        MEDIA[n].split(";")[0]: {"schema": {} if n.endswith(".json") else {"type": "string"}}
        for n in names
    }
    return {200: {"content": content, "description": "the file"}, **errors(*codes)}


def _send(folder: Path | None, name: str) -> FileResponse:
    if folder is None or not (folder / name).is_file():
        raise HTTPException(404, "no such report yet: the hub writes one every night")
    return FileResponse(folder / name, media_type=MEDIA[name])


@router.get(
    "/latest", response_class=FileResponse, responses=_files("report.html", codes=(401, 403, 404))
)
def latest(request: Request, _: Manager) -> FileResponse:
    """The newest report's one-page summary (heatmap embedded)."""
    return _send(latest_report(request.app.state.home), "report.html")


@router.get("/latest/{name}", response_class=FileResponse, responses=_files(*MEDIA))
def latest_file(request: Request, _: Manager, name: FileName) -> FileResponse:
    return _send(latest_report(request.app.state.home), name)


@router.get("/{day}/{name}", response_class=FileResponse, responses=_files(*MEDIA))
def day_file(request: Request, _: Manager, day: IsoDate, name: FileName) -> FileResponse:
    return _send(reports_root(request.app.state.home) / day.isoformat(), name)
