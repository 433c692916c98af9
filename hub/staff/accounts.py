"""Staff accounts and login sessions: argon2id password hashes, server-side session rows.

Called by the hub's worker (``hub.api``, for the web process's login/session requests) and by
the CLI (``storesense staff add``), each with its own ``sqlite3`` connection. Moved here from
the web app: the web process no longer opens the hub database at all.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.privacy import audit
from hub.store import db
from storesense import ids
from storesense.rpc import MAX_PASSWORD

Role = Literal["salesperson", "manager"]
ROLES: tuple[Role, ...] = ("salesperson", "manager")
STAFF_ID_RE = ids.IDENT_RE  # storesense/ids.py Ident: staff ids are MQTT topic levels
MIN_PASSWORD = 8
SESSION_TTL_S = 12 * 3600.0  # one shift; the phone logs in again next morning
TOUCH_EVERY_S = 30.0  # how stale a session's last_used_at may get before a use rewrites it

# argon2-cffi's RFC 9106 "low memory" profile (argon2id, t=3, 64 MiB): about 50–100 ms on a
# Pi-class CPU, which bounds password guessing without making a shift-start login slow.
_hasher = PasswordHasher()
# Verifying against this when the id is unknown keeps the answer time the same as for a
# wrong password, so response timing does not tell which staff ids exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A refusal the operator can act on (bad id, weak password, unknown role)."""


@dataclass(frozen=True)
class Staff:
    staff_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class Session:
    staff: Staff
    csrf_token: str
    expires_at: float


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"password must be {MIN_PASSWORD}–{MAX_PASSWORD} characters")


def add_staff(
    conn: sqlite3.Connection,
    staff_id: str,
    name: str,
    role: str,
    password: str,
    *,
    replace: bool = False,
    now: float | None = None,
    actor: str = "cli",
) -> Staff:
    """Create (or with ``replace`` update) an account; a replaced password ends its sessions."""
    if not STAFF_ID_RE.match(staff_id):
        raise AccountError(
            f"staff id {staff_id!r}: letters, digits, '-' and '_' only, at most 64 characters"
        )
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip():
        raise AccountError("name must not be empty")
    _check_password(password)
    now = time.time() if now is None else now
    pw_hash = _hasher.hash(password)
    with db.write(conn):
        exists = conn.execute("SELECT 1 FROM staff WHERE staff_id=?", (staff_id,)).fetchone()
        if exists and not replace:
            raise AccountError(f"staff {staff_id!r} already exists (use --replace to update)")
        conn.execute(
            "INSERT INTO staff(staff_id, name, role, password_hash, active, created_at, "
            "updated_at) VALUES (?,?,?,?,1,?,?) ON CONFLICT(staff_id) DO UPDATE SET "
            "name=excluded.name, role=excluded.role, password_hash=excluded.password_hash, "
            "active=1, updated_at=excluded.updated_at",
            (staff_id, name.strip(), role, pw_hash, now, now),
        )
        conn.execute("DELETE FROM web_sessions WHERE staff_id=?", (staff_id,))
        audit.append(
            conn, at=now, actor=actor, action="staff_update" if exists else "staff_add",
            detail=f"{staff_id} as {role}",
        )  # fmt: skip
    return Staff(staff_id, name.strip(), role)


@dataclass(frozen=True)
class Credentials:
    """What a password is checked against: read on the hub's worker (the database's thread),
    checked anywhere (``check_password`` touches no database), so the ~0.1 s of argon2 can
    run on ``hub.staff.verifier``'s threads instead of in front of every claim and alert."""

    staff: Staff | None  # None: no such account (checked against a dummy hash all the same)
    password_hash: str
    active: bool


def load_credentials(conn: sqlite3.Connection, staff_id: str, password: str) -> Credentials:
    row = None
    if STAFF_ID_RE.match(staff_id) and len(password) <= MAX_PASSWORD:
        row = conn.execute(
            "SELECT staff_id, name, role, password_hash, active FROM staff WHERE staff_id=?",
            (staff_id,),
        ).fetchone()
    if row is None:
        return Credentials(None, _DUMMY_HASH, False)
    staff = Staff(row["staff_id"], row["name"], row["role"])
    return Credentials(staff, row["password_hash"], bool(row["active"]))


def check_password(cred: Credentials, password: str) -> Staff | None:
    """The account if the password is right and the account active; None otherwise.
    Thread-safe and without the database (argon2-cffi releases the GIL while hashing)."""
    try:
        _hasher.verify(cred.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return cred.staff if cred.active else None


def still_valid(conn: sqlite3.Connection, cred: Credentials) -> bool:
    """After a check made off the worker: the account is still active with the same password
    (a disable or a password reset while argon2 ran wins)."""
    if cred.staff is None:
        return False
    row = conn.execute(
        "SELECT password_hash, active FROM staff WHERE staff_id=?", (cred.staff.staff_id,)
    ).fetchone()
    return row is not None and bool(row["active"]) and row["password_hash"] == cred.password_hash


def authenticate(conn: sqlite3.Connection, staff_id: str, password: str) -> Staff | None:
    """The account if the password is right and the account active; None otherwise."""
    return check_password(load_credentials(conn, staff_id, password), password)


def token_hash(token: str) -> str:
    """What is stored for a cookie token: a copy of the database hands out no live session."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(
    conn: sqlite3.Connection,
    staff: Staff,
    now: float | None = None,
    *,
    idle_s: float | None = None,
) -> tuple[str, Session]:
    """A new session: (cookie token, session with its CSRF token). Old expired rows go."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with db.write(conn):
        conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
        conn.execute(
            "INSERT INTO web_sessions(token_hash, staff_id, csrf_token, created_at, expires_at, "
            "last_used_at) VALUES (?,?,?,?,?,?)",
            (token_hash(token), staff.staff_id, csrf, now, now + SESSION_TTL_S, now),
        )
    return token, Session(staff, csrf, _ends_at(now + SESSION_TTL_S, now, idle_s))


def _ends_at(expires_at: float, last_used: float, idle_s: float | None) -> float:
    """When the session ends unless used again: its expiry or its idle deadline, whichever
    comes first. The web process closes the session's WebSockets at this instant."""
    return expires_at if idle_s is None else min(expires_at, last_used + idle_s)


def get_session(
    conn: sqlite3.Connection,
    token: str,
    now: float | None = None,
    *,
    idle_s: float | None = None,
    touch: bool = False,
) -> Session | None:
    """The live session behind a cookie token, or None (unknown, expired, idle longer than
    ``idle_s``, account disabled). ``touch``: this is the phone using it (a request the
    salesperson made), which moves the idle deadline; the web's own re-checks of an open
    socket do not touch, so a phone left in a pocket still times out."""
    if not token or len(token) > 128:
        return None
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT s.csrf_token, s.expires_at, COALESCE(s.last_used_at, s.created_at) AS used, "
        "t.staff_id, t.name, t.role FROM web_sessions s JOIN staff t USING (staff_id) "
        "WHERE s.token_hash=? AND s.expires_at > ? AND t.active=1",
        (token_hash(token), now),
    ).fetchone()
    if row is None:
        return None
    used = float(row["used"])
    if idle_s is not None and used + idle_s <= now:
        return None
    if touch and now - used >= TOUCH_EVERY_S:
        # not a write per request: the idle deadline moves in steps of TOUCH_EVERY_S
        with db.write(conn):
            conn.execute(
                "UPDATE web_sessions SET last_used_at=? WHERE token_hash=?",
                (now, token_hash(token)),
            )
        used = now
    staff = Staff(row["staff_id"], row["name"], row["role"])
    return Session(staff, row["csrf_token"], _ends_at(row["expires_at"], used, idle_s))


def end_session(conn: sqlite3.Connection, token: str) -> None:
    with db.write(conn):
        conn.execute("DELETE FROM web_sessions WHERE token_hash=?", (token_hash(token),))


def staff_names(conn: sqlite3.Connection) -> dict[str, str]:
    """staff id → display name, for 'taken by Alice' instead of 'taken by alice-01'."""
    return {r[0]: r[1] for r in conn.execute("SELECT staff_id, name FROM staff")}


# -- administration (the manager page and `storesense staff list|disable|enable`) ---------------
def list_staff(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Every account, active or not, by id: what a manager needs to see (never a hash)."""
    return [
        {
            "staff_id": r[0],
            "name": r[1],
            "role": r[2],
            "active": bool(r[3]),
            "created_at": r[4],
            "updated_at": r[5],
        }
        for r in conn.execute(
            "SELECT staff_id, name, role, active, created_at, updated_at FROM staff "
            "ORDER BY staff_id"
        )
    ]


def set_active(
    conn: sqlite3.Connection,
    staff_id: str,
    active: bool,
    *,
    actor: str,
    now: float | None = None,
    on_disable: Callable[[sqlite3.Connection, str], object] | None = None,
) -> bool:
    """Disable (or enable again) an account; disabling ends its sessions at once, so its
    phones drop back to the login. False for an unknown id; an unchanged state is a no-op.

    ``on_disable`` runs inside the same transaction: the caller wires in what other rooms hold
    for the account (its phones' push subscriptions, so a disabled account's lock screen gets no
    more customer names) without this room importing them."""
    now = time.time() if now is None else now
    with db.write(conn):
        row = conn.execute("SELECT active FROM staff WHERE staff_id=?", (staff_id,)).fetchone()
        if row is None:
            return False
        if bool(row[0]) != active:
            conn.execute(
                "UPDATE staff SET active=?, updated_at=? WHERE staff_id=?",
                (int(active), now, staff_id),
            )
            audit.append(
                conn, at=now, actor=actor, action="staff_enable" if active else "staff_disable",
                detail=staff_id,
            )  # fmt: skip
        if not active:
            conn.execute("DELETE FROM web_sessions WHERE staff_id=?", (staff_id,))
            if on_disable is not None:
                on_disable(conn, staff_id)
    return True


def reset_password(
    conn: sqlite3.Connection, staff_id: str, password: str, *, actor: str, now: float | None = None
) -> bool:
    """A manager sets a new password for a forgotten one; every session of the account ends
    (a phone left logged in with the old password is logged out). False for an unknown id."""
    _check_password(password)
    now = time.time() if now is None else now
    pw_hash = _hasher.hash(password)
    with db.write(conn):
        done = conn.execute(
            "UPDATE staff SET password_hash=?, updated_at=? WHERE staff_id=?",
            (pw_hash, now, staff_id),
        ).rowcount
        if done:
            conn.execute("DELETE FROM web_sessions WHERE staff_id=?", (staff_id,))
            audit.append(conn, at=now, actor=actor, action="staff_password_reset", detail=staff_id)
    return bool(done)
