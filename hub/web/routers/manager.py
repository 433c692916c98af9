"""The manager page's data and actions: the day (arrivals, claims, time to claim, false
matches), missed customers, staff accounts, and withdrawing a customer's photo consent.

Computed and decided by the hub (``hub.api``: the role is checked there again, every change
audited with the manager's id); these routes check the input and ask. Every change is a POST
with the CSRF token; the page refreshes itself over the WebSocket (an alert event) instead of
polling.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from hub.web.errors import POST_SESSION, SESSION, errors
from hub.web.params import IsoDate
from hub.web.security import Session, ask_hub, csrf_session, manager_session
from storesense import ids

router = APIRouter(prefix="/api/manager", tags=["manager"])

Ident = ids.IDENT_PATTERN  # the id rules: storesense/ids.py
StaffId = Annotated[str, Path(pattern=Ident)]
Day = Annotated[IsoDate | None, Query(description="YYYY-MM-DD; default today")]


async def manager_post(session: Annotated[Session, Depends(csrf_session)]) -> Session:
    if session.staff.role != "manager":
        raise HTTPException(403, "managers only")
    return session


Manager = Annotated[Session, Depends(manager_session)]
ManagerPost = Annotated[Session, Depends(manager_post)]


class StaffOut(BaseModel):
    staff_id: str
    name: str
    role: Literal["salesperson", "manager"]
    active: bool
    created_at: float
    updated_at: float


class StaffIn(BaseModel):
    staff_id: str = Field(pattern=Ident)
    name: str = Field(min_length=1, max_length=100)
    role: Literal["salesperson", "manager"] = "salesperson"
    password: str = Field(min_length=8, max_length=256)


class ActiveIn(BaseModel):
    active: bool


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=256)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200, description="written to the audit log")


def _with_entrance_names(request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's ``camera_id`` also as the door's name from the store YAML (``display_name``):
    a manager knows "Main door", not ``door-1``."""
    cfg = request.app.state.cfg
    return [{**r, "entrance_name": cfg.entrance_name(r["camera_id"])} if "camera_id" in r else r
            for r in rows]  # fmt: skip


@router.get("/day", responses=errors(*SESSION, 403))
async def day_report(request: Request, session: Manager, date: Day = None) -> dict[str, Any]:
    args = {"token": session.token, "date": date.isoformat() if date else None}
    day = await ask_hub(request, "manager_day", args)
    for key in ("alerts", "false_matches"):
        if isinstance(day.get(key), list):
            day[key] = _with_entrance_names(request, day[key])
    return day


@router.get("/missed", responses=errors(*SESSION, 403))
async def missed(request: Request, session: Manager, date: Day = None) -> dict[str, Any]:
    """Customers nobody accepted before their alert expired."""
    args = {"token": session.token, "date": date.isoformat() if date else None}
    answer = await ask_hub(request, "missed_alerts", args)
    answer["alerts"] = _with_entrance_names(request, answer.get("alerts", []))
    return answer


@router.get("/staff", response_model=list[StaffOut], responses=errors(401, 403))
async def staff_list(request: Request, session: Manager) -> list[StaffOut]:
    rows = await ask_hub(request, "staff_list", {"token": session.token})
    return [StaffOut.model_validate(r) for r in rows]


@router.post("/staff", responses=errors(*POST_SESSION, 409))
async def staff_add(request: Request, body: StaffIn, session: ManagerPost) -> dict[str, Any]:
    return await ask_hub(request, "staff_add", {"token": session.token, **body.model_dump()})


@router.post("/staff/{staff_id}/active", responses=errors(*POST_SESSION, 404, 409))
async def staff_active(
    request: Request, staff_id: StaffId, body: ActiveIn, session: ManagerPost
) -> dict[str, Any]:
    """Disable (its phones are logged out at once) or enable an account."""
    args = {"token": session.token, "staff_id": staff_id, "active": body.active}
    return await ask_hub(request, "staff_set_active", args)


@router.post("/staff/{staff_id}/password", responses=errors(*POST_SESSION, 404))
async def staff_password(
    request: Request, staff_id: StaffId, body: PasswordIn, session: ManagerPost
) -> dict[str, Any]:
    args = {"token": session.token, "staff_id": staff_id, "password": body.password}
    return await ask_hub(request, "staff_reset_password", args)


@router.post("/customers/{customer_id}/withdraw-photo", responses=errors(*POST_SESSION, 404))
async def withdraw_photo(
    request: Request,
    customer_id: Annotated[str, Path(pattern=ids.CUSTOMER_ID_PATTERN)],
    body: ReasonIn,
    session: ManagerPost,
) -> dict[str, Any]:
    """The customer no longer wants their photo shown to staff at arrival."""
    args = {"token": session.token, "customer_id": customer_id, "reason": body.reason}
    return await ask_hub(request, "withdraw_photo_consent", args)
