-- The central office's schema, version 1 (central/db.py runs each file once, in order, in one
-- transaction with its schema_migrations row). Never edit a released file: add the next one.
--
-- Tables that grow with traffic are partitioned by day (RANGE on "day", one partition a day,
-- created ahead by central/db.py ensure_partitions): retention drops a whole day at once and a
-- day's queries touch one partition. Every key starts with store_id, so a store's rows sit
-- together in each day's index. Not by store as well: 500 stores x days would be far more
-- partitions than the planner handles well (docs/scale.md).
--
-- "day" is the UTC date of the fact's own time (an alert's arrival, a claim's moment, an
-- interval's start), taken from the payload: a re-delivered message lands in the same
-- partition, so the keys below (which include day) catch it.

CREATE TABLE stores (
    store_id      text PRIMARY KEY,
    name          text NOT NULL DEFAULT '',
    region        text,                        -- region managers see their stores (roll-ups)
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_health_at timestamptz
);

-- Every applied message by id: the exactly-once record. A message is applied in the same
-- transaction as its row here, and a second delivery finds the row and changes nothing.
CREATE TABLE ingested (
    day         date NOT NULL,
    store_id    text NOT NULL,
    msg_id      char(32) NOT NULL,
    kind        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, day, msg_id)
) PARTITION BY RANGE (day);

-- An alert's latest state in its store (highest seq wins); no customer id or name: chain-wide
-- customers get their own consented table (customer_links, later) keyed by the store's alert.
CREATE TABLE alert_summaries (
    day          date NOT NULL,                -- arrival day
    store_id     text NOT NULL REFERENCES stores,
    alert_id     text NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 1),
    state        text NOT NULL CHECK (state IN ('open','claimed','done','expired','rejected')),
    camera_id    text NOT NULL,
    arrived_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    claimed_by   text,
    claimed_at   timestamptz,
    tier         text,
    new_customer boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, day, alert_id)
) PARTITION BY RANGE (day);

-- Who took which customer when (a hand-over is a second claim of the same alert).
CREATE TABLE claims (
    day        date NOT NULL,                  -- claim day
    store_id   text NOT NULL REFERENCES stores,
    alert_id   text NOT NULL,
    staff_id   text NOT NULL,
    camera_id  text NOT NULL,
    arrived_at timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (store_id, day, alert_id, claimed_at, staff_id)
) PARTITION BY RANGE (day);

-- Zone visits and dwell per zone per interval (counts only, never people). The roll-up
-- reports (later) read these per store and day; a correction (revision > 0) replaces a row.
CREATE TABLE zone_intervals (
    day            date NOT NULL,              -- interval start day
    store_id       text NOT NULL REFERENCES stores,
    zone           text NOT NULL,
    interval_start timestamptz NOT NULL,
    interval_s     integer NOT NULL CHECK (interval_s > 0),
    visits         integer NOT NULL CHECK (visits >= 0),
    dwell_s        double precision NOT NULL CHECK (dwell_s >= 0),
    revision       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, day, zone, interval_start, interval_s)
) PARTITION BY RANGE (day);

CREATE TABLE store_health (
    day           date NOT NULL,
    store_id      text NOT NULL REFERENCES stores,
    msg_id        char(32) NOT NULL,
    at            timestamptz NOT NULL,
    cameras       jsonb NOT NULL,
    outbox_unsent integer NOT NULL,
    rejected      jsonb NOT NULL,
    errors        jsonb NOT NULL,
    PRIMARY KEY (store_id, day, msg_id)
) PARTITION BY RANGE (day);

-- Refused messages, counted per day, store (as the topic says; '' when the topic has none)
-- and reason, with the last one's detail: what an operator looks at when a store goes quiet.
CREATE TABLE rejections (
    day         date NOT NULL,
    store_id    text NOT NULL,
    reason      text NOT NULL,
    count       bigint NOT NULL,
    last_detail text NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (day, store_id, reason)
);
