-- The newest row per topic, found by index: the hub re-announces every retained alert on each
-- connect into the topic's own newest row (hub.bus.outbox.republish) instead of adding rows.
-- Owned by the bus room.
CREATE INDEX IF NOT EXISTS outbox_topic ON outbox(topic, outbox_id);
