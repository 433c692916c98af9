"""The hub's side of MQTT out: the transactional outbox (the only writer of its table)."""
