"""A manager's privacy action on the web: erase a customer who withdraws consent in the store.

Withdrawal must be as easy as consent (DPDP Act s. 6(4)), so it is a form on the manager page
as well as `storesense customer forget`. Both go through ``hub.privacy.erasure`` in the hub
(op ``erase_customer``): one transaction, the audit tombstone names the manager, and the hub
stops matching at its next message.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from hub.web.errors import POST_SESSION, errors
from hub.web.security import Session, ask_hub, csrf_session
from storesense import ids, rpc

router = APIRouter(prefix="/api/manager/customers", tags=["privacy"])

CustomerId = Annotated[str, Path(pattern=ids.CUSTOMER_ID_PATTERN)]  # storesense/ids.py


class ForgetIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200, description="written to the audit log")


class ForgetOut(BaseModel):
    customer_id: str
    profile_deleted: bool
    receipts_unlinked: int
    audit_rows_redacted: int


@router.post(
    "/{customer_id}/forget", response_model=ForgetOut, responses=errors(*POST_SESSION, 404)
)
async def forget(
    request: Request,
    customer_id: CustomerId,
    body: ForgetIn,
    session: Annotated[Session, Depends(csrf_session)],
) -> ForgetOut:
    if session.staff.role != "manager":
        raise HTTPException(403, "managers only")
    args = {"token": session.token, "customer_id": customer_id, "reason": body.reason}
    answer = rpc.ErasureAnswer.model_validate(await ask_hub(request, "erase_customer", args))
    return ForgetOut(**answer.model_dump())
