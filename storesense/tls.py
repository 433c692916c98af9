"""The store CA and the certificates it issues (broker, web app), with ``cryptography`` only.

One CA per store signs every server certificate the store's devices and phones meet: the
broker's (``storesense broker-config``) and the web app's (``broker-config``, ``storesense web
cert``, or a bare ``storesense web run`` on first start). A phone installs that CA once (the
onboarding page) and then trusts the web app whatever its certificate rotates to; a lone
self-signed leaf would have to be trusted again at every renewal, and iOS/Android make that
hard on purpose.

In the contract (``storesense/``) because both the composition root (the CLI, broker-config)
and the web process (``hub.web``, which may import only itself and the contract) issue
certificates. No openssl subprocess: the files are written 0600 (keys) / 0644 (certificates)
through a temporary file and a rename.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397  # Apple refuses TLS server certificates valid for longer than 398 days
RENEW_BEFORE_DAYS = 30  # a web run re-issues its certificate this long before it expires
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
WEB_CERT = "web.crt"
WEB_KEY = "web.key"


class TlsError(RuntimeError):
    """A certificate problem an installer can act on (unreadable CA, a key that does not fit)."""


@dataclass(frozen=True)
class Ca:
    """A loaded store CA: its certificate and the key that signs leaves."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path


@dataclass(frozen=True)
class Leaf:
    cert_path: Path
    key_path: Path


def home_tls_dir(home: Path) -> Path:
    """Where a home keeps its store CA and the web certificate a bare ``web run`` issued."""
    return home / "tls"


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, with ``mode`` even if ``path`` existed: a reader
    (the broker re-reading on SIGHUP, uvicorn starting) never sees half a file, and a key
    never stays world-readable because an older file at that path was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage with only ``allowed`` set: the constructor wants all nine flags spelled out."""
    flags = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{f: f in allowed for f in flags})


def subject_alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return names


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted: Mosquitto and uvicorn start unattended and cannot prompt for a passphrase.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(store_id: str) -> tuple[bytes, bytes]:
    """A new store CA (EC P-256, ~10 years, may sign only leaves): (cert PEM, key PEM)."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Storesense"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Storesense store {store_id} CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def ca_from_pem(cert_pem: bytes, key_pem: bytes, cert_path: Path) -> Ca:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise TlsError(
            f"the store CA at {cert_path} is not a PEM certificate and key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise TlsError(f"the key next to {cert_path} is not the key of that certificate")
    return Ca(cert, key, cert_path)


def load_ca(ca_dir: Path) -> Ca:
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    try:
        return ca_from_pem(cert_path.read_bytes(), key_path.read_bytes(), cert_path)
    except OSError as exc:
        raise TlsError(f"cannot load the store CA from {ca_dir}: {exc.strerror}") from None


def ensure_ca(ca_dir: Path, store_id: str) -> tuple[Ca, bool]:
    """The store CA in ``ca_dir``, created if there is none yet; (CA, created)."""
    if (ca_dir / CA_CERT).exists() or (ca_dir / CA_KEY).exists():
        return load_ca(ca_dir), False
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = make_ca(store_id)
    write_private(ca_dir / CA_KEY, key, 0o600)
    write_private(ca_dir / CA_CERT, cert, 0o644)
    return load_ca(ca_dir), True


def issue_server_cert(ca: Ca, hosts: list[str], *, days: int = LEAF_DAYS) -> tuple[bytes, bytes]:
    """A server-only certificate for ``hosts`` (first one is the CN): (cert PEM, key PEM)."""
    if not hosts:
        raise TlsError("a server certificate needs at least one host name or IP address")
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature"), critical=True)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def write_server_cert(ca: Ca, hosts: list[str], cert_path: Path, key_path: Path) -> Leaf:
    cert, key = issue_server_cert(ca, hosts)
    write_private(key_path, key, 0o600)
    write_private(cert_path, cert, 0o644)
    return Leaf(cert_path, key_path)


def default_web_hosts(extra: list[str] | None = None) -> list[str]:
    """The names a phone may use for the hub: configured ones first, then this machine's host
    name (and its ``.local`` mDNS name), its non-loopback IPv4 addresses, and loopback."""
    hosts = list(extra or [])
    name = socket.gethostname()
    hosts += [name, f"{name}.local"] if name and "." not in name else [name]
    try:
        for info in socket.getaddrinfo(name, None, socket.AF_INET):
            hosts.append(str(info[4][0]))
    except OSError:
        pass
    hosts += ["localhost", "127.0.0.1"]
    return [h for h in dict.fromkeys(hosts) if h]


def cert_hosts(cert_path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*dns, *ips]


def _still_good(ca: Ca, cert_path: Path, hosts: list[str]) -> bool:
    """Issued by this CA, covering every wanted host, not within a month of expiry."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
    except Exception:  # any doubt (unreadable, foreign issuer, bad signature): re-issue
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return left > dt.timedelta(days=RENEW_BEFORE_DAYS) and set(hosts) <= set(cert_hosts(cert_path))


def ensure_web_cert(home: Path, store_id: str, hosts: list[str]) -> tuple[Leaf, Path, list[str]]:
    """The web certificate of a bare ``web run``: issued from the home's store CA (created if
    absent) on first start, re-issued when the hosts change or expiry nears.

    Returns (leaf, CA certificate path, what was done: lines for the start-up log).
    """
    tls_dir = home_tls_dir(home)
    ca, created = ensure_ca(tls_dir, store_id)
    done = [f"created the store CA {ca.cert_path}"] if created else []
    cert_path, key_path = tls_dir / WEB_CERT, tls_dir / WEB_KEY
    if key_path.exists() and _still_good(ca, cert_path, hosts):
        return Leaf(cert_path, key_path), ca.cert_path, done
    leaf = write_server_cert(ca, hosts, cert_path, key_path)
    done.append(f"issued the web certificate {cert_path} for {', '.join(hosts)}")
    return leaf, ca.cert_path, done
