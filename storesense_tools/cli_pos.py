"""`storesense pos …` and `storesense suggest …`: purchase data, loyalty, suggestions.

Registered by ``storesense_tools.cli``. Heavy imports (numpy, implicit) happen inside each
command so ``storesense --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, store_config, valid_customer_id

if TYPE_CHECKING:
    import sqlite3

    from hub.shop.categories import Categorizer


def _conn(home: Path) -> sqlite3.Connection:
    from hub.store import db
    from storesense.paths import hub_db_path

    return db.open_db(hub_db_path(home))


def _categorizer(path: str | None) -> Categorizer:
    from hub.shop.categories import default_rules, load_rules

    try:
        return load_rules(path) if path else default_rules()
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_pos_import(args: argparse.Namespace, home: Path) -> int:
    from hub.shop.pos_import import ImportFailed, import_csv

    conn = _conn(home)
    try:
        report = import_csv(
            conn,
            args.csv,
            args.format,
            categorize=_categorizer(args.categories),
            max_errors=args.max_errors,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except ImportFailed as exc:
        for line, msg in exc.report.errors[:20]:
            print(f"  line {line}: {msg}", file=sys.stderr)
        if exc.report.error_count > 20:
            print(f"  … {exc.report.error_count - 20} more", file=sys.stderr)
        raise CliError(str(exc).split(". First:")[0]) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    for line, msg in report.errors[:20]:
        print(f"  skipped line {line}: {msg}", file=sys.stderr)
    print(
        f"{report.path}: {report.rows} rows read in {report.seconds:.1f} s "
        f"({report.rows_per_s:,.0f} rows/s): {report.invoices_imported} invoices "
        f"({report.cancellations} cancellations, {report.lines_imported} lines) imported, "
        f"{report.invoices_duplicate} already there, {report.skipped_no_customer} rows "
        f"without customer skipped, {report.error_count} bad rows "
        f"({report.invoices_dropped} invoices dropped)"
    )
    return 0


def cmd_pos_recategorize(args: argparse.Namespace, home: Path) -> int:
    from hub.shop.pos_store import recategorize
    from hub.store import db

    conn = _conn(home)
    with db.write(conn):
        n = recategorize(conn, _categorizer(args.categories))
    print(f"{n} products changed category")
    return 0


def cmd_pos_birthday(args: argparse.Namespace, home: Path) -> int:
    from hub.shop.pos_store import set_birthday
    from hub.store import db

    valid_customer_id(args.customer)
    try:
        month, day = (int(p) for p in args.date.split("-"))
        conn = _conn(home)
        with db.write(conn):
            set_birthday(conn, args.customer, month, day)
    except ValueError:
        raise CliError(f"--date must be MM-DD (a real day), got {args.date!r}") from None
    print(f"birthday of {args.customer} set to {month:02d}-{day:02d}")
    return 0


def cmd_pos_card(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy.audit import record_profile_view
    from hub.shop.card import CustomerNotFound, customer_card

    valid_customer_id(args.customer)
    if not args.reason.strip():
        raise CliError("--reason must say why you look at this customer (it is audited)")
    cfg = store_config(args, home)
    at = _datetime(args.at) if args.at else datetime.now()
    conn = _conn(home)
    try:
        card = customer_card(conn, args.customer, cfg, at)
    except CustomerNotFound:
        raise CliError(f"no customer {args.customer!r}: not enrolled, no purchases") from None
    actor = f"cli:{os.environ.get('USER', 'unknown')}"
    record_profile_view(conn, actor=actor, customer_id=args.customer, reason=args.reason)
    print(card.model_dump_json(indent=2))
    return 0


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"not an ISO date/time: {text!r}") from None


def cmd_suggest_build(args: argparse.Namespace, home: Path) -> int:
    from dataclasses import asdict

    from hub.shop.suggest import build_suggestions

    cutoff = _datetime(args.cutoff) if args.cutoff else None
    report = build_suggestions(_conn(home), cutoff=cutoff)
    print(json.dumps(asdict(report), indent=2))
    return 0


def cmd_suggest_export(args: argparse.Namespace, home: Path) -> int:
    """Every customer's two lists as one CSV, for the CRM or a mailing. Served exactly as the
    phone's card serves them (``hub.shop.suggest.served_lists``), so the file never disagrees with
    what a salesperson sees; written to a temporary file and renamed, so a failed export never
    leaves a half file where the last good one was."""
    import csv

    from hub.shop.suggest import NoBuild, served_lists

    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"--out: folder {str(out.parent)!r} does not exist")
    try:
        lists = served_lists(_conn(home), args.k)
    except ValueError as exc:
        raise CliError(f"--k {args.k}: {exc}") from None
    except NoBuild as exc:
        raise CliError(str(exc)) from None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    customers = rows = fallback = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["customer_id", "kind", "rank", "item_id"])
            for cid, usual, new in lists:
                customers += 1
                fallback += not usual
                for kind, items in (("usual", usual), ("new", new)):
                    for rank, s in enumerate(items, start=1):
                        writer.writerow([cid, kind, rank, s.stock_code])
                        rows += 1
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(
        f"{out}: {rows} rows for {customers} customers (up to {args.k} per list; {fallback} "
        "without usual items, i.e. no purchase before the last build, get the best-sellers)"
    )
    return 0


def cmd_suggest_eval(args: argparse.Namespace, home: Path) -> int:
    from hub.shop.pos_import import ImportFailed, import_csv
    from hub.store import db
    from storesense_tools.retail_eval import evaluate, markdown

    db_path = Path(args.db)
    fresh = not db_path.exists()
    # an evaluation database of its own (not the store's hub.sqlite3): made here when new
    conn = db.migrate_db(db_path) if fresh else db.open_db(db_path)
    if fresh:
        try:
            rep = import_csv(conn, args.csv, args.format, progress=sys.stderr.isatty())
        except (ImportFailed, ValueError) as exc:
            raise CliError(str(exc)) from None
        print(f"imported {rep.rows} rows in {rep.seconds:.1f} s into {db_path}", file=sys.stderr)
    results = evaluate(conn, _datetime(args.cutoff), _datetime(args.end))
    text = markdown(results)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pos`` and ``suggest`` to the top-level parser."""
    pos = sub.add_parser("pos", help="purchase data: import, categories, birthdays, cards")
    pa = pos.add_subparsers(dest="action", required=True)
    im = pa.add_parser("import", help="import a POS transactions CSV (all or nothing)")
    im.add_argument("--csv", required=True, help="CSV file, optionally .gz")
    im.add_argument("--format", choices=["online-retail", "generic"], default="online-retail")
    im.add_argument(
        "--max-errors",
        type=int,
        default=0,
        help="skip up to N bad rows (their whole invoices) instead of failing",
    )
    im.add_argument(
        "--categories", help="category rules YAML (default: the shipped rules; see config/)"
    )
    im.add_argument("--no-progress", action="store_true")
    im.add_argument("--json", action="store_true", help="print the full report as JSON")
    im.set_defaults(func=cmd_pos_import, extra=HUB_EXTRA)
    rc = pa.add_parser("recategorize", help="re-derive product categories after a rules edit")
    rc.add_argument("--categories")
    rc.set_defaults(func=cmd_pos_recategorize, extra=HUB_EXTRA)
    bd = pa.add_parser("birthday", help="record a customer's birthday (month and day only)")
    bd.add_argument("--customer", required=True)
    bd.add_argument("--date", required=True, help="MM-DD")
    bd.set_defaults(func=cmd_pos_birthday, extra=HUB_EXTRA)
    cd = pa.add_parser("card", help="print a customer's card (what the phone shows) as JSON")
    cd.add_argument("--customer", required=True)
    cd.add_argument("--at", help="as of this store-local time (default now)")
    cd.add_argument("--reason", required=True, help="why you look (written to the audit log)")
    cd.set_defaults(func=cmd_pos_card, extra=HUB_EXTRA)

    sg = sub.add_parser("suggest", help="suggestions: build the lookup table, evaluate")
    sa = sg.add_subparsers(dest="action", required=True)
    sb = sa.add_parser("build", help="recompute every customer's suggestions (nightly job)")
    sb.add_argument("--cutoff", help="use purchases before this time only (default now)")
    sb.set_defaults(func=cmd_suggest_build, extra=HUB_EXTRA)
    sx = sa.add_parser(
        "export", help="write every customer's suggestions as CSV (customer_id,kind,rank,item_id)"
    )
    sx.add_argument("--k", type=int, default=10, help="items per list (1 to the build's k)")
    sx.add_argument("--out", required=True, help="CSV file to write (replaced atomically)")
    sx.set_defaults(func=cmd_suggest_export, extra=HUB_EXTRA)
    se = sa.add_parser("eval", help="offline evaluation on a CSV, split by time")
    se.add_argument("--csv", required=True)
    se.add_argument("--format", choices=["online-retail", "generic"], default="online-retail")
    se.add_argument("--db", default="retail-eval.sqlite3", help="scratch database (reused)")
    se.add_argument("--cutoff", default=date(2011, 10, 1).isoformat())
    se.add_argument("--end", default=date(2011, 11, 1).isoformat())
    se.add_argument("--out", help="also write the metrics as JSON here")
    se.set_defaults(func=cmd_suggest_eval, extra=HUB_EXTRA)
