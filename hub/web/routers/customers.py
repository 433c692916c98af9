"""The customer view: only through an alert the viewer claimed, and every view is audited.

A salesperson may open a customer's profile only while they hold that customer's alert
(state ``claimed``, ``claimed_by`` = them); a manager may open it for review from any alert.
The hub decides and writes the ``audit`` row (who, when, which customer, why) in the same
step (``hub.api``, op ``customer_view``); this route only asks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from hub.web.errors import SESSION, errors
from hub.web.security import Session, ask_hub, current_session

router = APIRouter(prefix="/api/customers", tags=["customers"])

Ident = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class CustomerView(BaseModel):
    alert_id: str
    card: dict[str, Any] = Field(
        description="the hub's customer card (hub.shop.card.CustomerCard); date-times carry "
        "the store's UTC offset"
    )


@router.get("/{customer_id}", response_model=CustomerView, responses=errors(*SESSION, 403, 404))
async def customer_view(
    request: Request,
    session: Annotated[Session, Depends(current_session)],
    customer_id: Annotated[str, Path(pattern=Ident)],
    alert_id: Annotated[str, Query(pattern=Ident)],
) -> CustomerView:
    args = {"token": session.token, "customer_id": customer_id, "alert_id": alert_id}
    return CustomerView.model_validate(await ask_hub(request, "customer_view", args))
