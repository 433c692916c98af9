-- Claims that go idle (hub/alerts): when the claimer last showed they are still with the
-- customer (Accept, or "Yes, still with them"); NULL (claims from before) reads as claimed_at.
-- After visits.claim_idle_s the phone asks, after claim_confirm_s more the hub ends the claim.
ALTER TABLE alerts ADD COLUMN claim_active_at REAL;

-- Web Push subscriptions, one per phone (hub/push): the push service's endpoint and the
-- phone's keys (RFC 8291). A 404/410 from the push service deletes the row.
CREATE TABLE push_subscriptions (
    endpoint     TEXT PRIMARY KEY,
    staff_id     TEXT NOT NULL,
    p256dh       TEXT NOT NULL,
    auth         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    last_sent_at REAL,
    failures     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX push_subscriptions_staff ON push_subscriptions(staff_id);
