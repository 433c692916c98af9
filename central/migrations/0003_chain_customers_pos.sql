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

-- The chain's POS feed (issue 16 part 4): the tills' exports imported once at the office
-- (`storesense central pos import`, the formats of `storesense pos import`), keyed by the
-- till's store and invoice number; an invoice imported again with the same content is
-- skipped, with other content it is a conflict. Times: the till's wall clock.
CREATE TABLE pos_invoices (
    store_id text NOT NULL,
    invoice_no text NOT NULL,
    customer_id text NOT NULL,
    invoiced_at timestamp NOT NULL,
    country text NOT NULL,
    cancellation boolean NOT NULL,
    total numeric(14, 2) NOT NULL,
    content_hash text NOT NULL,
    source text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, invoice_no)
) PARTITION BY HASH (store_id);
CREATE INDEX pos_invoices_customer ON pos_invoices (customer_id);
CREATE TABLE pos_lines (
    store_id text NOT NULL,
    invoice_no text NOT NULL,
    line_no integer NOT NULL,
    stock_code text NOT NULL,
    description text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    PRIMARY KEY (store_id, invoice_no, line_no),
    FOREIGN KEY (store_id, invoice_no) REFERENCES pos_invoices ON DELETE CASCADE
) PARTITION BY HASH (store_id);
-- Partitioned by store, not by day like the ingest tables: an invoice is one store's till's
-- number, so (store_id, invoice_no) must stay a key the database enforces (a day partition's
-- key would have to include the day, and "imported once" would no longer be the database's
-- rule), and every read here is one store's invoice or one customer's history. 16 hash
-- partitions per table keep each index a sixteenth of the chain's (docs/scale.md: ~1.5 M lines
-- a day for 500 stores); a store's rows are in one partition. Kept as purchase history; an
-- erasure unlinks the owner rather than deleting the figures.
DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE pos_invoices_h%s PARTITION OF pos_invoices '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
        EXECUTE format('CREATE TABLE pos_lines_h%s PARTITION OF pos_lines '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;
-- Which store holds which chain customer under which loyalty id (a `chain_member` message
-- from that store): the stores their purchase history goes to. Erasure deletes the rows and
-- unlinks the customer's invoices (a random owner id, as the hub does: the figures stay).
CREATE TABLE chain_members (
    chain_ref text NOT NULL,
    store_id text NOT NULL,
    customer_id text NOT NULL,
    PRIMARY KEY (chain_ref, store_id)
);
CREATE INDEX chain_members_customer ON chain_members (customer_id);
