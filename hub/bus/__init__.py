"""The hub's side of MQTT: the transactional outbox and the inbound message ids already applied
(the only writer of both tables)."""
