"""POST /api/pos/transactions: the till's live feed, bearer-token authenticated by the hub.

This process forwards the ``Authorization`` header, the ``Idempotency-Key`` header and the raw
body to the hub (op ``pos_transaction``); the hub checks the token (a hub secret this
process never holds: ``hub.api.pos_token``) before it looks at anything else, then the key,
then the receipt (``hub.shop.pos_webhook.ingest_webhook``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field

from hub.web.errors import errors
from hub.web.security import ask_hub

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/pos", tags=["pos"])


class WebhookOut(BaseModel):
    """The hub's answer (``hub.shop.pos_webhook.WebhookResult``) as the till receives it."""

    status: Literal["imported", "duplicate", "skipped_no_customer", "conflict"]
    http_status: int
    invoice_no: str
    lines: int
    replayed: bool = Field(False, description="this key was seen: the first answer, again")
    message: str


# The hub's receipt model (hub.shop.pos_webhook.PosTransaction), from hub.web.hub_schemas
RECEIPT = {"$ref": "#/components/schemas/PosTransaction"}


@router.post(
    "/transactions",
    response_model=WebhookOut,
    status_code=201,
    responses={
        201: {"description": "imported"},
        200: {"model": WebhookOut, "description": "a replay or duplicate"},
        202: {"model": WebhookOut, "description": "no customer id: not stored"},
        409: {"model": WebhookOut, "description": "invoice stored with different content"},
        **errors(400, 401, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": RECEIPT}}}
    },
)
async def pos_transactions(
    request: Request,
    response: Response,
    authorization: Annotated[str | None, Header(max_length=1024)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> WebhookOut:
    raw = await request.body()  # at most 64 KiB (BodyLimit); parsed by the hub
    args = {
        "authorization": authorization,
        "idempotency_key": idempotency_key,
        "body": raw.decode("utf-8", errors="replace"),
    }
    try:
        result = WebhookOut.model_validate(await ask_hub(request, "pos_transaction", args))
    except HTTPException as exc:
        if exc.status_code == 401:
            exc.headers = {"WWW-Authenticate": "Bearer"}
        raise
    response.status_code = result.http_status  # 201 imported, 200 replay, 202, 409
    return result
