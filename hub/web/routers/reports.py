"""The floor reports over HTTP, for managers: the latest, one day's, one ISO week's, one
month's (the nightly job keeps them all).

Only the five files ``hub/floor/report.py`` writes can be fetched, and only from folders named
by a valid day, week or month under the hub's ``HOME/reports``; the hub reads them (op
``report_file``) and sends the bytes, since this process has no access to the hub's folder.
The manager page links ``/reports/latest``, ``/reports/weeks/latest`` and
``/reports/months/latest`` (each page links its PDF and data files by relative URL).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from pydantic import StringConstraints

from hub.web.errors import errors
from hub.web.params import IsoDate
from hub.web.security import Session, ask_hub, manager_session
from storesense import rpc

router = APIRouter(prefix="/reports", tags=["reports"])

FileName = Literal["report.html", "heatmap.png", "zones.csv", "insights.json", "report.pdf"]
MEDIA = {
    "report.html": "text/html; charset=utf-8",
    "heatmap.png": "image/png",
    "zones.csv": "text/csv; charset=utf-8",
    "insights.json": "application/json",
    "report.pdf": "application/pdf",
}
# ISO week (week 01-53) and month (01-12); the hub checks the week exists in that year.
IsoWeek = Annotated[str, StringConstraints(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")]
IsoMonth = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Manager = Annotated[Session, Depends(manager_session)]


def _files(*names: str, codes: tuple[int, ...] = (401, 403, 404, 422)) -> dict[int | str, Any]:
    """The route's answers for the schema: the file(s) with their media types, or an error."""
    content = {
        MEDIA[n].split(";")[0]: {"schema": {} if n.endswith(".json") else {"type": "string"}}
        for n in names
    }
    return {200: {"content": content, "description": "the file"}, **errors(*codes)}


async def _send(request: Request, session: Session, day: str, name: str) -> Response:
    args = {"token": session.token, "day": day, "name": name}
    answer = rpc.FileAnswer.model_validate(await ask_hub(request, "report_file", args))
    return Response(base64.b64decode(answer.content_b64), media_type=MEDIA[name])


@router.get(
    "/latest", response_class=FileResponse, responses=_files("report.html", codes=(401, 403, 404))
)
async def latest(request: Request, session: Manager) -> Response:
    """The newest report's one-page summary (heatmap embedded)."""
    return await _send(request, session, "latest", "report.html")


@router.get("/latest/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def latest_file(request: Request, session: Manager, name: FileName) -> Response:
    return await _send(request, session, "latest", name)


@router.get(
    "/weeks/latest",
    response_class=FileResponse,
    responses=_files("report.html", codes=(401, 403, 404)),
)
async def latest_week(request: Request, session: Manager) -> Response:
    """The newest week's report (Monday to Sunday; the current week so far)."""
    return await _send(request, session, "latest-week", "report.html")


@router.get("/weeks/latest/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def latest_week_file(request: Request, session: Manager, name: FileName) -> Response:
    return await _send(request, session, "latest-week", name)


@router.get("/weeks/{week}/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def week_file(request: Request, session: Manager, week: IsoWeek, name: FileName) -> Response:
    """One ISO week's report, ``YYYY-Www`` (e.g. 2025-W09)."""
    return await _send(request, session, week, name)


@router.get(
    "/months/latest",
    response_class=FileResponse,
    responses=_files("report.html", codes=(401, 403, 404)),
)
async def latest_month(request: Request, session: Manager) -> Response:
    """The newest month's report (the current month so far)."""
    return await _send(request, session, "latest-month", "report.html")


@router.get("/months/latest/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def latest_month_file(request: Request, session: Manager, name: FileName) -> Response:
    return await _send(request, session, "latest-month", name)


@router.get("/months/{month}/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def month_file(
    request: Request, session: Manager, month: IsoMonth, name: FileName
) -> Response:
    """One month's report, ``YYYY-MM``."""
    return await _send(request, session, month, name)


@router.get("/{day}/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def day_file(request: Request, session: Manager, day: IsoDate, name: FileName) -> Response:
    return await _send(request, session, day.isoformat(), name)
