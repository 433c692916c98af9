-- The alert card's "new customer" state (issue 17): a customer with no purchase on file yet
-- is greeted as new, not shown the entry tier as if they had earned it. Decided at the match
-- (hub.alerts.claims.record_match, from the shop's lookup) and kept with the alert's other
-- evidence, so every later state of the alert says the same. Owned by the alerts room.
ALTER TABLE alert_matches ADD COLUMN new_customer INTEGER NOT NULL DEFAULT 0;
