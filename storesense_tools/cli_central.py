"""``storesense central run|migrate|retention|bridge-config|user|store|web|pos``: the chain's
central office; and ``storesense chain resend`` on a store hub.

``migrate`` sets up or upgrades the PostgreSQL schema (``central.db``); ``run`` is the ingest
service (``central.service``); ``bridge-config`` writes the central broker's config and each
store's bridge (``storesense_tools.chain_bridge``); ``user add`` and ``store set`` keep the
head-office users and the stores' regions, and ``web`` serves the roll-up page
(``central.web``); ``pos import`` reads a store's till export into the office (``central.pos``).
The central config is a YAML file (``--central-config``, else
``$STORESENSE_CENTRAL_CONFIG``, else ``HOME/central.yaml``); the database can also be given
alone with ``--database``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from storesense.errors import CliError

CENTRAL_EXTRA = "central"
log = logging.getLogger("storesense")


def _config_path(args: argparse.Namespace, home: Path) -> Path:
    return Path(
        args.central_config or os.environ.get("STORESENSE_CENTRAL_CONFIG") or home / "central.yaml"
    )


def _dsn(args: argparse.Namespace, home: Path) -> str:
    from central.config import load_central_config

    return str(args.database or load_central_config(_config_path(args, home)).database)


def cmd_central_migrate(args: argparse.Namespace, home: Path) -> int:
    from central import db

    dsn = _dsn(args, home)
    try:
        conn = db.connect(dsn)
        try:
            applied = db.migrate(conn)
        finally:
            conn.close()
    except db.CentralDbError as exc:
        raise CliError(str(exc)) from None
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    print(f"central schema version {db.LATEST} ({done})")
    return 0


def cmd_central_retention(args: argparse.Namespace, home: Path) -> int:
    import datetime as dt

    from central import db

    dsn = _dsn(args, home)
    try:
        conn = db.connect(dsn)
        try:
            db.require_current(conn)
            dropped = db.apply_retention(conn, dt.datetime.now(dt.UTC).date())
        finally:
            conn.close()
    except db.CentralDbError as exc:
        raise CliError(str(exc)) from None
    print(f"dropped {len(dropped)} day partitions" + (f": {', '.join(dropped)}" if dropped else ""))
    return 0


def cmd_central_run(args: argparse.Namespace, home: Path) -> int:
    import signal
    import threading

    from central import db
    from central.config import load_central_config
    from central.service import CentralService
    from storesense import service_notify
    from storesense.mqtt_client import MqttConnectError

    cfg = load_central_config(_config_path(args, home))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with CentralService(cfg) as svc:
            log.info("central office running (broker %s:%d)", cfg.mqtt.host, cfg.mqtt.port)
            service_notify.ready()  # systemd Type=notify: connected and subscribed
            stop.wait()
            service_notify.stopping()
            log.info("central stopping: %s applied, %d duplicates, rejected %s",
                     dict(svc.ingest.applied), svc.ingest.duplicates,
                     dict(svc.ingest.rejected))  # fmt: skip
    except (db.CentralDbError, MqttConnectError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _office_db(args: argparse.Namespace, home: Path) -> Any:
    """A connection to the central database at the current schema, else a one-line error."""
    from central import db

    dsn = _dsn(args, home)
    try:
        conn = db.connect(dsn)
        db.require_current(conn)
    except db.CentralDbError as exc:
        raise CliError(str(exc)) from None
    return conn


def cmd_central_user_add(args: argparse.Namespace, home: Path) -> int:
    """Create or replace a head-office user of the roll-up page."""
    import getpass
    import sys

    from central import users

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ")
    conn = _office_db(args, home)
    try:
        users.add_user(conn, args.user, password, role=args.role, name=args.name or "",
                       regions=args.region or [])  # fmt: skip
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        conn.close()
    sees = "every store" if args.role == "chain" else "region " + ", ".join(args.region)
    print(f"user {args.user} ({args.role}) saved: sees {sees}")
    return 0


def cmd_central_store_set(args: argparse.Namespace, home: Path) -> int:
    """Name a store and put it in a region (what region managers see)."""
    from central import users

    conn = _office_db(args, home)
    try:
        users.set_store(conn, args.store, region=args.region, name=args.name)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        conn.close()
    print(f"store {args.store} saved")
    return 0


def cmd_central_pos_import(args: argparse.Namespace, home: Path) -> int:
    """One till export of one store into the office (docs/chain.md "Central POS feed")."""
    from central.pos import import_pos
    from storesense.pos_csv import ImportFailed

    conn = _office_db(args, home)
    try:
        report, queued = import_pos(conn, Path(args.csv), args.store, args.format,
                                    max_errors=args.max_errors)  # fmt: skip
    except ImportFailed as exc:
        for line, msg in exc.report.errors[:20]:
            print(f"  line {line}: {msg}", file=sys.stderr)
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        conn.close()
    for line, msg in report.errors[:20]:
        print(f"  skipped line {line}: {msg}", file=sys.stderr)
    print(
        f"{report.path} (store {args.store}): {report.rows} rows in {report.seconds:.1f} s: "
        f"{report.invoices_imported} invoices ({report.lines_imported} lines) imported, "
        f"{report.invoices_duplicate} already there, {report.skipped_no_customer} rows without "
        f"customer skipped, {report.error_count} bad rows; {queued} purchases queued for the "
        "stores holding those chain customers"
    )
    return 0


def cmd_central_web(args: argparse.Namespace, home: Path) -> int:
    """The head-office roll-up page (its own process beside ``central run``)."""
    import uvicorn

    from central.web import create_app

    _office_db(args, home).close()  # refuse a database at another schema version up front
    dsn = _dsn(args, home)
    tls: dict[str, str] = {}
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise CliError("give both --tls-cert and --tls-key")
        tls = {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
    log.info("head-office page on %s:%d", args.listen, args.port)
    uvicorn.run(create_app(dsn), host=args.listen, port=args.port, log_level="info",
                access_log=False, **tls)  # type: ignore[arg-type]  # fmt: skip
    return 0


def cmd_bridge_config(args: argparse.Namespace, home: Path) -> int:
    from storesense_tools.broker_config import BrokerConfigError
    from storesense_tools.chain_bridge import write_chain_bridge

    try:
        bundle = write_chain_bridge(
            args.store, Path(args.out), central_host=args.host, port=args.port,
            listen_host=args.listen,
            store_cafile=Path(args.store_ca_path) if args.store_ca_path else None,
            force=args.force,
        )  # fmt: skip
    except BrokerConfigError as exc:
        raise CliError(str(exc)) from None
    print(
        f"wrote {bundle.conf} (TLS on {args.listen}:{args.port}), {len(bundle.bridges)} store "
        f"bridges in {bundle.out_dir}/bridges, credentials in {bundle.out_dir}/credentials"
    )
    return 0


def cmd_chain_resend(args: argparse.Namespace, home: Path) -> int:
    """On a store hub: publish the chain messages of the last ``--hours`` again."""
    import time

    from hub.chain.feed import resend_since
    from hub.store import db as hub_db
    from storesense.paths import hub_db_path
    from storesense.topics import Topics
    from storesense_tools.common import store_config

    if not 0 < args.hours <= 7 * 24:
        raise CliError("--hours must be more than 0 and at most 168 (the outbox keeps 7 days)")
    cfg = store_config(args, home)
    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    conn = hub_db.open_db(hub_db_path(home))
    try:
        n = resend_since(conn, Topics(cfg.store_id), time.time() - args.hours * 3600)
    finally:
        conn.close()
    print(f"{n} chain messages marked to send again; the running hub publishes them now")
    return 0


def cmd_chain_peers(args: argparse.Namespace, home: Path) -> int:
    """On a store hub: the other stores' pinned chain keys, this store's own fingerprint, and
    accepting a key the office sent for a known store since (compared out of band first)."""
    import time

    from hub.chain import customers as chain_customers
    from hub.chain import seal
    from hub.store import db as hub_db
    from storesense.paths import chain_key_path, hub_db_path
    from storesense_tools.common import operator_name

    if bool(args.accept) != bool(args.fingerprint):
        raise CliError("give --accept STORE and --fingerprint FP together")
    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    conn = hub_db.open_db(hub_db_path(home))
    try:
        if args.accept:
            try:
                chain_customers.accept_peer_key(
                    conn, args.accept, args.fingerprint, actor=operator_name(), now=time.time()
                )
            except chain_customers.PeerKeyError as exc:
                raise CliError(str(exc)) from None
            print(f"store {args.accept}'s new key accepted; the hub seals for it from now on")
            return 0
        if chain_key_path(home).exists():
            mine = seal.public_b64(seal.load_or_create(chain_key_path(home)))
            print(f"this store's key: {seal.fingerprint(mine)}")
        for p in chain_customers.peer_keys(conn):
            held = (
                f"  HELD: another key {p['pending_fingerprint']} sent by the office"
                if p["pending_fingerprint"] else ""
            )  # fmt: skip
            gone = "" if p["listed"] else "  (not in the office's directory: nothing sealed)"
            print(f"{p['store_id']:<20} {p['fingerprint']}{held}{gone}")
    finally:
        conn.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    central = sub.add_parser("central", help="the chain's central office (PostgreSQL)")
    acts = central.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--central-config", help="central YAML (default HOME/central.yaml)")
    mig = acts.add_parser("migrate", parents=[common], help="create or upgrade the schema")
    mig.add_argument("--database", help="connection string (instead of the config's)")
    mig.set_defaults(func=cmd_central_migrate, extra=CENTRAL_EXTRA)
    ret = acts.add_parser(
        "retention", parents=[common], help="drop day partitions past each table's keep period"
    )
    ret.add_argument("--database", help="connection string (instead of the config's)")
    ret.set_defaults(func=cmd_central_retention, extra=CENTRAL_EXTRA)
    run = acts.add_parser("run", parents=[common], help="ingest the stores' messages")
    run.set_defaults(func=cmd_central_run, extra=CENTRAL_EXTRA)
    db_arg = argparse.ArgumentParser(add_help=False)
    db_arg.add_argument("--database", help="connection string (instead of the config's)")
    ua = acts.add_parser("user", help="head-office users of the roll-up page")
    ua_acts = ua.add_subparsers(dest="user_action", required=True)
    add = ua_acts.add_parser("add", parents=[common, db_arg], help="create or replace a user")
    add.add_argument("--user", required=True, help="login name (a store-style id)")
    add.add_argument("--name", help="the person's name, shown on the page")
    add.add_argument("--role", required=True, choices=["chain", "region"],
                     help="chain: every store; region: the stores of --region")  # fmt: skip
    add.add_argument("--region", action="append", help="a region the user sees (repeat)")
    add.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from stdin's first line (else asked twice)",
    )  # fmt: skip
    add.set_defaults(func=cmd_central_user_add, extra=CENTRAL_EXTRA)
    st = acts.add_parser("store", help="the chain's stores: name and region")
    st_acts = st.add_subparsers(dest="store_action", required=True)
    sset = st_acts.add_parser("set", parents=[common, db_arg], help="name a store, set its region")
    sset.add_argument("--store", required=True)
    sset.add_argument("--region", help="its region ('' for none)")
    sset.add_argument("--name", help="its name on the page")
    sset.set_defaults(func=cmd_central_store_set, extra=CENTRAL_EXTRA)
    pos = acts.add_parser("pos", help="the chain's POS feed")
    pos_acts = pos.add_subparsers(dest="pos_action", required=True)
    pim = pos_acts.add_parser(
        "import", parents=[common, db_arg],
        help="import one store's till export (the formats of `storesense pos import`)",
    )  # fmt: skip
    pim.add_argument("csv", help="CSV file (optionally .gz)")
    pim.add_argument("--store", required=True, help="the store whose till this export is")
    pim.add_argument("--format", choices=["online-retail", "generic"], default="online-retail")
    pim.add_argument(
        "--max-errors", type=int, default=0,
        help="bad rows allowed (their invoices dropped); default 0: all or nothing",
    )  # fmt: skip
    pim.set_defaults(func=cmd_central_pos_import, extra=CENTRAL_EXTRA)
    web = acts.add_parser("web", parents=[common, db_arg], help="serve the roll-up page")
    web.add_argument("--listen", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8095)
    web.add_argument("--tls-cert", help="serve HTTPS with this certificate (or a TLS proxy)")
    web.add_argument("--tls-key")
    web.set_defaults(func=cmd_central_web, extra=CENTRAL_EXTRA)
    bc = acts.add_parser("bridge-config", help="central broker config and each store's bridge")
    bc.add_argument("--store", action="append", required=True, help="a store id (repeat)")
    bc.add_argument("--out", required=True)
    bc.add_argument("--host", required=True, help="the central broker's name as stores reach it")
    bc.add_argument("--port", type=int, default=8883)
    bc.add_argument("--listen", default="0.0.0.0")
    bc.add_argument("--store-ca-path", help="where the central CA will be on each store")
    bc.add_argument("--force", action="store_true")
    bc.set_defaults(func=cmd_bridge_config, extra="hub", shared_files=True)

    chain = sub.add_parser("chain", help="this store's link to the chain's central office")
    chain_acts = chain.add_subparsers(dest="action", required=True)
    rs = chain_acts.add_parser(
        "resend", help="send the chain messages of the last hours again (the office drops copies)"
    )
    rs.add_argument("--hours", type=float, required=True, help="how far back (at most 7 days)")
    rs.set_defaults(func=cmd_chain_resend, extra="hub")
    pe = chain_acts.add_parser(
        "peers", help="the other stores' pinned keys; accept a new one after comparing it"
    )
    pe.add_argument("--accept", metavar="STORE", help="use the key held for this store")
    pe.add_argument("--fingerprint", help="the held key's fingerprint, as that store shows it")
    pe.set_defaults(func=cmd_chain_peers, extra="hub")
