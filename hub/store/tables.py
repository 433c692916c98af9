"""Which room owns which table: the only room whose SQL may read or write it.

Other rooms read and change it only through the owning room's functions (or a callable the
daemon injects where the import would point the wrong way): privacy's export asks faces,
alerts and shop what they hold about a customer and its erasure asks them to forget the
customer, alerts ask faces for a customer's name and to move their last visit, and so on.
``hub/store`` (migrations, the connection) is the exception: it owns the schema of every table.
tests/hub/store/test_table_owners.py checks every SQL string of every hub module against this.
"""

from __future__ import annotations

OWNERS: dict[str, str] = {
    # store: bookkeeping every room uses through hub.store.db
    "meta": "store",  # put_meta/get_meta; each key's owner in META_KEYS
    "counters": "store",  # next_counter/counter
    "schema_migrations": "store",
    # bus: MQTT in and out
    "outbox": "bus",  # hub.bus.outbox.enqueue / retract_retained / purge_sent
    "seen_messages": "bus",  # hub.bus.seen
    # faces: enrolled customers and what the door cameras made of strangers
    "customers": "faces",
    "templates": "faces",
    "enrolment_photos": "faces",
    "unknown_visitors": "faces",  # hub.faces.profiles.record_unknown
    "consent_records": "faces",  # every enrolment consent, earlier ones kept (gallery.enrol)
    "threshold_settings": "faces",  # manager-applied thresholds (hub.faces.threshold)
    # alerts: visits, the claim machine, false matches, camera health
    "visits": "alerts",
    "alerts": "alerts",
    "alert_matches": "alerts",
    "false_matches": "alerts",
    "nodes": "alerts",  # hub.alerts.node_health
    # privacy: the keyed audit chain
    "audit": "privacy",
    # shop: purchases, loyalty birthdays, webhook keys, suggestions
    "pos_products": "shop",
    "pos_invoices": "shop",
    "pos_lines": "shop",
    "pos_birthdays": "shop",
    "pos_webhook_keys": "shop",
    "suggestions": "shop",
    "suggestion_builds": "shop",
    # floor: occupancy grid, zone visits, floor camera runs, crash-recovery state
    "floor_grid": "floor",
    "floor_days": "floor",
    "floor_visits": "floor",
    "floor_runs": "floor",
    "floor_state": "floor",
    "floor_slots": "floor",
    "floor_camera_heights": "floor",  # per-camera self-check (hub.floor.camera_trust)
    # staff: accounts and login sessions (hub/staff/accounts.py; the web process holds no DB)
    "staff": "staff",
    "web_sessions": "staff",
    # push: Web Push subscriptions of the staff phones (hub/push)
    "push_subscriptions": "push",
    # chain: chain-wide customers (hub/chain/customers.py, members.py; docs/chain.md)
    "chain_peers": "chain",
    "chain_customers": "chain",
    "chain_sealed": "chain",
    "chain_erasures": "chain",
}

# meta keys and the room that sets each (all through hub.store.db.put_meta)
META_KEYS: dict[str, str] = {
    "schema_version": "store",  # the migrations, kept for tools that read it
    "template_key_fingerprint": "faces",  # hub.faces.template_crypto.FINGERPRINT_KEY
    "audit_anchor": "privacy",  # hub.privacy.audit.ANCHOR_KEY
    "chain_alert_seq": "chain",  # hub.chain.feed: the last alert change sent to the chain
    "chain_floor_until": "chain",  # hub.chain.feed: the end of the last floor interval sent
    "chain_key_sent": "chain",  # hub.chain.customers: the public key last sent to the office
}

# What each table can hold about a customer (their id, name, face or anything that leads to
# them), and how an erasure (hub.privacy.erasure) forgets it. Every table is listed:
# tests/hub/privacy/test_erasure_everywhere.py enumerates the schema and fails on a table
# missing here, on a table with a customer_id column marked NOBODY, and it gives a customer
# rows in every table not marked NOBODY before erasing them and finding nothing after.
ERASED = "erased"  # the customer's rows are deleted
UNLINKED = "unlinked"  # the rows stay (the store's figures) under a random owner id
REDACTED = "redacted"  # the rows stay, whom blanked and sealed; one erasure row is the tombstone
RETRACTED = "retracted"  # sent messages naming them are deleted; a retraction goes out instead
NOBODY = "nobody"  # holds no customer id, name or face: why, beside it

CUSTOMER_DATA: dict[str, str] = {
    "meta": NOBODY,  # schema version, key fingerprint, audit anchor
    "counters": NOBODY,  # sequence numbers
    "schema_migrations": NOBODY,
    "outbox": RETRACTED,  # alert messages carry the name (hub.bus.outbox.retract_retained)
    "seen_messages": NOBODY,  # random message ids and times
    "customers": ERASED,
    "templates": ERASED,  # cascade from customers
    "enrolment_photos": ERASED,  # cascade from customers
    "unknown_visitors": NOBODY,  # strangers: a random track id, never a customer
    "consent_records": ERASED,
    "threshold_settings": NOBODY,  # thresholds and counts of evidence, no ids
    "visits": ERASED,
    "alerts": ERASED,
    "alert_matches": ERASED,  # cascade from alerts
    "false_matches": ERASED,
    "nodes": NOBODY,  # camera health
    "audit": REDACTED,
    "pos_products": NOBODY,  # the catalogue
    "pos_invoices": UNLINKED,
    "pos_lines": NOBODY,  # products and prices; their invoice (its owner unlinked) links them
    "pos_birthdays": ERASED,
    "pos_webhook_keys": NOBODY,  # idempotency keys and the answer (invoice number, status)
    "suggestions": ERASED,
    "suggestion_builds": NOBODY,  # when a build ran and how many customers/items: counts
    "floor_grid": NOBODY,  # floor analytics: metres and seconds, never a face or a name
    "floor_days": NOBODY,
    "floor_visits": NOBODY,  # an anonymous person key per floor track
    "floor_runs": NOBODY,
    "floor_state": NOBODY,
    "floor_slots": NOBODY,
    "floor_camera_heights": NOBODY,
    "staff": NOBODY,  # staff accounts (staff are not customers)
    "web_sessions": NOBODY,
    "push_subscriptions": NOBODY,  # a staff phone's push endpoint and keys
    "chain_peers": NOBODY,  # the other stores' public keys
    "chain_customers": ERASED,  # which customers are chain-wide, from which store
    "chain_sealed": ERASED,  # for which store a customer's templates were sealed
    # an erasure request waiting for the next chain tick (then deleted): the random chain
    # reference only; the erasure itself deleted the chain_customers row linking it to anyone
    "chain_erasures": NOBODY,
}
