"""Head-office users of the roll-up reports: roles, argon2id passwords, login sessions.

Two roles. ``chain`` sees every store; ``region`` sees the stores whose ``stores.region`` is
one of the user's regions (``office_user_regions``), so a region manager's totals are over
their stores only. Passwords are hashed with argon2id (``argon2-cffi``, the library the hub's
staff accounts use); the session cookie's token is stored only as its SHA-256, and every
session carries a CSRF token for the page's forms. Failed logins and every request for a
store the user may not see go to ``office_access_log`` and the log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storesense import ids

log = logging.getLogger(__name__)

Role = Literal["chain", "region"]
SESSION_S = 12 * 3600  # a working day; then log in again
MIN_PASSWORD, MAX_PASSWORD = 10, 256
_hasher = PasswordHasher()
# verified against when the user does not exist, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A user that cannot be made as asked (bad id, role, region or password)."""


@dataclass(frozen=True)
class OfficeUser:
    user_id: str
    name: str
    role: Role
    regions: tuple[str, ...]
    csrf_token: str = ""

    def scope(self) -> str:
        """What this user sees, in words (the page's header)."""
        if self.role == "chain":
            return "the whole chain"
        return "region " + ", ".join(self.regions)


def add_user(
    conn: psycopg.Connection, user_id: str, password: str, *, role: Role, name: str = "",
    regions: list[str] | tuple[str, ...] = (),
) -> None:  # fmt: skip
    """Create or replace a user (a new password, role and regions replace the old ones)."""
    try:
        ids.validate_ident(user_id, "user id")
    except ids.InvalidId as exc:
        raise UserError(str(exc)) from None
    if role not in ("chain", "region"):
        raise UserError(f"role must be chain or region, not {role!r}")
    if role == "region" and not regions:
        raise UserError("a region user needs at least one --region")
    if role == "chain" and regions:
        raise UserError("a chain user sees every store: give no --region")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    pw_hash = _hasher.hash(password)
    with conn.transaction():
        conn.execute(
            "INSERT INTO office_users(user_id, name, role, password_hash) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (user_id) DO UPDATE SET name=excluded.name, role=excluded.role, "
            "password_hash=excluded.password_hash, active=true",
            (user_id, name, role, pw_hash),
        )
        conn.execute("DELETE FROM office_user_regions WHERE user_id=%s", (user_id,))
        for region in dict.fromkeys(regions):
            conn.execute(
                "INSERT INTO office_user_regions(user_id, region) VALUES (%s,%s)",
                (user_id, region),
            )


def set_store(
    conn: psycopg.Connection, store_id: str, *, region: str | None, name: str | None
) -> None:
    """Name a store and put it in a region (a store is also made by its first message)."""
    try:
        ids.validate_ident(store_id, "store id")
    except ids.InvalidId as exc:
        raise UserError(str(exc)) from None
    with conn.transaction():
        conn.execute("INSERT INTO stores(store_id) VALUES (%s) ON CONFLICT DO NOTHING", (store_id,))
        if region is not None:
            conn.execute(
                "UPDATE stores SET region=%s WHERE store_id=%s", (region or None, store_id)
            )
        if name is not None:
            conn.execute("UPDATE stores SET name=%s WHERE store_id=%s", (name, store_id))


def audit(conn: psycopg.Connection, user_id: str, action: str, detail: str) -> None:
    log.warning("office access: %s %s (%s)", user_id, action, detail)
    with conn.transaction():
        conn.execute(
            "INSERT INTO office_access_log(user_id, action, detail) VALUES (%s,%s,%s)",
            (user_id[:64], action, detail[:500]),
        )


def _load(conn: psycopg.Connection, user_id: str, csrf: str = "") -> OfficeUser | None:
    row = conn.execute(
        "SELECT user_id, name, role FROM office_users WHERE user_id=%s AND active", (user_id,)
    ).fetchone()
    if row is None:
        return None
    regions = conn.execute(
        "SELECT region FROM office_user_regions WHERE user_id=%s ORDER BY region", (user_id,)
    ).fetchall()
    return OfficeUser(row[0], row[1], row[2], tuple(r[0] for r in regions), csrf)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(conn: psycopg.Connection, user_id: str, password: str) -> str | None:
    """A new session token for the right password, else None (logged, same time either way)."""
    row = conn.execute(
        "SELECT password_hash FROM office_users WHERE user_id=%s AND active", (user_id[:64],)
    ).fetchone()
    try:
        _hasher.verify(row[0] if row else _DUMMY_HASH, password[:MAX_PASSWORD])
        ok = row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        audit(conn, user_id, "login_failed", "wrong user or password")
        return None
    token = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SESSION_S)
    with conn.transaction():
        conn.execute("DELETE FROM office_sessions WHERE expires_at < now()")
        conn.execute(
            "INSERT INTO office_sessions(token_hash, user_id, csrf_token, expires_at) "
            "VALUES (%s,%s,%s,%s)",
            (_digest(token), user_id, secrets.token_urlsafe(24), expires),
        )
    return token


def session_user(conn: psycopg.Connection, token: str | None) -> OfficeUser | None:
    """The user a live session token belongs to (None: no, expired or unknown token)."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        "SELECT user_id, csrf_token FROM office_sessions "
        "WHERE token_hash=%s AND expires_at > now()",
        (_digest(token),),
    ).fetchone()
    return _load(conn, row[0], row[1]) if row else None


def logout(conn: psycopg.Connection, token: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM office_sessions WHERE token_hash=%s", (_digest(token),))


def visible_stores(conn: psycopg.Connection, user: OfficeUser) -> list[tuple[str, str, str]]:
    """(store id, name, region) of every store ``user`` may see, by region then id."""
    if user.role == "chain":
        rows = conn.execute(
            "SELECT store_id, name, coalesce(region, '') FROM stores ORDER BY region, store_id"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT store_id, name, region FROM stores WHERE region = ANY(%s) "
            "ORDER BY region, store_id",
            (list(user.regions),),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]
