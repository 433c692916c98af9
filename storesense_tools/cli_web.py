"""`storesense staff add` and `storesense web run|pos-token`: the phone app's commands.

``staff add`` and ``web pos-token`` are hub administration (run as the hub's user on the hub's
home: they write the hub database / a hub secret). ``web run`` starts the web process, a
stateless gateway: its home holds nothing of the hub's, it reaches the hub only over MQTT
with its own account (``--mqtt-credentials``).

Registered by ``storesense_tools.cli`` (kept in their own file so the POS/loyalty
commands and these can change independently). Heavy imports happen inside each command.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, store_config

if TYPE_CHECKING:
    from storesense.config import MqttConfig, StoreConfig


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass(f"password for {args.id}: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def cmd_staff_add(args: argparse.Namespace, home: Path) -> int:
    from hub.staff.accounts import AccountError, add_staff
    from hub.store import db
    from storesense.paths import hub_db_path

    password = _read_password(args)
    conn = db.open_db(hub_db_path(home))
    try:
        staff = add_staff(conn, args.id, args.name, args.role, password, replace=args.replace)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    finally:
        conn.close()
    print(
        f"{'updated' if args.replace else 'added'} {staff.staff_id} ({staff.name}) as {staff.role}"
    )
    return 0


def cmd_web_pos_token(args: argparse.Namespace, home: Path) -> int:
    from hub.api.pos_token import ensure_token, token_path

    token = ensure_token(home, rotate=args.rotate)
    print(token)
    print(
        f"(stored in {token_path(home)}; the hub reads it at each request, no restart needed)",
        file=sys.stderr,
    )
    return 0


def _gateway_mqtt(args: argparse.Namespace, cfg: StoreConfig) -> MqttConfig:
    """``cfg.mqtt`` with the gateway's own account from a ``broker-config`` credentials YAML
    (username, password, tls_ca, port) laid over it."""
    from pydantic import ValidationError

    from storesense.config import MqttConfig

    if args.mqtt_credentials is None:
        return cfg.mqtt
    import yaml

    try:
        creds = yaml.safe_load(Path(args.mqtt_credentials).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read MQTT credentials {args.mqtt_credentials}: {exc}") from None
    if not isinstance(creds, dict):
        raise CliError(f"{args.mqtt_credentials}: expected username/password/tls_ca/port keys")
    try:
        return MqttConfig.model_validate({**cfg.mqtt.model_dump(), **creds})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"{args.mqtt_credentials}: {first['loc'][0]}: {first['msg']}") from None


def cmd_web_run(args: argparse.Namespace, home: Path) -> int:
    import uvicorn

    from hub.web.app import create_app

    cfg = store_config(args, home)
    app = create_app(cfg, mqtt=_gateway_mqtt(args, cfg))  # home: nothing of the hub's in it
    uvicorn.run(
        app,
        host=args.host or cfg.app.host,
        port=args.port or cfg.app.port,
        ssl_certfile=cfg.app.tls_cert,
        ssl_keyfile=cfg.app.tls_key,
        ws_max_size=16 * 1024,  # phones only send pings
        log_level="debug" if args.verbose else "info",
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    staff = sub.add_parser("staff", help="salespeople and managers of the phone app")
    sa = staff.add_subparsers(dest="action", required=True).add_parser(
        "add", help="add (or --replace) a staff account; asks for the password"
    )
    sa.add_argument("--id", required=True, help="staff id (also their MQTT claim topic)")
    sa.add_argument("--name", required=True, help="name shown to colleagues ('taken by …')")
    sa.add_argument("--role", required=True, choices=["salesperson", "manager"])
    sa.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sa.add_argument("--replace", action="store_true", help="update an existing account")
    sa.set_defaults(func=cmd_staff_add, extra=HUB_EXTRA)

    web = sub.add_parser("web", help="the phone app / manager page server").add_subparsers(
        dest="action", required=True
    )
    wr = web.add_parser("run", help="serve the phone app, manager page and POS webhook")
    wr.add_argument("--host", help="listen address (default app.host from the config)")
    wr.add_argument("--port", type=int, help="listen port (default app.port)")
    wr.add_argument(
        "--mqtt-credentials",
        default=os.environ.get("STORESENSE_GATEWAY_CREDENTIALS"),
        help="broker-config's credentials/phone-gateway.yaml (the gateway's MQTT account)",
    )
    wr.set_defaults(func=cmd_web_run, extra=HUB_EXTRA)
    wt = web.add_parser("pos-token", help="print (create) the POS webhook's bearer token")
    wt.add_argument("--rotate", action="store_true", help="replace the token with a new one")
    wt.set_defaults(func=cmd_web_pos_token, extra=HUB_EXTRA)
