-- Chain-wide customers (issue 16 part 3, docs/chain.md). The separate chain consent is a
-- consent item of its own: the faces room records it on the customer and in the consent
-- history (NULL / 0: the customer stays local to this store).
ALTER TABLE customers ADD COLUMN chain_consent_at REAL;
ALTER TABLE consent_records ADD COLUMN chain_consent INTEGER NOT NULL DEFAULT 0;

-- The chain room's tables. The other stores' public keys, pinned when first seen in the
-- central office's key directory: a later directory with another key for a known store does
-- not replace it (an office that could swap keys could have templates sealed for itself); the
-- new key waits in ``pending_key`` until a person compares its fingerprint with the store's
-- own and accepts it (``storesense chain peers --accept``, audited).
CREATE TABLE chain_peers (
    store_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,  -- X25519, base64
    updated_at REAL NOT NULL,
    pending_key TEXT,          -- a different key the office sent since, not used
    pending_since REAL,
    -- 0: gone from the office's last directory (nothing is sealed for it), its key still
    -- pinned: a store dropped and listed again with another key is held like any change
    listed INTEGER NOT NULL DEFAULT 1
);
-- Chain customers here: enrolled here (origin = this store) or received from their store.
-- ``chain_ref``: the random reference the chain knows them by (the enrolling store made it;
-- their id travels only sealed). Erasure deletes this row: the reference then leads nobody.
-- ``revision``: the chain consent time at the origin (a re-enrolment is a new revision).
CREATE TABLE chain_customers (
    customer_id TEXT PRIMARY KEY,
    chain_ref TEXT NOT NULL UNIQUE,
    origin_store TEXT NOT NULL,
    revision REAL NOT NULL,
    received_at REAL NOT NULL
);
-- Which revision of a local chain customer was sealed for which other store (the feed seals
-- each once per peer: a store that joins later gets the customers enrolled before it).
CREATE TABLE chain_sealed (
    customer_id TEXT NOT NULL,
    target_store TEXT NOT NULL,
    revision REAL NOT NULL,
    sealed_at REAL NOT NULL,
    PRIMARY KEY (customer_id, target_store)
);
-- An erasure of a chain customer here, waiting for the feed to send it up (same transaction
-- as the erasure; the row goes once the request is in the outbox). Only the reference: the
-- erasure already deleted what linked it to the customer.
CREATE TABLE chain_erasures (
    chain_ref TEXT PRIMARY KEY,
    erased_at REAL NOT NULL
);
