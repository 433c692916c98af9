"""Right of access: the person's data as JSON, without template vectors, and audited."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np

from hub.alerts import claims as alerts
from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.privacy.export import export_customer
from hub.store import db
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.pos_fixtures import add_invoice


def test_export_holds_the_persons_data_but_no_template_and_is_audited(gallery: Gallery) -> None:
    conn = gallery.conn
    vec = unit(3)
    gallery.enrol("c1", "Ada", consent("form-9", staff_id="bob"), [(vec, 0.87, "photo-sha256:ab")])
    gallery.enrol("c2", "Bob", consent("form-10"), [(unit(4), 0.9, "t")])
    with db.write(conn) as c:
        alerts.record_match(
            c,
            Topics("s1"),
            customer_id="c1",
            camera_id="door-1",
            first_usable_at=10.0,
            now=10.0,
            cooldown_s=60,
            alert_ttl_s=60,
        )
    audit.record_profile_view(conn, actor="alice", customer_id="c1", reason="claimed alert a1")
    add_invoice(conn, "INV7", "c1", datetime(2026, 11, 2, 15), [("A1", "MUG", 2, 3.5)])
    add_invoice(conn, "INV8", "c2", datetime(2026, 11, 2, 16), [("B1", "BAG", 1, 9.0)])

    data = export_customer(conn, "c1", actor="dpo", reason="access request #4")
    assert data is not None
    assert data["profile"]["name"] == "Ada"
    assert (data["profile"]["consent_ref"], data["profile"]["consent_staff"]) == ("form-9", "bob")
    assert [(t["quality"], t["source"]) for t in data["face_templates"]] == [
        (0.87, "photo-sha256:ab")
    ]
    assert len(data["visits"]) == 1 and len(data["alerts"]) == 1
    assert [(p["invoice_no"], p["stock_code"], p["quantity"]) for p in data["purchases"]] == [
        ("INV7", "A1", 2)
    ]
    assert {a["action"] for a in data["audit"]} >= {"enrol", "match", "view_profile"}
    text = json.dumps(data)
    assert "Bob" not in text and "INV8" not in text  # nobody else's data
    assert "vector" not in text
    for x in np.asarray(vec, dtype=np.float32)[:8]:  # no template value, in any spelling
        assert repr(float(x))[:8] not in text
    last = conn.execute(
        "SELECT actor, action, customer_id, detail FROM audit ORDER BY audit_id DESC"
    ).fetchone()
    assert tuple(last) == ("dpo", "export", "c1", "access request #4")
    assert audit.verify(conn).ok


def test_export_of_someone_the_hub_never_knew_is_none(gallery: Gallery) -> None:
    assert export_customer(gallery.conn, "nobody", actor="dpo", reason="request") is None
