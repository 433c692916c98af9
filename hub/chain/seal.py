"""Sealing a chain customer's templates for one other store (issue 16 part 3).

Each store has an X25519 key pair: the private key in ``<home>/secrets/chain.key`` (0600,
never in the database or a message), the public key sent to the central office
(``store_key``) and from there to every store (``key_directory``). The enrolling store seals
the customer's id, name and templates for each other store's public key: an ephemeral X25519 key,
HKDF-SHA256 over the shared secret, AES-256-GCM (``cryptography``, the same library as the
template encryption at rest). The chain reference, both stores and the embedding model are
bound as associated data, so a blob moved to another reference, store or model fails to open.
The central office only relays the blob; it holds no private key and cannot decrypt it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"storesense chain template v1"
NONCE_BYTES = 12
RAW = serialization.Encoding.Raw


class SealError(ValueError):
    """A sealed blob that does not open here (another key, tampered, or malformed)."""


@dataclass(frozen=True)
class SealedTemplate:
    vector: np.ndarray
    quality: float
    source: str


@dataclass(frozen=True)
class Opened:
    customer_id: str
    name: str
    consent_ref: str
    notice_version: str
    templates: list[SealedTemplate]


def load_or_create(path: Path) -> X25519PrivateKey:
    """The store's chain key (made on first use, 0600)."""
    if path.exists():
        raw = path.read_bytes()
        if len(raw) != 32:
            raise SealError(f"{path}: a chain key is 32 bytes, found {len(raw)}")
        return X25519PrivateKey.from_private_bytes(raw)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return key


def fingerprint(public_key_b64: str) -> str:
    """What a person compares between two stores: SHA-256 of the raw public key, 16 bytes in
    hex groups of four (``storesense chain peers`` prints it on both sides)."""
    digest = hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def public_b64(key: X25519PrivateKey) -> str:
    return base64.b64encode(
        key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    ).decode()


def _aad(chain_ref: str, origin: str, target: str, model: str) -> bytes:
    return "\x1f".join(["chain-template", chain_ref, origin, target, model]).encode()


def _key(shared: bytes, eph_pub: bytes, target_pub: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=eph_pub + target_pub, info=INFO).derive(shared)


def seal(
    target_public_b64: str, *, chain_ref: str, customer_id: str, origin: str, target: str,
    model: str,
    name: str, consent_ref: str, notice_version: str, templates: list[SealedTemplate],
) -> str:  # fmt: skip
    """The customer id, name and templates, sealed for ``target``'s key; base64."""
    target_pub = base64.b64decode(target_public_b64)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    key = _key(eph.exchange(X25519PublicKey.from_public_bytes(target_pub)), eph_pub, target_pub)
    plain = json.dumps({
        "customer_id": customer_id, "name": name, "consent_ref": consent_ref,
        "notice_version": notice_version,
        "templates": [
            {"v": base64.b64encode(np.asarray(t.vector, "<f4").tobytes()).decode(),
             "q": float(t.quality), "s": t.source}
            for t in templates
        ],
    }).encode()  # fmt: skip
    nonce = os.urandom(NONCE_BYTES)
    blob = (
        eph_pub + nonce + AESGCM(key).encrypt(nonce, plain, _aad(chain_ref, origin, target, model))
    )
    return base64.b64encode(blob).decode()


def open_sealed(
    own: X25519PrivateKey, sealed_b64: str, *, chain_ref: str, origin: str, target: str,
    model: str,
) -> Opened:  # fmt: skip
    """Open a blob sealed for this store; ``SealError`` if it does not open or is malformed."""
    try:
        blob = base64.b64decode(sealed_b64, validate=True)
        eph_pub, nonce, ct = blob[:32], blob[32 : 32 + NONCE_BYTES], blob[32 + NONCE_BYTES :]
        own_pub = own.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
        key = _key(own.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub, own_pub)
        plain = AESGCM(key).decrypt(nonce, ct, _aad(chain_ref, origin, target, model))
    except (InvalidTag, ValueError) as exc:
        raise SealError(
            f"chain template {chain_ref} from {origin!r} does not open here "
            f"(sealed for another key, or tampered): {type(exc).__name__}"
        ) from None
    try:
        data = json.loads(plain)
        templates = [
            SealedTemplate(np.frombuffer(base64.b64decode(t["v"]), "<f4").astype(np.float32),
                           float(t["q"]), str(t["s"]))
            for t in data["templates"]
        ]  # fmt: skip
        if not templates or any(t.vector.shape != (128,) for t in templates):
            raise ValueError("no template, or not 128 floats")
        return Opened(str(data["customer_id"]), str(data["name"]), str(data["consent_ref"]),
                      str(data["notice_version"]), templates)  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise SealError(f"chain template {chain_ref} opened but is malformed: {exc}") from None
