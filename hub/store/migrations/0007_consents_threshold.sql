-- Enrolment consents as a history, and the store's reviewed match threshold (issue 13).
--
-- consent_records (hub/faces): every consent an enrolment recorded, one row each. Before this,
-- re-enrolling overwrote the consent fields of `customers`; now `customers` keeps the consent
-- in force (the latest) and this table keeps every earlier one (superseded_at set). The rows
-- of existing customers are copied from `customers` (one consent each, never superseded).
CREATE TABLE consent_records (
    consent_id     INTEGER PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(customer_id) ON DELETE CASCADE,
    reference      TEXT NOT NULL CHECK (length(trim(reference)) > 0),
    method         TEXT,
    notice_version TEXT,
    staff_id       TEXT,
    given_at       REAL NOT NULL,
    recorded_at    REAL NOT NULL,
    photo_shown    INTEGER NOT NULL DEFAULT 0,
    superseded_at  REAL
);
CREATE INDEX consent_records_customer ON consent_records(customer_id, consent_id);
INSERT INTO consent_records(customer_id, reference, method, notice_version, staff_id, given_at,
                            recorded_at, photo_shown)
    SELECT customer_id, consent_ref, consent_method, consent_notice, consent_staff, consent_at,
           created_at, photo_consent_at IS NOT NULL
    FROM customers;

-- threshold_settings (hub/faces): the match thresholds a manager applied after
-- `storesense faces review`, newest last. The hub uses the newest row's threshold instead of
-- recognition.threshold from the store config (NULL = back to the config's value); it never
-- writes a row by itself. `evidence` is the review's counts and reasoning, as JSON.
CREATE TABLE threshold_settings (
    setting_id  INTEGER PRIMARY KEY,
    threshold   REAL CHECK (threshold IS NULL OR (threshold > 0 AND threshold < 2)),
    previous    REAL NOT NULL,
    applied_at  REAL NOT NULL,
    staff_id    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    evidence    TEXT NOT NULL
);
