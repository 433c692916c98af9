"""Encryption at rest for face templates (AES-256-GCM from ``cryptography``).

A template is biometric data: the SQLite file alone (a backup, a stolen SD card) must not give
it away. The key lives in ``<home>/secrets/template.key`` (0600). The customer id is bound as
associated data, so a template row moved to another customer fails to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
FINGERPRINT_KEY = "template_key_fingerprint"  # meta row: which key the templates are under


class TemplateKeyError(RuntimeError):
    pass


def load_or_create_key(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise TemplateKeyError(f"{path}: template key must be 32 bytes, found {len(key)}")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class TemplateCipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        # Names the key without revealing it: lets a process tell that the key was rotated.
        self.fingerprint = hmac.new(key, b"storesense template key", hashlib.sha256).hexdigest()

    def encrypt_bytes(self, customer_id: str, plain: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, customer_id.encode())

    def decrypt_bytes(self, customer_id: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], customer_id.encode())
        except InvalidTag:
            raise TemplateKeyError(
                f"data of {customer_id!r} does not decrypt: wrong key or tampered row"
            ) from None

    def encrypt(self, customer_id: str, vector: np.ndarray) -> bytes:
        return self.encrypt_bytes(customer_id, np.asarray(vector, dtype="<f4").tobytes())

    def decrypt(self, customer_id: str, blob: bytes) -> np.ndarray:
        plain = self.decrypt_bytes(customer_id, blob)
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)
