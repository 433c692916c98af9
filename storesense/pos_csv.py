"""Reading a POS export: the CSV formats of ``storesense pos import`` (docs/pos.md), pure.

Parsing and validation only, no database: the store hub's import (``hub.shop.pos_import``)
and the chain's central office (``storesense central pos import``, docs/chain.md) read the
same files with the same rules, bounds (``storesense.pos_bounds``) and customer-id rule, and
each stores the invoices its own way. Moved here from ``hub.shop`` so both may import it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from storesense import (
    ids,  # the one customer-id rule (enrolment, alerts, web agree)
    pos_bounds,
)

TIME_FMT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Line:
    stock_code: str
    description: str
    quantity: int
    unit_price: float


@dataclass(slots=True)
class Invoice:
    """One receipt as parsed from a CSV or a webhook, before it is stored."""

    invoice_no: str
    customer_id: str
    invoiced_at: datetime
    country: str
    cancellation: bool
    lines: list[Line] = field(default_factory=list)
    source_line: int = 0  # first CSV line of the invoice, for error messages

    @property
    def total(self) -> float:
        return round(sum(ln.quantity * ln.unit_price for ln in self.lines), 2)

    def content_hash(self) -> str:
        """What makes two imports of one invoice the same: customer, time and lines in order."""
        body = [
            self.customer_id,
            self.invoiced_at.strftime(TIME_FMT),
            self.country,
            [[ln.stock_code, ln.description, ln.quantity, ln.unit_price] for ln in self.lines],
        ]
        return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


MAX_REPORTED_ERRORS = 200


T = TypeVar("T")


class RowError(ValueError):
    """A row that cannot be imported; the message says why."""


@dataclass(frozen=True)
class CsvFormat:
    """Header names of one POS export and how its values are spelled."""

    name: str
    invoice_no: str
    stock_code: str
    description: str
    quantity: str
    invoiced_at: str
    unit_price: str
    customer_id: str
    country: str | None
    # online-retail: a "C" invoice number is a cancellation; generic: all lines negative.
    cancel_prefix: str | None
    customer_float_suffix: bool  # UCI writes customer ids as floats ("17850.0")

    def required(self) -> list[str]:
        return [
            self.invoice_no,
            self.stock_code,
            self.quantity,
            self.invoiced_at,
            self.unit_price,
            self.customer_id,
        ]


FORMATS: dict[str, CsvFormat] = {
    "online-retail": CsvFormat(
        "online-retail",
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
        cancel_prefix="C",
        customer_float_suffix=True,
    ),
    "generic": CsvFormat(
        "generic",
        "invoice_no",
        "sku",
        "description",
        "quantity",
        "invoiced_at",
        "unit_price",
        "customer_id",
        "country",
        cancel_prefix=None,
        customer_float_suffix=False,
    ),
}


@dataclass
class ImportReport:
    """What an import did; ``errors`` holds ``(line, message)`` for bad rows and conflicts."""

    path: str
    format: str
    rows: int = 0
    lines_imported: int = 0
    invoices_imported: int = 0
    invoices_duplicate: int = 0
    invoices_dropped: int = 0
    cancellations: int = 0
    return_lines: int = 0
    skipped_no_customer: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    seconds: float = 0.0
    committed: bool = False

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((line, message))

    def as_dict(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if k != "errors"}
        out["rows_per_s"] = round(self.rows_per_s)
        out["errors"] = [{"line": ln, "error": msg} for ln, msg in self.errors]
        return out


class ImportFailed(Exception):
    """Nothing was written; ``report`` lists the line-numbered reasons."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2011-10-31 17:19:00``) or the UCI spreadsheet's ``12/1/2010 8:26``.
    An aware time is converted to this machine's local wall clock (the store's)."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:
            dt = datetime.strptime(text, "%m/%d/%Y %H:%M")
        except ValueError:
            raise RowError(f"unreadable time {text!r}") from None
    return _bounded(pos_bounds.invoiced_at, dt)


def normalise_customer(raw: str, float_suffix: bool) -> str:
    cid = raw.strip()
    if float_suffix and cid.endswith(".0"):
        cid = cid[:-2]
    try:
        return ids.validate_customer_id(cid)
    except ids.InvalidId:
        raise RowError(f"invalid customer id {raw!r}: {ids.CUSTOMER_ID_RULE}") from None


def parse_quantity(text: str) -> int:
    try:
        q = int(text)
    except ValueError:  # also a number of more than 4300 digits (Python's int limit)
        raise RowError(f"quantity {text[:40]!r} is not a whole number") from None
    return _bounded(pos_bounds.quantity, q)


def parse_price(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise RowError(f"unit_price {text[:40]!r} is not a number") from None
    return _bounded(pos_bounds.unit_price, p)


def _bounded(check: Callable[..., T], *args: Any) -> T:
    """A ``storesense.pos_bounds`` check whose refusal becomes this row's error."""
    try:
        return check(*args)
    except pos_bounds.OutOfBounds as exc:
        raise RowError(str(exc)) from None


def check_line(ln: Line) -> None:
    """The bounds a line's fields have together and on their own (storesense.pos_bounds)."""
    _bounded(pos_bounds.line_total, ln.quantity, ln.unit_price)
    _bounded(pos_bounds.text, "sku", ln.stock_code)
    _bounded(pos_bounds.text, "description", ln.description)


def check_invoice(inv: Invoice, cancel_prefix: str | None) -> None:
    """Cancellation rules: a cancellation has only negative lines. ``online-retail`` marks
    it by the ``C`` prefix (a positive line there is an error); ``generic`` infers it."""
    _bounded(pos_bounds.invoice_total, [ln.quantity * ln.unit_price for ln in inv.lines])
    if cancel_prefix is None:
        inv.cancellation = all(ln.quantity < 0 for ln in inv.lines)
    elif inv.cancellation and any(ln.quantity > 0 for ln in inv.lines):
        raise RowError(f"cancellation {inv.invoice_no} has a positive quantity")


@contextmanager
def _open_text(path: Path) -> Iterator[tuple[IO[str], IO[bytes], int]]:
    raw = path.open("rb")
    try:
        size = path.stat().st_size
        stream: gzip.GzipFile | io.BufferedReader = (
            gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        )
        yield io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""), raw, size
    finally:
        raw.close()


def parse_csv(
    path: Path, fmt: CsvFormat, report: ImportReport, tick: Callable[[int], None] | None = None
) -> tuple[dict[str, Invoice], set[str]]:
    """Read and validate every row; returns invoices by number and the numbers of invoices
    that contain a bad row (dropped whole: a half invoice would conflict when fixed)."""
    invoices: dict[str, Invoice] = {}
    bad: set[str] = set()
    with _open_text(path) as (text, raw, _size):
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFailed(f"{path}: empty file", report) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFailed(f"{path}: line 1: unreadable header ({exc})", report) from None
        missing = [c for c in fmt.required() if c not in header]
        if missing:
            raise ImportFailed(
                f"{path}: not the {fmt.name!r} format: missing column(s) {', '.join(missing)} "
                f"(header has {', '.join(header)})",
                report,
            )
        col = {name: i for i, name in enumerate(header)}
        i_inv, i_code, i_qty = col[fmt.invoice_no], col[fmt.stock_code], col[fmt.quantity]
        i_at, i_price, i_cust = col[fmt.invoiced_at], col[fmt.unit_price], col[fmt.customer_id]
        i_desc = col.get(fmt.description)
        i_country = col.get(fmt.country) if fmt.country else None
        width = len(header)
        times: dict[str, datetime] = {}  # parse each distinct time string once
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (UnicodeDecodeError, csv.Error) as exc:
                raise ImportFailed(
                    f"{path}: line {reader.line_num + 1}: unreadable ({exc})", report
                ) from None
            line = reader.line_num
            report.rows += 1
            if tick is not None and report.rows % 10000 == 0:
                tick(raw.tell())
            if not row:
                continue
            inv_no = row[i_inv].strip() if len(row) > i_inv else ""
            try:
                if len(row) != width:
                    raise RowError(f"expected {width} fields, got {len(row)}")
                if not inv_no:
                    raise RowError("empty invoice number")
                _bounded(pos_bounds.text, "invoice_no", inv_no)
                if not row[i_cust].strip():
                    report.skipped_no_customer += 1
                    continue
                cust = normalise_customer(row[i_cust], fmt.customer_float_suffix)
                code = row[i_code].strip()
                if not code:
                    raise RowError("empty stock code")
                ln = Line(
                    code,
                    row[i_desc].strip() if i_desc is not None else "",
                    parse_quantity(row[i_qty]),
                    parse_price(row[i_price]),
                )
                check_line(ln)
                at_text = row[i_at].strip()
                at = times.get(at_text)
                if at is None:
                    at = times[at_text] = parse_time(at_text)
                country = row[i_country].strip() if i_country is not None else ""
                _bounded(pos_bounds.text, "country", country)
                inv = invoices.get(inv_no)
                if inv is None:
                    cancel = bool(fmt.cancel_prefix and inv_no.startswith(fmt.cancel_prefix))
                    inv = invoices[inv_no] = Invoice(inv_no, cust, at, country, cancel, [], line)
                elif inv.customer_id != cust:
                    raise RowError(
                        f"invoice {inv_no} has customer {inv.customer_id} on line "
                        f"{inv.source_line} but {cust} here"
                    )
                elif at < inv.invoiced_at:
                    inv.invoiced_at = at  # a long basket spans minutes: keep its first scan
                inv.lines.append(ln)
            except RowError as exc:
                report.add_error(line, str(exc))
                if inv_no:
                    bad.add(inv_no)
    for inv_no, inv in invoices.items():
        try:
            check_invoice(inv, fmt.cancel_prefix)
        except RowError as exc:
            report.add_error(inv.source_line, str(exc))
            bad.add(inv_no)
    return invoices, bad
