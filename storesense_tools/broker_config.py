"""``storesense broker-config``: a Mosquitto set-up in which every client is known and confined.

Generates, for one store: a store CA, a broker certificate and the web app's HTTPS certificate
from that same CA (``storesense.tls``, no openssl subprocess), a TLS-only ``mosquitto.conf``
with anonymous access off, a ``passwd`` file with one account per device (hub, each camera,
the phone gateway) hashed in Mosquitto's own ``$7$`` format, and an ``acl`` file derived from
``storesense.topics`` so that each camera may only publish its own topics, only the hub
publishes alerts and claim results, and nobody but the hub reads embeddings. Per-account
credential files go in ``credentials/`` (0600) for the installer to copy onto each device
(``scripts/flash_device.sh --mqtt-credentials`` reads them).

docs/broker-security.md has the ACL table and the install / rotation steps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from storesense import tls
from storesense.config import StoreConfig
from storesense.topics import Topics

HUB = "hub"
GATEWAY = "phone-gateway"
CREDENTIALS = "credentials"

# Mosquitto 2.x ``$7$``: PBKDF2-HMAC-SHA512, 12-byte salt, iterations stored in the line.
# 101 is mosquitto_passwd's own default. The passwords are 192-bit random tokens, so the
# iteration count adds nothing against guessing; a high one would only slow every CONNECT.
PW_ITERATIONS = 101
PW_SALT_BYTES = 12

CA_DAYS = 3650
BROKER_CERT_DAYS = 825  # the longest lifetime most TLS stacks still accept for a leaf

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
_HOST_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")

Access = Literal["read", "write"]  # Mosquitto ACL access keywords


class BrokerConfigError(RuntimeError):
    """A refusal the installer can act on (non-empty folder, bad host name, bad port)."""


@dataclass
class BrokerBundle:
    """What was written: every path, and each account's password (also in ``credentials/``)."""

    out_dir: Path
    conf: Path
    ca_cert: Path
    ca_key: Path
    broker_cert: Path
    broker_key: Path
    web_cert: Path
    web_key: Path
    passwd: Path
    acl: Path
    credentials_dir: Path
    accounts: dict[str, str] = field(default_factory=dict)  # username -> password

    def credentials(self, username: str) -> Path:
        """The credentials YAML to copy onto the device that uses ``username``."""
        return self.credentials_dir / f"{username}.yaml"


def camera_account(camera_id: str) -> str:
    """One account per camera, so the ACL can pin a camera to its own topics."""
    return f"cam-{camera_id}"


def acl_rules(cfg: StoreConfig) -> dict[str, list[tuple[Access, str]]]:
    """username -> [(read|write, topic pattern)], every pattern from ``storesense.topics``.

    Least privilege from who actually publishes and subscribes what (docs/mqtt.md): nobody
    gets ``readwrite`` on a topic it only needs one way, so a compromised camera or gateway
    cannot feed the hub forged alerts or read the embeddings of a store's visitors.
    """
    t = Topics(cfg.store_id)
    rules: dict[str, list[tuple[Access, str]]] = {
        HUB: [
            ("read", t.all_faces),  # embeddings: the hub alone
            ("read", t.all_floor),
            ("read", t.all_edge_status),  # heartbeats and cameras' last wills
            ("read", t.all_claims),
            ("read", t.all_rpc_requests),  # the web process's requests (storesense.rpc)
            ("write", t.rpc_reply("+")),
            ("write", t.all_alerts),
            ("write", t.claim_result("+")),
            ("write", t.hub_status),  # also the hub's last will
            ("write", t.node_health),
            # what the store sends its chain's office (docs/chain.md); the bridge forwards it
            ("write", t.chain("+")),
            # the office's messages for this store: its bridge writes them (a bridge's local
            # side is not subject to the ACL), only the hub reads them, nobody else writes
            ("read", t.all_chain_down),
        ],
        # The web process (a stateless gateway): it sends requests on the rpc topics and reads
        # the replies, the alert projection and the hub's status; it never reads embeddings,
        # camera topics or requests (a login's password goes to the hub only). It may not
        # publish on claims/+ either: its claims are rpc requests whose session and CSRF tokens
        # the hub checks, and a raw claim names any staff member without a session.
        GATEWAY: [
            ("read", t.all_alerts),
            ("read", t.claim_result("+")),
            ("read", t.hub_status),
            ("read", t.node_health),  # door cameras' health, for the phones' banner
            ("write", t.rpc_request("+")),
            ("read", t.rpc_reply("+")),
        ],
    }
    for cam in cfg.cameras:
        rules[camera_account(cam.id)] = [
            ("write", t.faces(cam.id) if cam.role == "entrance" else t.floor(cam.id)),
            ("write", t.edge_status(cam.id)),  # also its last will, checked at CONNECT
        ]
    return rules


def render_acl(rules: dict[str, list[tuple[Access, str]]]) -> str:
    """Mosquitto ``acl_file`` text; no rule before the first ``user`` line, so none is global."""
    lines = ["# Generated by `storesense broker-config`; anything not listed is denied."]
    for user, entries in rules.items():
        lines.append(f"\nuser {user}")
        lines += [f"topic {access} {pattern}" for access, pattern in entries]
    return "\n".join(lines) + "\n"


def secured_broker(out: Path) -> str:
    """No anonymous clients, ``out/passwd`` accounts, ``out/acl`` rules, for every listener
    (the store's and the chain's central broker alike)."""
    return f"""per_listener_settings false
allow_anonymous false
password_file {out / "passwd"}
acl_file {out / "acl"}
"""


def persistence(out: Path) -> str:
    return f"""persistence true
persistence_location {out / "data"}/
autosave_interval 60
"""


def tls_listener(out: Path, listen_host: str, port: int) -> str:
    """One TLS listener with ``out``'s CA, certificate and key; client id = username."""
    return f"""listener {port} {listen_host}
protocol mqtt
cafile {out / "ca.crt"}
certfile {out / "broker.crt"}
keyfile {out / "broker.key"}
tls_version tlsv1.2
require_certificate false
# The client id is the username: one session per device, and no account can take over (and
# so disconnect) another's session by connecting with its client id.
use_username_as_clientid true
"""


def render_conf(out: Path, *, listen_host: str, tls_port: int) -> str:
    """``mosquitto.conf`` for ``mosquitto -c``: one TLS listener, security settings global."""
    return f"""# Generated by `storesense broker-config`. TLS only; every client has an account.
# Security settings are global on purpose (per_listener_settings false): a listener added
# later, by hand or by an include, inherits "no anonymous, passwords, ACL" instead of
# silently starting open. There is no plain listener, not even on loopback: the hub talks
# TLS to 127.0.0.1 (the broker certificate covers it), so there is nothing to gain from one.
{secured_broker(out)}
# Persistent sessions and retained alerts / statuses survive a broker restart.
{persistence(out)}
# Store-and-forward for a hub that is away: Mosquitto queues only 1,000 QoS 1 messages per
# offline session by default and drops the rest *after* acknowledging them to the camera, so
# the camera's outbox cannot know. A busy door produces ~1 face-track message a second and a
# floor camera 1 batch a second: 200,000 messages (capped at 256 MiB) covers a hub outage of
# more than a day for a store's cameras. Found with bench/hub_alert_throughput.py.
max_queued_messages 200000
max_queued_bytes 268435456

# A claim, the new alert state and their acknowledgements are tiny packets sent back to back;
# with Nagle's algorithm each waits for the peer's delayed ACK (~40 ms on Linux) and the
# claim -> gone-on-other-phones path triples (bench/phones_claim_latency.py).
set_tcp_nodelay true

{tls_listener(out, listen_host, tls_port)}"""


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """The ``$7$`` hash Mosquitto 2.x's ``mosquitto_passwd`` writes, made in-process.

    Done here rather than with ``mosquitto_passwd -b`` because ``-b`` puts every password in
    the process table while it runs, and because the bundle may be generated on a machine
    without Mosquitto installed. The tests prove the broker accepts these hashes.
    """
    salt = secrets.token_bytes(PW_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PW_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PW_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` line value (for tests and rotation checks)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except ValueError:
        return False


def _write(path: Path, data: bytes, mode: int) -> None:
    """``storesense.tls.write_private``: temporary file + rename, ``mode`` forced (a running
    broker re-reads ``passwd`` and ``acl`` on SIGHUP and must never see half a file)."""
    tls.write_private(path, data, mode)


def _make_pki(store_id: str, hosts: list[str]) -> dict[str, bytes]:
    """Store CA (``storesense.tls``: EC P-256, ~10 y, may sign only leaves), a server-only
    broker certificate and, from the same CA, the web app's certificate: a phone that
    installed the store CA trusts the web app, and the devices trust the broker, by one CA."""
    ca_pem, ca_key_pem = tls.make_ca(store_id)
    ca = tls.ca_from_pem(ca_pem, ca_key_pem, Path(tls.CA_CERT))
    broker_crt, broker_key = tls.issue_server_cert(ca, hosts, days=BROKER_CERT_DAYS)
    web_crt, web_key = tls.issue_server_cert(ca, hosts)
    return {
        "ca.crt": ca_pem,
        "ca.key": ca_key_pem,
        "broker.crt": broker_crt,
        "broker.key": broker_key,
        tls.WEB_CERT: web_crt,
        tls.WEB_KEY: web_key,
    }


def _check_inputs(
    out: Path, listen_host: str, tls_port: int, hosts: list[str], force: bool
) -> None:
    if out.exists() and not out.is_dir():
        raise BrokerConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BrokerConfigError(
            f"{out} is not empty: pass --force to overwrite the generated files there "
            "(this makes a new CA and new passwords for every device)"
        )
    if any(c.isspace() for c in str(out)):
        # mosquitto.conf has no quoting: a path with a space would be cut at the space.
        raise BrokerConfigError(f"{out}: choose an output folder without spaces in its path")
    if not 1 <= tls_port <= 65535:
        raise BrokerConfigError(f"TLS port {tls_port} is not between 1 and 65535")
    for h in [listen_host, *hosts]:
        try:
            ipaddress.ip_address(h)
        except ValueError:
            if not _HOST_RE.match(h):
                raise BrokerConfigError(f"{h!r} is not a host name or an IP address") from None


def write_broker_config(
    cfg: StoreConfig,
    out_dir: Path,
    *,
    listen_host: str = "0.0.0.0",
    tls_port: int = 8883,
    hub_host_names: list[str] | None = None,
    force: bool = False,
) -> BrokerBundle:
    """Write the whole bundle into ``out_dir`` (absolute paths in the conf: generate in place).

    Refuses a non-empty ``out_dir`` unless ``force``; with ``force`` it overwrites its own
    files and removes stale ``credentials/*.yaml`` (of cameras no longer configured), and
    leaves anything else, including the broker's persistence in ``data/``, alone.
    """
    out = Path(out_dir).expanduser().absolute()
    hosts = list(dict.fromkeys([*(hub_host_names or []), "localhost", "127.0.0.1"]))
    _check_inputs(out, listen_host, tls_port, hosts, force)

    out.mkdir(parents=True, exist_ok=True)
    creds_dir = out / CREDENTIALS
    for sub in (creds_dir, out / "data"):
        sub.mkdir(exist_ok=True)
        sub.chmod(0o700)
    for stale in creds_dir.glob("*.yaml"):
        stale.unlink()

    for name, data in _make_pki(cfg.store_id, hosts).items():
        _write(out / name, data, 0o600 if name.endswith(".key") else 0o644)

    rules = acl_rules(cfg)
    accounts = {user: secrets.token_urlsafe(24) for user in rules}  # 192 bits each
    passwd = "".join(f"{u}:{mosquitto_hash(p)}\n" for u, p in accounts.items())
    _write(out / "passwd", passwd.encode(), 0o600)
    _write(out / "acl", render_acl(rules).encode(), 0o644)
    conf = render_conf(out, listen_host=listen_host, tls_port=tls_port)
    _write(out / "mosquitto.conf", conf.encode(), 0o644)

    bundle = BrokerBundle(
        out_dir=out,
        conf=out / "mosquitto.conf",
        ca_cert=out / "ca.crt",
        ca_key=out / "ca.key",
        broker_cert=out / "broker.crt",
        broker_key=out / "broker.key",
        web_cert=out / tls.WEB_CERT,
        web_key=out / tls.WEB_KEY,
        passwd=out / "passwd",
        acl=out / "acl",
        credentials_dir=creds_dir,
        accounts=accounts,
    )
    for user, password in accounts.items():
        # Keys as flash_device.sh reads them; tls_ca is where the CA is on the hub.
        creds = {
            "username": user,
            "password": password,
            "tls_ca": str(bundle.ca_cert),
            "port": tls_port,
        }
        head = f"# MQTT account {user} for store {cfg.store_id}: a secret, copy it, then delete.\n"
        _write(bundle.credentials(user), (head + yaml.safe_dump(creds)).encode(), 0o600)
    return bundle
