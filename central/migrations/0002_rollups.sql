-- Version 2: the stores' daily summaries (chain item daily_summaries) and head-office users
-- for the roll-up reports (central/rollups.py, central/web.py; docs/chain.md "Roll-ups").

-- One row per store and store-local day: the store report's figures for that day, the top
-- advice and a small heatmap PNG. Partitioned by that day like the rest (0001); a later
-- revision of a day replaces its row (highest revision wins).
CREATE TABLE daily_summaries (
    day            date NOT NULL,              -- the store-local day summed up
    store_id       text NOT NULL REFERENCES stores,
    revision       integer NOT NULL DEFAULT 0 CHECK (revision >= 0),
    observed_s     double precision NOT NULL CHECK (observed_s >= 0),
    footfall       integer CHECK (footfall >= 0),          -- NULL: no entrance zone
    people_seen    integer NOT NULL CHECK (people_seen >= 0),
    visits         integer NOT NULL CHECK (visits >= 0),
    selling_visits integer NOT NULL CHECK (selling_visits >= 0),
    sales          numeric(14, 2),                          -- NULL: no POS data that day
    receipts       integer CHECK (receipts >= 0),
    currency       char(3) NOT NULL,
    conversion     numeric(14, 2),                          -- the store's own figure that day
    provisional    boolean NOT NULL DEFAULT false,
    advice         jsonb NOT NULL DEFAULT '[]',
    heatmap_png    bytea,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, day)
) PARTITION BY RANGE (day);

-- Head-office users of the roll-up page. role 'chain' sees every store; 'region' the stores
-- whose stores.region is one of theirs (office_user_regions). argon2id hashes, as the hub's
-- staff accounts.
CREATE TABLE office_users (
    user_id       text PRIMARY KEY,
    name          text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('chain', 'region')),
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE office_user_regions (
    user_id text NOT NULL REFERENCES office_users ON DELETE CASCADE,
    region  text NOT NULL,
    PRIMARY KEY (user_id, region)
);

-- Login sessions: only the SHA-256 of the cookie's token is stored.
CREATE TABLE office_sessions (
    token_hash char(64) PRIMARY KEY,
    user_id    text NOT NULL REFERENCES office_users ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Who asked for what they may not see, and failed logins: the audit an operator reads.
CREATE TABLE office_access_log (
    at      timestamptz NOT NULL DEFAULT now(),
    user_id text NOT NULL,
    action  text NOT NULL,                      -- 'denied_store', 'login_failed'
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX office_access_log_at ON office_access_log (at);
