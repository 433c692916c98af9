"""`storesense staff list|disable|enable`: staff accounts from the hub's shell.

The same functions the manager page's rpc ops use (``hub.staff.accounts``), run as the hub's
user on the hub's home; each change is audited with the operator (``$USER``). Disabling ends
the account's sessions at once: its phones fall back to the login. ``staff add`` lives with
the web commands (``storesense_tools.cli_web``); ``storesense_tools.cli`` passes the ``staff``
sub-commands that module made to ``register`` here.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA

if TYPE_CHECKING:
    import sqlite3


def _conn(home: Path) -> sqlite3.Connection:
    from hub.store import db
    from storesense.paths import hub_db_path

    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    return db.open_db(hub_db_path(home))


def cmd_staff_list(args: argparse.Namespace, home: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from hub.staff.accounts import list_staff

    conn = _conn(home)
    try:
        rows = list_staff(conn)
    finally:
        conn.close()
    table = Table("staff id", "name", "role", "state", "changed")
    for r in rows:
        changed = datetime.fromtimestamp(float(str(r["updated_at"]))).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            str(r["staff_id"]), str(r["name"]), str(r["role"]),
            "active" if r["active"] else "DISABLED", changed,
        )  # fmt: skip
    Console().print(table)
    if not rows:
        print("no staff accounts yet: storesense staff add --id … --name … --role …")
    return 0


def _set_active(args: argparse.Namespace, home: Path, active: bool) -> int:
    from hub.push.subscriptions import forget_staff
    from hub.staff.accounts import set_active

    conn = _conn(home)
    try:
        found = set_active(
            conn, args.id, active, actor=os.environ.get("USER", "cli"), on_disable=forget_staff
        )
    finally:
        conn.close()
    if not found:
        raise CliError(f"no staff account {args.id!r} (storesense staff list shows them)")
    print(f"{args.id} {'enabled' if active else 'disabled; their sessions are ended'}")
    return 0


def cmd_staff_disable(args: argparse.Namespace, home: Path) -> int:
    return _set_active(args, home, False)


def cmd_staff_enable(args: argparse.Namespace, home: Path) -> int:
    return _set_active(args, home, True)


def register(actions: argparse._SubParsersAction) -> None:
    """Add list/disable/enable under the ``staff`` command (``actions`` = its sub-parsers)."""
    actions.add_parser("list", help="every staff account and whether it is active").set_defaults(
        func=cmd_staff_list, extra=HUB_EXTRA
    )
    for name, func, text in (
        ("disable", cmd_staff_disable, "disable an account; its phones are logged out at once"),
        ("enable", cmd_staff_enable, "enable a disabled account again"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("id", metavar="ID", help="staff id")
        p.set_defaults(func=func, extra=HUB_EXTRA)
