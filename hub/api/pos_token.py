"""The POS webhook's bearer token: a hub secret, checked by the hub (``hub.api``).

A 256-bit random secret in ``HOME/secrets/pos_webhook.token`` (``storesense web pos-token``
creates or rotates it). The web process only forwards the till's ``Authorization`` header;
the hub reads the file at each request, so a rotation needs no restart.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "pos_webhook.token"


def token_path(home: Path) -> Path:
    return home / "secrets" / TOKEN_FILE


def ensure_token(home: Path, *, rotate: bool = False) -> str:
    """The webhook token, created (0600) on first use or when rotating."""
    path = token_path(home)
    if path.exists() and not rotate:
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def configured_token(home: Path) -> str | None:
    path = token_path(home)
    return path.read_text().strip() if path.exists() else None


def matches(expected: str, authorization: str | None) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, sent = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.encode(), expected.encode())
