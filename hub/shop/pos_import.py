"""``storesense pos import``: POS transaction CSVs into the hub database, all or nothing.

Two formats (docs/pos.md): ``online-retail`` (the UCI Online Retail columns, as exported by
that shop's till) and ``generic`` (documented snake_case columns, ISO 8601 times) for any
other POS. The whole file is parsed and validated before anything is written; the writes
then happen in ONE ``BEGIN IMMEDIATE`` transaction, so a failure (bad rows beyond the allowed
number, a conflicting invoice, a full disk) leaves the database exactly as it was.
Idempotency is per invoice: an invoice already stored with the same content hash is skipped,
so importing the same file twice, or overlapping exports, adds nothing twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.shop.categories import Categorizer, default_rules
from hub.shop.pos_store import Invoice, existing_hash, insert_invoices
from hub.store import db
from storesense.pos_csv import (  # the parsing is shared with the chain's central office
    FORMATS,
    CsvFormat,
    ImportFailed,
    ImportReport,
    RowError,
    normalise_customer,
    parse_csv,
    parse_time,
)

__all__ = [
    "FORMATS",
    "CsvFormat",
    "ImportFailed",
    "ImportReport",
    "RowError",
    "import_csv",
    "normalise_customer",
    "parse_csv",
    "parse_time",
    "store_invoices",
]  # fmt: skip


def store_invoices(
    conn: sqlite3.Connection,
    invoices: list[Invoice],
    categorize: Categorizer,
    source: str,
    report: ImportReport,
) -> list[Invoice]:
    """Inside an open transaction: skip invoices already stored with the same content,
    record a conflict (same number, other content) as an error, insert the rest."""
    new: list[Invoice] = []
    for inv in invoices:
        old = existing_hash(conn, inv.invoice_no)
        if old is None:
            new.append(inv)
        elif old == inv.content_hash():
            report.invoices_duplicate += 1
        else:
            report.add_error(
                inv.source_line,
                f"invoice {inv.invoice_no} was already imported with different content",
            )
    report.lines_imported += insert_invoices(conn, new, categorize, source)
    report.invoices_imported += len(new)
    report.cancellations += sum(inv.cancellation for inv in new)
    report.return_lines += sum(
        1 for inv in new if not inv.cancellation for ln in inv.lines if ln.quantity < 0
    )
    return new


def import_csv(
    conn: sqlite3.Connection,
    path: Path | str,
    fmt: str = "online-retail",
    *,
    categorize: Categorizer | None = None,
    max_errors: int = 0,
    progress: bool = False,
) -> ImportReport:
    """Import one CSV (optionally .gz). With ``max_errors`` = 0 any bad row fails the whole
    import; with N > 0 up to N bad rows are reported and their invoices dropped whole.
    Raises ``ImportFailed`` (nothing written) otherwise."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    categorize = categorize or default_rules()
    report = ImportReport(str(path), fmt)
    t0 = time.perf_counter()
    with _progress(path, progress) as tick:
        invoices, bad = parse_csv(path, FORMATS[fmt], report, tick)
    if report.error_count > max_errors:
        report.seconds = time.perf_counter() - t0
        raise ImportFailed(_too_many(report, max_errors), report)
    keep = [inv for no, inv in invoices.items() if no not in bad]
    report.invoices_dropped = len(invoices) - len(keep)
    try:
        with db.write(conn):
            store_invoices(conn, keep, categorize, f"csv:{path.name}", report)
            if report.error_count > max_errors:
                raise ImportFailed(_too_many(report, max_errors), report)
    except sqlite3.Error as exc:
        raise ImportFailed(f"{path}: database error, nothing imported: {exc}", report) from exc
    finally:
        report.seconds = time.perf_counter() - t0
    report.committed = True
    return report


def _too_many(report: ImportReport, max_errors: int) -> str:
    shown = "; ".join(f"line {ln}: {msg}" for ln, msg in report.errors[:5])
    return (
        f"{report.path}: {report.error_count} bad row(s) (allowed {max_errors}), nothing "
        f"imported. First: {shown}"
    )


@contextmanager
def _progress(path: Path, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar over the bytes read (compressed bytes for .gz)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    size = path.stat().st_size
    with Progress(TextColumn(f"importing {path.name}"), BarColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("import", total=size)
        yield lambda pos: bar.update(task, completed=pos)
        bar.update(task, completed=size)
