"""POST /api/pos/transactions: the till's live feed, bearer-token authenticated.

The token is a 256-bit random secret in ``HOME/secrets/pos_webhook.token`` (created by
``storesense web pos-token``), compared in constant time. The ``Idempotency-Key`` header makes
a retried delivery harmless; the import logic itself is ``hub.shop.pos_webhook.ingest_webhook``,
which this router only authenticates and hands over to.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response

from hub.shop.pos_webhook import PosTransaction, WebhookRejected, WebhookResult, ingest_webhook
from hub.web.errors import errors
from hub.web.security import Conn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/pos", tags=["pos"])

TOKEN_FILE = "pos_webhook.token"


def token_path(home: Path) -> Path:
    return home / "secrets" / TOKEN_FILE


def ensure_token(home: Path, *, rotate: bool = False) -> str:
    """The webhook token, created (0600) on first use or when rotating."""
    path = token_path(home)
    if path.exists() and not rotate:
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _authorised(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """A dependency, so a caller without the token hears 401 before its body is looked at."""
    expected = request.app.state.pos_token
    if expected is None:
        raise HTTPException(503, "POS webhook not configured: run `storesense web pos-token`")
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


@router.post(
    "/transactions",
    dependencies=[Depends(_authorised)],
    response_model=WebhookResult,
    status_code=201,
    responses={
        201: {"description": "imported"},
        200: {"model": WebhookResult, "description": "a replay or duplicate"},
        202: {"model": WebhookResult, "description": "no customer id: not stored"},
        409: {"model": WebhookResult, "description": "invoice stored with different content"},
        **errors(400, 401, 413, 422, 503),
    },
)
def pos_transactions(
    conn: Conn,
    body: PosTransaction,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> WebhookResult:
    if not idempotency_key:
        raise HTTPException(400, "the Idempotency-Key header is required")
    try:
        result = ingest_webhook(conn, body, idempotency_key)
    except WebhookRejected as exc:
        raise HTTPException(422, {"message": str(exc), "errors": exc.errors}) from None
    response.status_code = result.http_status  # 201 imported, 200 replay, 202, 409
    return result
