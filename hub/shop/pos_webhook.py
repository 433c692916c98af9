"""The POS webhook's logic: one live transaction in, same rules as the CSV import.

The HTTP layer (``POST /api/pos/transactions``, token auth) lives in the phone-app server and
calls ``ingest_webhook`` with the parsed body and the ``Idempotency-Key`` header. A till
retries on timeouts, so the key makes a retry return the first answer instead of importing
twice; the key, the invoice and the answer are written in ONE transaction, so a crash
between them cannot leave an imported invoice without its key or the reverse. A different
body under a used key is refused (the till has a bug; guessing would corrupt the ledger).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.shop.categories import Categorizer, default_rules
from hub.shop.pos_import import ImportReport, parse_time, store_invoices
from hub.shop.pos_store import Invoice, Line
from hub.store import db
from storesense import ids, pos_bounds

IDEMPOTENCY_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# the store room's counter of anonymous transactions skipped (hub.store.db keeps ``counters``)
NO_CUSTOMER = "pos_webhook_no_customer"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The bounds are storesense.pos_bounds's, shared with the CSV import; the Field limits repeat
# them only so the OpenAPI document shows them to whoever writes the till's side.
class PosLine(_Strict):
    sku: str = Field(min_length=1, max_length=pos_bounds.MAX_TEXT["sku"])
    description: str = Field("", max_length=pos_bounds.MAX_TEXT["description"])
    quantity: int = Field(
        ge=-pos_bounds.MAX_QUANTITY,
        le=pos_bounds.MAX_QUANTITY,
        description="negative for a returned or cancelled item; never 0",
    )
    unit_price: float = Field(ge=0, le=pos_bounds.MAX_UNIT_PRICE)

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, q: int) -> int:
        return pos_bounds.quantity(q)

    @field_validator("unit_price")
    @classmethod
    def _price(cls, p: float) -> float:
        return pos_bounds.unit_price(p)

    @model_validator(mode="after")
    def _line_total(self) -> PosLine:
        pos_bounds.line_total(self.quantity, self.unit_price)
        return self


class PosTransaction(_Strict):
    """One till receipt. All lines negative = a cancellation (refund) of earlier sales."""

    invoice_no: str = Field(min_length=1, max_length=pos_bounds.MAX_TEXT["invoice_no"])
    customer_id: str | None = Field(None, description="loyalty/customer id; null = anonymous")
    invoiced_at: datetime = Field(
        description="ISO 8601; naive = store-local wall clock; from 2000-01-01 to 2 days "
        "after the hub's clock"
    )
    country: str = Field("", max_length=pos_bounds.MAX_TEXT["country"])
    lines: list[PosLine] = Field(min_length=1, max_length=pos_bounds.MAX_LINES)

    @field_validator("invoiced_at")
    @classmethod
    def _when(cls, dt: datetime) -> datetime:
        pos_bounds.invoiced_at(dt)  # checked; kept as sent (the idempotency hash is of it)
        return dt

    @model_validator(mode="after")
    def _total(self) -> PosTransaction:
        pos_bounds.invoice_total([ln.quantity * ln.unit_price for ln in self.lines])
        return self

    @field_validator("customer_id")
    @classmethod
    def _customer(cls, cid: str | None) -> str | None:
        if cid is None or not cid.strip():
            return None
        if not ids.is_customer_id(cid.strip()):  # the one rule: storesense/ids.py
            raise ValueError(f"customer_id must be {ids.CUSTOMER_ID_RULE}")
        return cid.strip()


Status = Literal["imported", "duplicate", "skipped_no_customer", "conflict"]
HTTP_STATUS: dict[str, int] = {
    "imported": 201,
    "duplicate": 200,
    "skipped_no_customer": 202,
    "conflict": 409,
}


class WebhookResult(_Strict):
    status: Status
    http_status: int
    invoice_no: str
    lines: int
    replayed: bool = Field(False, description="this key was seen: the first answer, again")
    message: str


class WebhookRejected(ValueError):
    """The request cannot be processed (HTTP 422): bad body or a reused key."""

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def _request_hash(tx: PosTransaction) -> str:
    return hashlib.sha256(tx.model_dump_json().encode()).hexdigest()


def ingest_webhook(
    conn: sqlite3.Connection,
    payload: PosTransaction | dict[str, object],
    idempotency_key: str,
    *,
    categorize: Categorizer | None = None,
) -> WebhookResult:
    """Validate, de-duplicate and store one transaction. Raises ``WebhookRejected`` for an
    invalid body or key, or a key already used for a different body."""
    if not isinstance(idempotency_key, str) or not re.match(IDEMPOTENCY_KEY, idempotency_key):
        raise WebhookRejected("Idempotency-Key must be 1-128 of [A-Za-z0-9_.:-]")
    try:
        tx = (
            payload
            if isinstance(payload, PosTransaction)
            else PosTransaction.model_validate(payload)
        )
    except ValidationError as exc:
        errors: list[dict[str, object]] = [
            {"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)
        ]
        raise WebhookRejected("invalid transaction", errors) from None
    req_hash = _request_hash(tx)
    categorize = categorize or default_rules()
    with db.write(conn):
        row = conn.execute(
            "SELECT request_hash, result FROM pos_webhook_keys WHERE idem_key = ?",
            (idempotency_key,),
        ).fetchone()
        if row is not None:
            if row[0] != req_hash:
                raise WebhookRejected(
                    f"Idempotency-Key {idempotency_key!r} was already used for a different body"
                )
            first = WebhookResult.model_validate_json(row[1])
            return first.model_copy(update={"replayed": True})
        result = _apply(conn, tx, categorize)
        conn.execute(
            "INSERT INTO pos_webhook_keys VALUES (?,?,?,?)",
            (idempotency_key, req_hash, result.model_dump_json(), time.time()),
        )
    return result


def _apply(conn: sqlite3.Connection, tx: PosTransaction, categorize: Categorizer) -> WebhookResult:
    def done(status: Status, lines: int, message: str) -> WebhookResult:
        return WebhookResult(
            status=status,
            http_status=HTTP_STATUS[status],
            invoice_no=tx.invoice_no,
            lines=lines,
            message=message,
        )

    if tx.customer_id is None:
        db.next_counter(conn, NO_CUSTOMER)
        return done("skipped_no_customer", 0, "no customer id: not kept (counted)")
    lines = [Line(ln.sku, ln.description.strip(), ln.quantity, ln.unit_price) for ln in tx.lines]
    inv = Invoice(
        invoice_no=tx.invoice_no,
        customer_id=tx.customer_id,
        invoiced_at=parse_time(tx.invoiced_at.isoformat()),
        country=tx.country.strip(),
        cancellation=all(ln.quantity < 0 for ln in lines),
        lines=lines,
    )
    report = ImportReport(path="webhook", format="webhook")
    store_invoices(conn, [inv], categorize, "webhook", report)
    if report.error_count:
        return done("conflict", 0, report.errors[0][1])
    if report.invoices_duplicate:
        return done("duplicate", 0, "invoice already imported with the same content")
    kind = "cancellation" if inv.cancellation else "sale"
    return done("imported", report.lines_imported, f"{kind} of {inv.total:.2f} imported")


def webhook_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Keys seen per outcome plus anonymous transactions skipped (for ops pages)."""
    out: dict[str, int] = {}
    for (res,) in conn.execute("SELECT result FROM pos_webhook_keys"):
        status = json.loads(res)["status"]
        out[status] = out.get(status, 0) + 1
    out["no_customer_total"] = db.counter(conn, NO_CUSTOMER)
    return out
