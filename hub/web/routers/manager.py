"""The manager page's data: today's alerts, who claimed what and how fast, false matches.

Computed by the hub (``hub.api.manager``) from its database; this route checks the input and
asks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from hub.web.errors import SESSION, errors
from hub.web.params import IsoDate
from hub.web.security import Session, ask_hub, manager_session

router = APIRouter(prefix="/api/manager", tags=["manager"])


@router.get("/day", responses=errors(*SESSION, 403))
async def day_report(
    request: Request,
    session: Annotated[Session, Depends(manager_session)],
    date: Annotated[IsoDate | None, Query(description="YYYY-MM-DD; default today")] = None,
) -> dict[str, Any]:
    args = {"token": session.token, "date": date.isoformat() if date else None}
    return await ask_hub(request, "manager_day", args)
