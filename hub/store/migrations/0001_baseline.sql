-- 0001 baseline: the hub database as release 1 defined it (schema_version 1), plus the tables
-- later releases added with CREATE TABLE IF NOT EXISTS and no version bump. Every statement
-- is IF NOT EXISTS: adopting a file an older release wrote (no schema_migrations table yet)
-- runs this again to fill in what that release did not have. Changes to a table defined here
-- go into a new numbered migration, never into this file.
-- Owning room of each table: hub/store/tables.py.

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS customers (
    customer_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    consent_ref  TEXT NOT NULL CHECK (length(trim(consent_ref)) > 0),
    consent_at   REAL NOT NULL,
    created_at   REAL NOT NULL
);

-- Templates only, encrypted (AES-GCM, customer id as associated data). No images.
CREATE TABLE IF NOT EXISTS templates (
    template_id  INTEGER PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(customer_id) ON DELETE CASCADE,
    vector_enc   BLOB NOT NULL,
    quality      REAL NOT NULL,
    source       TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_customer ON templates(customer_id);

CREATE TABLE IF NOT EXISTS visits (
    visit_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    started_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    cameras      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_customer ON visits(customer_id, last_seen_at);

-- Release 1's claim state machine; 0002 rebuilds it (the 'rejected' state, three columns).
CREATE TABLE IF NOT EXISTS alerts (
    alert_id       TEXT PRIMARY KEY,
    visit_id       TEXT NOT NULL REFERENCES visits(visit_id),
    customer_id    TEXT NOT NULL,
    camera_id      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open','claimed','done','expired')),
    seq            INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    claimed_by     TEXT,
    claimed_at     REAL,
    closed_at      REAL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, expires_at);

-- The evidence behind each alert (which track, how close), for a false-match report.
CREATE TABLE IF NOT EXISTS alert_matches (
    alert_id      TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
    track_id      TEXT,
    best_distance REAL
);

-- Messages to publish once the transaction that produced them has committed.
CREATE TABLE IF NOT EXISTS outbox (
    outbox_id  INTEGER PRIMARY KEY,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at    REAL
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(sent_at) WHERE sent_at IS NULL;

-- QoS 1 is at-least-once: a message id seen here has had its effect already.
CREATE TABLE IF NOT EXISTS seen_messages (
    msg_id      TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS unknown_visitors (
    track_id    TEXT PRIMARY KEY,
    camera_id   TEXT NOT NULL,
    seen_at     REAL NOT NULL,
    best_distance REAL
);

-- Appended only through hub.privacy.audit; 0003 makes it a keyed chain.
CREATE TABLE IF NOT EXISTS audit (
    audit_id    INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    customer_id TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_customer ON audit(customer_id);

-- Last heartbeat of every camera; ``state`` is 'up', 'offline' (it said goodbye, or its last
-- will fired) or 'down' (silent for too long).
CREATE TABLE IF NOT EXISTS nodes (
    camera_id      TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    state          TEXT NOT NULL,
    fps            REAL NOT NULL,
    frames         INTEGER NOT NULL,
    queue_depth    INTEGER NOT NULL,
    reconnects     INTEGER NOT NULL,
    rejections     TEXT NOT NULL,
    last_heartbeat_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);

-- ===== shop (hub/shop)

CREATE TABLE IF NOT EXISTS pos_products (
    stock_code  TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    category    TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pos_products_category ON pos_products(category);

-- One row per till receipt. ``total`` is signed: cancellations are negative.
CREATE TABLE IF NOT EXISTS pos_invoices (
    invoice_no   TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    invoiced_at  TEXT NOT NULL,
    day          TEXT NOT NULL,
    country      TEXT NOT NULL DEFAULT '',
    cancellation INTEGER NOT NULL CHECK (cancellation IN (0, 1)),
    total        REAL NOT NULL,
    n_lines      INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    source       TEXT NOT NULL,
    imported_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pos_invoices_customer ON pos_invoices(customer_id, invoiced_at);
CREATE INDEX IF NOT EXISTS pos_invoices_day ON pos_invoices(day);

CREATE TABLE IF NOT EXISTS pos_lines (
    invoice_no  TEXT NOT NULL REFERENCES pos_invoices(invoice_no) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL,
    stock_code  TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity <> 0),
    unit_price  REAL NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (invoice_no, line_no)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pos_lines_code ON pos_lines(stock_code);

-- Month and day only: enough for the birthday bonus, less personal data than a birth date.
CREATE TABLE IF NOT EXISTS pos_birthdays (
    customer_id TEXT PRIMARY KEY,
    month       INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
    day         INTEGER NOT NULL CHECK (day BETWEEN 1 AND 31)
);

-- POS webhook idempotency: a key seen here returns its first result again.
CREATE TABLE IF NOT EXISTS pos_webhook_keys (
    idem_key     TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    result       TEXT NOT NULL,
    received_at  REAL NOT NULL
);

-- Precomputed suggestions (hub/shop/suggest.py); customer_id '*' holds the popularity fallback.
CREATE TABLE IF NOT EXISTS suggestions (
    customer_id TEXT NOT NULL,
    list        TEXT NOT NULL CHECK (list IN ('usual', 'new')),
    rank        INTEGER NOT NULL,
    stock_code  TEXT NOT NULL,
    score       REAL NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (customer_id, list, rank)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suggestion_builds (
    build_id  INTEGER PRIMARY KEY,
    built_at  REAL NOT NULL,
    cutoff    TEXT NOT NULL,
    customers INTEGER NOT NULL,
    items     INTEGER NOT NULL,
    seconds   REAL NOT NULL,
    detail    TEXT NOT NULL
);

-- ===== floor (hub/floor)

CREATE TABLE IF NOT EXISTS floor_grid (
    day      TEXT NOT NULL,              -- local date of the slot, YYYY-MM-DD
    cell_mm  INTEGER NOT NULL,           -- cell size in mm: a config change starts a new grid
    ix       INTEGER NOT NULL,
    iy       INTEGER NOT NULL,
    person_s REAL NOT NULL,
    PRIMARY KEY (day, cell_mm, ix, iy)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS floor_days (
    day        TEXT PRIMARY KEY,
    observed_s REAL NOT NULL             -- seconds with at least one camera frame
);
CREATE TABLE IF NOT EXISTS floor_visits (
    person_key TEXT NOT NULL,
    zone       TEXT NOT NULL,
    day        TEXT NOT NULL,
    enter_t    REAL NOT NULL,
    exit_t     REAL NOT NULL,
    PRIMARY KEY (person_key, zone, enter_t)
);
CREATE INDEX IF NOT EXISTS floor_visits_day ON floor_visits(day, zone);
CREATE TABLE IF NOT EXISTS floor_runs (
    camera_id TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    received  INTEGER NOT NULL,
    max_seq   INTEGER NOT NULL,
    first_at  REAL NOT NULL,
    last_at   REAL NOT NULL,
    PRIMARY KEY (camera_id, run_id)
);
-- Crash recovery (hub/floor/ingest.py): the open tracks' zone state, saved every snapshot_s.
CREATE TABLE IF NOT EXISTS floor_state (
    name     TEXT PRIMARY KEY,
    saved_at REAL NOT NULL,
    body     TEXT NOT NULL                -- versioned JSON of plain data
);
-- Slots still open for late data, rewritten with every change in the transaction that writes
-- their grid delta, so after a crash a late frame is fused against what was really written.
CREATE TABLE IF NOT EXISTS floor_slots (
    slot  INTEGER PRIMARY KEY,            -- floor(t / sample_s)
    grid  TEXT NOT NULL,                  -- grid geometry; another geometry's slots are dropped
    body  TEXT NOT NULL                   -- JSON: the slot's frames and the cells it wrote
);

-- ===== web (staff accounts, sessions)

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
