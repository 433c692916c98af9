"""The nightly floor reports over HTTP, for managers: the latest one, or one day's.

Only the four files ``hub/floor/report.py`` writes can be fetched, and only from folders named
by a valid date under the hub's ``HOME/reports``; the hub reads them (op ``report_file``) and
sends the bytes, since this process has no access to the hub's folder.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from hub.web.errors import errors
from hub.web.params import IsoDate
from hub.web.security import Session, ask_hub, manager_session
from storesense import rpc

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


@router.get("/{day}/{name}", response_class=FileResponse, responses=_files(*MEDIA))
async def day_file(request: Request, session: Manager, day: IsoDate, name: FileName) -> Response:
    return await _send(request, session, day.isoformat(), name)
