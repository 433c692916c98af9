"""The chain's POS feed (issue 16 part 4): tills' exports imported once at the office, and
each chain customer's purchases sent to the stores that hold them.

``storesense central pos import FILE --store S`` reads the formats of ``storesense pos import``
with the same parser (``storesense.pos_csv``: the same bounds, customer-id rule and
cancellation rules), then in ONE transaction stores the invoices (an invoice already there
with the same content hash is skipped, with other content it is a conflict: nothing is
written) and queues a ``purchase`` downlink message for each store that holds the invoice's
customer as a chain customer (``chain_members``). When a store reports a chain customer
(``chain_member``), their whole history is queued for it (``queue_history``). Message ids are
the fact (receiving store, till's store, invoice, content), so queuing twice is one message.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg

from central import downlink
from storesense import chain_messages as cm
from storesense.pos_csv import FORMATS, ImportFailed, ImportReport, Invoice, parse_csv

log = logging.getLogger(__name__)

MAX_LINES_DOWN = 400  # a receipt of more lines does not fit one downlink message: skipped


def _queue(conn: psycopg.Connection, store_id: str, chain_ref: str, customer_id: str,
           source_store: str, invoice_no: str) -> bool:  # fmt: skip
    """One ``purchase`` message for ``store_id`` (in the caller's transaction)."""
    inv = conn.execute(
        "SELECT invoiced_at, country, cancellation, content_hash FROM pos_invoices "
        "WHERE store_id=%s AND invoice_no=%s",
        (source_store, invoice_no),
    ).fetchone()
    lines = conn.execute(
        "SELECT stock_code, description, quantity, unit_price FROM pos_lines "
        "WHERE store_id=%s AND invoice_no=%s ORDER BY line_no",
        (source_store, invoice_no),
    ).fetchall()
    if inv is None or not lines:
        return False
    if len(lines) > MAX_LINES_DOWN:
        log.warning("invoice %s/%s has %d lines, more than a downlink message carries (%d): "
                    "not sent to %s", source_store, invoice_no, len(lines), MAX_LINES_DOWN,
                    store_id)  # fmt: skip
        return False
    msg = cm.Purchase(
        msg_id=cm.chain_msg_id(store_id, "purchase", source_store, invoice_no, inv[3]),
        store_id=store_id, chain_ref=chain_ref, customer_id=customer_id,
        source_store=source_store, invoice_no=invoice_no, invoiced_at=inv[0], country=inv[1],
        cancellation=inv[2],
        lines=[cm.PurchaseLine(sku=r[0], description=r[1], quantity=r[2],
                               unit_price=float(r[3])) for r in lines],
    )  # fmt: skip
    downlink.queue(conn, msg, chain_ref=chain_ref)
    return True


def queue_history(conn: psycopg.Connection, chain_ref: str, store_id: str, customer_id: str) -> int:
    """Every purchase of ``customer_id`` in any store, for ``store_id`` (a new chain member)."""
    rows = conn.execute(
        "SELECT store_id, invoice_no FROM pos_invoices WHERE customer_id=%s "
        "ORDER BY invoiced_at, store_id, invoice_no",
        (customer_id,),
    ).fetchall()
    return sum(_queue(conn, store_id, chain_ref, customer_id, r[0], r[1]) for r in rows)


def forget_customer(conn: psycopg.Connection, chain_ref: str) -> int:
    """Inside the chain erasure's transaction: the chain customer's membership rows go and
    their invoices get a random owner id (the chain's sales figures stay right, as on the
    hub); returns the invoices unlinked."""
    ids = [r[0] for r in conn.execute(
        "DELETE FROM chain_members WHERE chain_ref=%s RETURNING customer_id", (chain_ref,)
    ).fetchall()]  # fmt: skip
    unlinked = 0
    for cid in set(ids):
        unlinked += conn.execute(
            "UPDATE pos_invoices SET customer_id='erased-' || md5(random()::text) "
            "WHERE customer_id=%s",
            (cid,),
        ).rowcount
    return unlinked


def _store(conn: psycopg.Connection, store_id: str, invoices: list[Invoice], source: str,
           report: ImportReport) -> list[Invoice]:  # fmt: skip
    new = []
    for inv in invoices:
        row = conn.execute(
            "SELECT content_hash FROM pos_invoices WHERE store_id=%s AND invoice_no=%s",
            (store_id, inv.invoice_no),
        ).fetchone()
        if row is None:
            new.append(inv)
        elif row[0] == inv.content_hash():
            report.invoices_duplicate += 1
        else:
            report.add_error(inv.source_line, f"invoice {inv.invoice_no} was already imported "
                             "with different content")  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO pos_invoices(store_id, invoice_no, customer_id, invoiced_at, country, "
            "cancellation, total, content_hash, source) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(store_id, i.invoice_no, i.customer_id, i.invoiced_at, i.country, i.cancellation,
              i.total, i.content_hash(), source) for i in new],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO pos_lines(store_id, invoice_no, line_no, stock_code, description, "
            "quantity, unit_price) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            [(store_id, i.invoice_no, n, ln.stock_code, ln.description, ln.quantity,
              ln.unit_price) for i in new for n, ln in enumerate(i.lines, 1)],
        )  # fmt: skip
    report.invoices_imported = len(new)
    report.lines_imported = sum(len(i.lines) for i in new)
    report.cancellations = sum(i.cancellation for i in new)
    return new


def import_pos(conn: psycopg.Connection, path: Path, store_id: str, fmt: str = "online-retail",
               *, max_errors: int = 0) -> tuple[ImportReport, int]:  # fmt: skip
    """Import one till export of ``store_id``; (report, purchase messages queued).
    ``ImportFailed``: nothing written (too many bad rows, or a conflicting invoice)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    report = ImportReport(str(path), fmt)
    t0 = time.perf_counter()
    invoices, bad = parse_csv(path, FORMATS[fmt], report)
    keep = [inv for no, inv in invoices.items() if no not in bad]
    report.invoices_dropped = len(invoices) - len(keep)
    queued = 0
    try:
        with conn.transaction():
            if report.error_count > max_errors:
                raise ImportFailed(f"{path}: {report.error_count} bad rows (at most "
                                   f"{max_errors} allowed); nothing imported", report)  # fmt: skip
            new = _store(conn, store_id, keep, f"csv:{path.name}", report)
            if report.error_count > max_errors:
                raise ImportFailed(f"{path}: {report.error_count} bad rows or conflicts; "
                                   "nothing imported", report)  # fmt: skip
            members: dict[str, list[tuple[str, str]]] = {}
            for ref, holder, cid in conn.execute(
                "SELECT chain_ref, store_id, customer_id FROM chain_members"
            ).fetchall():
                members.setdefault(cid, []).append((ref, holder))
            for inv in new:
                for ref, holder in members.get(inv.customer_id, []):
                    queued += _queue(conn, holder, ref, inv.customer_id, store_id,
                                     inv.invoice_no)  # fmt: skip
    finally:
        report.seconds = time.perf_counter() - t0
    report.committed = True
    return report, queued
