"""Tables of the web app: staff accounts and login sessions (executed by ``hub.store.db.open_db``).

Sessions live server-side so a logout, a password change or a disabled account ends them at
once; the cookie only carries a random token whose SHA-256 is stored here, so a copy of the
database does not hand out live sessions.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    staff_id      TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('salesperson','manager')),
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash   TEXT PRIMARY KEY,
    staff_id     TEXT NOT NULL REFERENCES staff(staff_id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_staff ON web_sessions(staff_id);
"""
