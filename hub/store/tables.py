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
}

# meta keys and the room that sets each (all through hub.store.db.put_meta)
META_KEYS: dict[str, str] = {
    "schema_version": "store",  # the migrations, kept for tools that read it
    "template_key_fingerprint": "faces",  # hub.faces.template_crypto.FINGERPRINT_KEY
    "audit_anchor": "privacy",  # hub.privacy.audit.ANCHOR_KEY
}
