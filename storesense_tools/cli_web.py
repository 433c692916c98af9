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
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, read_password, store_config

if TYPE_CHECKING:
    from storesense.config import MqttConfig, StoreConfig


def cmd_staff_add(args: argparse.Namespace, home: Path) -> int:
    from hub.staff.accounts import AccountError, add_staff
    from hub.store import db
    from storesense.paths import hub_db_path

    password = read_password(args, f"password for {args.id}: ", confirm=True)
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


def _web_tls(args: argparse.Namespace, cfg: StoreConfig, home: Path) -> WebTls:
    """Where the web app's certificate comes from, in this order: ``--tls-cert/--tls-key``
    (the unit, with the key handed over by systemd), ``app.tls_cert/tls_key`` in the config,
    plain HTTP if ``app.plain_http`` says so, else a certificate issued from the store CA in
    the home (made on first start; the CA too if the home has none)."""
    from storesense import tls

    cert = args.tls_cert or cfg.app.tls_cert
    key = args.tls_key or cfg.app.tls_key
    if (cert is None) != (key is None):
        raise CliError("--tls-cert and --tls-key go together: give both or neither")
    ca = Path(args.ca_cert) if args.ca_cert else None
    if cert is not None and key is not None:
        for f in (cert, key):
            if not Path(f).is_file():
                raise CliError(f"TLS file {f} does not exist")
        if ca is None and (tls.home_tls_dir(home) / tls.CA_CERT).is_file():
            ca = tls.home_tls_dir(home) / tls.CA_CERT
        return WebTls(cert, key, ca, tls.cert_hosts(Path(cert)), [])
    if cfg.app.plain_http:
        return WebTls(None, None, None, [], [])
    hosts = tls.default_web_hosts(cfg.app.tls_hosts)
    try:
        leaf, ca_path, done = tls.ensure_web_cert(home, cfg.store_id, hosts)
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    return WebTls(str(leaf.cert_path), str(leaf.key_path), ca_path, hosts, done)


class WebTls(NamedTuple):
    cert: str | None
    key: str | None
    ca: Path | None
    hosts: list[str]
    done: list[str]


def _onboarding_lines(url: str, ca: Path | None) -> list[str]:
    import segno
    from cryptography import x509

    from hub.web.app import ca_fingerprint

    out = io.StringIO()
    segno.make_qr(url, error="m").terminal(out=out, compact=True, border=2)
    lines = [f"phone onboarding: {url}", out.getvalue().rstrip("\n")]
    if ca is not None:
        cert = x509.load_pem_x509_certificate(ca.read_bytes())
        lines.append(f"store CA {ca}: SHA-256 {ca_fingerprint(cert)}")
    return lines


def _public_name(hosts: list[str], host: str) -> str:
    """The first certificate name a phone can reach (not loopback), else the listen host."""
    for h in hosts:
        if h not in ("localhost", "127.0.0.1", "::1") and not h.startswith("127."):
            return h
    return hosts[0] if hosts else host


def cmd_web_run(args: argparse.Namespace, home: Path) -> int:
    import logging

    from hub.web.app import create_app
    from hub.web.server import Tls, serve, uvicorn_config

    cfg = store_config(args, home)
    web_tls = _web_tls(args, cfg, home)
    host = args.host or cfg.app.host
    port = args.port or cfg.app.port
    allowed = list(cfg.app.allowed_hosts) or (
        [*web_tls.hosts, host] if web_tls.cert is not None else []
    )
    app = create_app(
        cfg,
        mqtt=_gateway_mqtt(args, cfg),  # home: nothing of the hub's in it
        ca_cert=web_tls.ca,
        allowed_hosts=allowed,
    )
    tls_files = None
    if web_tls.cert is not None and web_tls.key is not None:
        tls_files = Tls(web_tls.cert, web_tls.key)
    config = uvicorn_config(
        app, cfg.app, host=host, port=port, tls=tls_files,
        log_level="debug" if args.verbose else "info",
    )  # fmt: skip
    log = logging.getLogger("storesense.web")
    for line in web_tls.done:
        print(line, file=sys.stderr)
    if tls_files is None:
        print(
            "WARNING: serving plain HTTP (app.plain_http): passwords, cookies and customer data "
            "cross the network in clear, and phones allow no install and no notifications. "
            "Only behind a TLS proxy or in a lab.",
            file=sys.stderr,
        )
        log.warning("serving plain HTTP on %s:%d (app.plain_http)", host, port)
    else:
        url = f"https://{_public_name(web_tls.hosts, host)}:{port}/onboarding"
        print("\n".join(_onboarding_lines(url, web_tls.ca)), file=sys.stderr)
    serve(config)
    return 0


def cmd_web_cert(args: argparse.Namespace, home: Path) -> int:
    """Issue the web certificate from a store CA (the broker-config folder's, or the home's,
    created there if absent) for the names and IPs phones will use."""
    from storesense import tls

    cfg = store_config(args, home)
    ca_dir = Path(args.ca_dir) if args.ca_dir else tls.home_tls_dir(home)
    hosts = tls.default_web_hosts([*args.host, *cfg.app.tls_hosts])
    out = Path(args.out) if args.out else ca_dir
    try:
        if args.ca_dir:
            ca, created = tls.load_ca(ca_dir), False
        else:
            ca, created = tls.ensure_ca(ca_dir, cfg.store_id)
        leaf = tls.write_server_cert(ca, hosts, out / tls.WEB_CERT, out / tls.WEB_KEY)
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    if created:
        print(f"created the store CA {ca.cert_path}")
    print(f"issued {leaf.cert_path} (key {leaf.key_path}) for {', '.join(hosts)}")
    print(f"set app.tls_cert: {leaf.cert_path} and app.tls_key: {leaf.key_path}, or pass "
          "--tls-cert/--tls-key to `storesense web run`")  # fmt: skip
    return 0


def cmd_web_onboarding(args: argparse.Namespace, home: Path) -> int:
    """Print the onboarding URL, its QR code and the store CA fingerprint (for the phones)."""
    from storesense import tls

    cfg = store_config(args, home)
    ca = Path(args.ca_cert) if args.ca_cert else tls.home_tls_dir(home) / tls.CA_CERT
    if not ca.is_file():
        raise CliError(f"no store CA at {ca}: run `storesense web cert` or pass --ca-cert")
    host = args.url_host or _public_name(tls.default_web_hosts(cfg.app.tls_hosts), cfg.app.host)
    url = f"https://{host}:{args.port or cfg.app.port}/onboarding"
    print("\n".join(_onboarding_lines(url, ca)))
    return 0


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the phone app's commands; returns the ``staff`` sub-commands, which
    ``storesense_tools.cli`` hands to ``cli_staff`` for list/disable/enable."""
    staff = sub.add_parser("staff", help="salespeople and managers of the phone app")
    staff_actions = staff.add_subparsers(dest="action", required=True)
    sa = staff_actions.add_parser(
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
    wr.add_argument("--tls-cert", help="PEM certificate (overrides app.tls_cert)")
    wr.add_argument("--tls-key", help="PEM key (overrides app.tls_key; the unit's credential)")
    wr.add_argument("--ca-cert", help="the store CA the onboarding page offers to phones")
    wr.set_defaults(func=cmd_web_run, extra=HUB_EXTRA)
    wc = web.add_parser("cert", help="issue the web app's HTTPS certificate from the store CA")
    wc.add_argument(
        "--ca-dir", help="folder with ca.crt and ca.key (broker-config's; default HOME/tls)"
    )
    wc.add_argument("--out", help="folder for web.crt and web.key (default: the CA folder)")
    wc.add_argument("--host", action="append", default=[], help="name/IP phones use (repeat)")
    wc.set_defaults(func=cmd_web_cert, extra=HUB_EXTRA, shared_files=True)
    wo = web.add_parser("onboarding", help="print the phone onboarding URL, QR code, CA check")
    wo.add_argument("--ca-cert", help="the store CA (default HOME/tls/ca.crt)")
    wo.add_argument("--url-host", help="the name phones use for the hub (default: this host)")
    wo.add_argument("--port", type=int, help="the web app's port (default app.port)")
    wo.set_defaults(func=cmd_web_onboarding, extra=HUB_EXTRA)
    wt = web.add_parser("pos-token", help="print (create) the POS webhook's bearer token")
    wt.add_argument("--rotate", action="store_true", help="replace the token with a new one")
    wt.set_defaults(func=cmd_web_pos_token, extra=HUB_EXTRA)
    return staff_actions
