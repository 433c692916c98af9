"""What the alert room hands other rooms: one customer's visits and alerts for the export, and
the alert message's name, asked of the face room (alerts do not read its tables)."""

from __future__ import annotations

from hub.alerts import claims, records
from hub.faces import profiles
from hub.faces.gallery import Gallery
from hub.store import db
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit

TOPICS = Topics("s1")


def _match(gallery: Gallery, customer_id: str, now: float, camera: str = "door-1") -> str | None:
    with db.write(gallery.conn) as c:
        return claims.record_match(
            c,
            TOPICS,
            customer_id=customer_id,
            camera_id=camera,
            first_usable_at=now,
            now=now,
            cooldown_s=60,
            alert_ttl_s=30,
        ).alert_id


def test_customer_data_lists_their_visits_and_alerts_oldest_first(gallery: Gallery) -> None:
    first = _match(gallery, "c1", 100.0)
    _match(gallery, "c1", 120.0, camera="door-2")  # same visit: no second alert
    second = _match(gallery, "c1", 1000.0)
    _match(gallery, "c2", 110.0)
    data = records.customer_data(gallery.conn, "c1")
    assert set(data) == {"visits", "alerts"}
    assert [(v["started_at"], v["last_seen_at"]) for v in data["visits"]] == [
        (100.0, 120.0),
        (1000.0, 1000.0),
    ]
    assert data["visits"][0]["cameras"] == '["door-1", "door-2"]'
    assert [(a["alert_id"], a["state"]) for a in data["alerts"]] == [
        (first, "open"),
        (second, "open"),
    ]
    assert records.customer_data(gallery.conn, "nobody") == {"visits": [], "alerts": []}


def test_alert_message_names_the_enrolled_and_not_the_erased(gallery: Gallery) -> None:
    gallery.enrol("c1", "Ada Lovelace", consent("form-1"), [(unit(1), 0.9, "t")])
    alert_id = _match(gallery, "c1", 100.0)
    assert alert_id is not None
    msg = claims.alert_message(gallery.conn, alert_id)
    assert (msg.customer_name, msg.greeting) == ("Ada Lovelace", "Ada has just walked in")
    with db.write(gallery.conn) as c:  # the profile goes, the alert is still on file
        profiles.forget_customer(c, "c1")
    msg = claims.alert_message(gallery.conn, alert_id)
    assert (msg.customer_id, msg.customer_name) == ("c1", "a returning customer")
    assert msg.greeting == "A returning customer is here"  # not "a has just walked in"
