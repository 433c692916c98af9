"""A manager's privacy action on the web: erase a customer who withdraws consent in the store.

Withdrawal must be as easy as consent (DPDP Act s. 6(4)), so it is a form on the manager page
as well as `storesense customer forget`. Both go through ``hub.privacy.erasure``: one
transaction, the audit tombstone names the manager, and the running hub stops matching at its
next message.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from hub.privacy.erasure import erase_customer
from hub.web.accounts import Session
from hub.web.errors import POST_SESSION, errors
from hub.web.security import Conn, csrf_session

router = APIRouter(prefix="/api/manager/customers", tags=["privacy"])

CustomerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


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
def forget(
    customer_id: CustomerId,
    body: ForgetIn,
    conn: Conn,
    session: Annotated[Session, Depends(csrf_session)],
) -> ForgetOut:
    if session.staff.role != "manager":
        raise HTTPException(403, "managers only")
    report = erase_customer(
        conn, customer_id, actor=session.staff.staff_id, reason=f"manager page: {body.reason}"
    )
    if not report.anything:
        raise HTTPException(404, "no such customer in the gallery or the purchase data")
    return ForgetOut(
        customer_id=customer_id,
        profile_deleted=report.profile,
        receipts_unlinked=report.receipts_unlinked,
        audit_rows_redacted=report.audit_rows_redacted,
    )
