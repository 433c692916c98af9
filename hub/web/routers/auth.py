"""Login, logout and "who am I" (which also hands the page its CSRF token).

The password goes to the hub, which verifies the argon2 hash and creates the session row; this
process only sets the cookie with the token the hub returned.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.web.errors import errors
from hub.web.security import (
    COOKIE,
    Session,
    _same_origin,
    ask_hub,
    csrf_session,
    current_session,
    end_session_sockets,
    gateway_of,
)
from storesense import rpc

router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=rpc.MAX_PASSWORD)


class Me(BaseModel):
    staff_id: str
    name: str
    role: str
    csrf_token: str = Field(description="send back as X-CSRF-Token on every POST")


def _me(session: Session) -> Me:
    s = session.staff
    return Me(staff_id=s.staff_id, name=s.name, role=s.role, csrf_token=session.csrf_token)


@router.post("/login", response_model=Me, responses=errors(400, 401, 403, 413, 422, 429))
async def login(body: LoginIn, request: Request, response: Response) -> Me:
    # Login CSRF: a foreign page must not log a phone into the attacker's account.
    if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise HTTPException(403, "cross-site request refused")
    client = request.client.host if request.client else "?"
    answer = await ask_hub(
        request,
        "login",
        {"staff_id": body.staff_id, "password": body.password, "client": client},
    )
    result = rpc.LoginResult.model_validate(answer)
    gateway_of(request).learn_name(result.session.staff_id, result.session.name)
    response.set_cookie(
        COOKIE,
        result.token,
        max_age=max(int(result.session.expires_at - time.time()), 0),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",  # uvicorn's or a trusted proxy's scheme
        path="/",
    )
    return _me(Session.from_info(result.session, result.token))


@router.get("/me", response_model=Me, responses=errors(401))
async def me(session: Annotated[Session, Depends(current_session)]) -> Me:
    return _me(session)


@router.post("/logout", status_code=204, responses=errors(401, 403, 413))
async def logout(request: Request, session: Annotated[Session, Depends(csrf_session)]) -> Response:
    await ask_hub(request, "logout", {"token": session.token})
    await end_session_sockets(request, session.token)  # at once, with the "log in" close code
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response
