"""The customer view: only through an alert the viewer claimed, and every view is audited.

A salesperson may open a customer's profile only while they hold that customer's alert
(state ``claimed``, ``claimed_by`` = them); a manager may open it for review from any alert.
The hub decides and writes the ``audit`` row (who, when, which customer, why) in the same
step (``hub.api``, op ``customer_view``); this route only asks.

Who to greet: ``/arrival`` says whether the alert card may show the customer's enrolment
photo (their separate "photo shown to staff at arrival" consent) or else their own short
hint; ``/photo`` is the image itself, decrypted by the hub for that alert only, audited per
display, refused once the alert has ended. Every answer here carries ``Cache-Control:
no-store`` (the security middleware sets it; the photo route says so itself as well), so no
phone or proxy keeps a customer's face or purchases.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from hub.web.errors import SESSION, errors
from hub.web.security import Session, ask_hub, current_session
from storesense import ids, rpc

router = APIRouter(prefix="/api/customers", tags=["customers"])

Ident = ids.IDENT_PATTERN  # the id rules: storesense/ids.py
CustomerId = Annotated[str, Path(pattern=ids.CUSTOMER_ID_PATTERN)]
AlertId = Annotated[str, Query(pattern=Ident, description="the alert this is shown for")]
PHOTO_MEDIA = ("image/jpeg", "image/png", "image/webp")


class CustomerView(BaseModel):
    alert_id: str
    card: dict[str, Any] = Field(
        description="the hub's customer card (hub.shop.card.CustomerCard); date-times carry "
        "the store's UTC offset"
    )


class ArrivalHint(BaseModel):
    photo: bool = Field(description="the alert card may show the photo (GET …/photo)")
    hint: str | None = Field(description="without a photo: the customer's own words for staff")


@router.get("/{customer_id}", response_model=CustomerView, responses=errors(*SESSION, 403, 404))
async def customer_view(
    request: Request,
    session: Annotated[Session, Depends(current_session)],
    customer_id: CustomerId,
    alert_id: AlertId,
) -> CustomerView:
    args = {"token": session.token, "customer_id": customer_id, "alert_id": alert_id}
    return CustomerView.model_validate(await ask_hub(request, "customer_view", args))


@router.get(
    "/{customer_id}/arrival", response_model=ArrivalHint, responses=errors(*SESSION, 403, 404)
)
async def arrival(
    request: Request,
    session: Annotated[Session, Depends(current_session)],
    customer_id: CustomerId,
    alert_id: AlertId,
) -> ArrivalHint:
    args = {"token": session.token, "customer_id": customer_id, "alert_id": alert_id}
    return ArrivalHint.model_validate(await ask_hub(request, "arrival_hint", args))


@router.get(
    "/{customer_id}/photo",
    response_class=Response,
    responses={
        200: {"content": {m: {"schema": {"type": "string"}} for m in PHOTO_MEDIA},
              "description": "the enrolment photo (audited display)"},
        **errors(*SESSION, 403, 404),
    },
)  # fmt: skip
async def photo(
    request: Request,
    session: Annotated[Session, Depends(current_session)],
    customer_id: CustomerId,
    alert_id: AlertId,
) -> Response:
    args = {"token": session.token, "customer_id": customer_id, "alert_id": alert_id}
    answer = rpc.FileAnswer.model_validate(await ask_hub(request, "arrival_photo", args))
    media = answer.media_type if answer.media_type in PHOTO_MEDIA else "application/octet-stream"
    return Response(
        base64.b64decode(answer.content_b64),
        media_type=media,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
