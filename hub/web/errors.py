"""The error answers of the web app, written into the OpenAPI schema route by route.

Every refusal the app makes is ``{"detail": ...}`` with a 4xx (or 503 when the hub cannot be
reached), and each route lists the ones it can give, so the schema is the whole contract: a
phone, the till integration or a fuzzer (tests/hub/web/test_openapi_fuzz.py) can tell a
documented refusal from a bug. FastAPI's default 422 entry (pydantic's error list) is replaced
too, because ``hub.web.app`` answers validation errors with one readable line instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str | dict[str, Any] = Field(
        description="what was wrong, in one line; the POS webhook's 422 gives "
        "{message, errors} with the invalid fields"
    )


WHY: dict[int, str] = {
    400: "the body is not readable JSON, or a required header is missing",
    401: "not logged in, session expired, or wrong credentials / bearer token",
    403: "cross-site request, missing or wrong CSRF token, or not allowed for this role",
    404: "no such alert, customer or report",
    405: "method not allowed on this path",
    409: "conflict with what is stored",
    413: "request body over 64 KiB",
    422: "invalid input: the detail names the first bad field",
    429: "too many failed logins: wait a few minutes",
    503: "the hub or the broker did not answer, or the feature is not configured",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route: these codes, each with ``ErrorOut``."""
    return {code: {"model": ErrorOut, "description": WHY[code]} for code in codes}


SESSION = (401, 422)  # any route behind the session cookie that takes parameters
# A POST: also CSRF / Origin, the body cap, and a body that is not even text (FastAPI's 400).
POST_SESSION = (400, 401, 403, 413, 422)
