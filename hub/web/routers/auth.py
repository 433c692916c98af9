"""Login, logout and "who am I" (which also hands the page its CSRF token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.web import accounts
from hub.web.accounts import Session
from hub.web.errors import errors
from hub.web.security import COOKIE, Conn, _same_origin, csrf_session, current_session

router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=accounts.MAX_PASSWORD)


class Me(BaseModel):
    staff_id: str
    name: str
    role: str
    csrf_token: str = Field(description="send back as X-CSRF-Token on every POST")


def _me(session: Session) -> Me:
    s = session.staff
    return Me(staff_id=s.staff_id, name=s.name, role=s.role, csrf_token=session.csrf_token)


@router.post("/login", response_model=Me, responses=errors(400, 401, 403, 413, 422, 429))
def login(body: LoginIn, request: Request, response: Response, conn: Conn) -> Me:
    # Login CSRF: a foreign page must not log a phone into the attacker's account.
    if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise HTTPException(403, "cross-site request refused")
    throttle = request.app.state.login_throttle
    keys = [f"id:{body.staff_id}", f"ip:{request.client.host if request.client else '?'}"]
    if throttle.blocked(keys):
        raise HTTPException(429, "too many failed logins: wait a few minutes")
    # a sync endpoint: argon2's ~0.1 s of CPU runs in the pool, not on the event loop
    staff = accounts.authenticate(conn, body.staff_id, body.password)
    if staff is None:
        throttle.failed(keys)
        raise HTTPException(401, "wrong staff id or password")
    token, session = accounts.create_session(conn, staff)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(accounts.SESSION_TTL_S),
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    return _me(session)


@router.get("/me", response_model=Me, responses=errors(401))
def me(session: Annotated[Session, Depends(current_session)]) -> Me:
    return _me(session)


@router.post("/logout", status_code=204, responses=errors(401, 403, 413))
def logout(request: Request, _: Annotated[Session, Depends(csrf_session)], conn: Conn) -> Response:
    token = request.cookies.get(COOKIE, "")
    accounts.end_session(conn, token)
    request.app.state.gateway.drop_session(accounts._token_hash(token))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response
