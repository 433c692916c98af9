-- Chain-wide customers (issue 16 part 3, docs/chain.md). The office relays sealed templates;
-- it holds no store's private key and cannot open them, and it knows a chain customer only by
-- the random reference the enrolling store made (chain_ref): their id and name are inside
-- the seal. Not partitioned: a chain customer lives as long as their consent, not a day.

-- Every store's X25519 public key (the stores seal templates for each other's).
CREATE TABLE store_keys (
    store_id text PRIMARY KEY,
    public_key text NOT NULL,          -- base64 of 32 bytes
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- A chain customer: enrolled at origin_store with the chain consent.
CREATE TABLE chain_customers (
    chain_ref text PRIMARY KEY,
    origin_store text NOT NULL,
    model text NOT NULL,
    revision double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Their templates sealed for each other store: ciphertext only.
CREATE TABLE chain_templates (
    chain_ref text NOT NULL REFERENCES chain_customers ON DELETE CASCADE,
    target_store text NOT NULL,
    origin_store text NOT NULL,
    model text NOT NULL,
    revision double precision NOT NULL,
    sealed bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_ref, target_store)
);

-- The record that an erasure was honoured everywhere: the reference, where and when it was
-- asked, which stores were ordered. A template for it arriving late is refused.
CREATE TABLE chain_tombstones (
    chain_ref text PRIMARY KEY,
    origin_store text NOT NULL,
    erased_at timestamptz NOT NULL,
    stores_ordered text[] NOT NULL
);

-- The office's outbox for the downlink (chain/v1/<store>/down/<kind>): written in the
-- transaction that decides it, published QoS 1 by `central run`, marked sent on PUBACK. The
-- central broker queues for a store whose bridge is away (persistent session).
CREATE TABLE downlink (
    down_id bigserial PRIMARY KEY,
    store_id text NOT NULL,
    kind text NOT NULL,
    msg_id text NOT NULL UNIQUE,
    chain_ref text,                    -- set for deliveries: an erasure deletes them
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX downlink_unsent ON downlink (down_id) WHERE sent_at IS NULL;
CREATE INDEX downlink_chain_ref ON downlink (chain_ref) WHERE chain_ref IS NOT NULL;
