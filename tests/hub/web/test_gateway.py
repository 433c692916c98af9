"""The phone gateway end to end over real parts: Mosquitto, the hub daemon, uvicorn, sockets.

A door camera's face track goes through the real hub pipeline; phones are WebSocket clients
of the web app (as app.js is) and press buttons over HTTP.
"""

from __future__ import annotations

import time

from hub.store import db
from storesense.paths import hub_db_path
from tests.hub.conftest import unit
from tests.hub.web.conftest import Stack, camera_sends, face_track
from tests.hub.web.phone_client import ScriptedPhone


def _one_open(phone: ScriptedPhone) -> bool:
    return len(phone.open_ids()) == 1


def test_claim_closes_the_alert_on_other_phones_and_resync_by_seq(stack: Stack) -> None:
    alice = ScriptedPhone(stack.web.url, "alice").open_socket()
    bob = ScriptedPhone(stack.web.url, "bob").open_socket()
    carol = ScriptedPhone(stack.web.url, "carol").open_socket()
    try:
        camera_sends(stack.cfg, face_track(unit(1)))
        for phone in (alice, bob, carol):
            assert phone.wait(_one_open), f"{phone.staff_id} never saw the alert"
        (alert_id,) = alice.open_ids()
        opened = alice.alerts[alert_id]
        assert (opened["customer_name"], opened["greeting"]) == (
            "Ada Lovelace",
            "Ada has just walked in",
        )
        # no purchases yet: a new customer, not the entry tier ("Bronze") as if earned
        assert opened["tier"] is None and opened["new_customer"] is True

        carol.close_socket()  # carol's phone drops off the network before the claim

        t0 = time.monotonic()
        res = alice.act(alert_id, "claim")
        assert res.status_code == 200, res.text
        assert (res.json()["outcome"], res.json()["customer_id"]) == ("won", "c1")
        # the "within a second" goal is measured by bench/phones_claim_latency.py, not bet on
        # here: a loaded CI machine is no measure of it (issue 15 part 11); the figure prints
        assert bob.wait(lambda p: not p.open_ids(), timeout_s=10.0), "still open on bob's phone"
        gone_ms = (bob.arrived[(alert_id, "claimed")] - t0) * 1000
        print(f"claimed alert gone from bob's phone {gone_ms:.0f} ms after alice's press")
        claimed = bob.alerts[alert_id]
        assert (claimed["claimed_by"], claimed["claimed_by_name"]) == ("alice", "Alice Adams")

        late = bob.act(alert_id, "claim").json()
        assert (late["outcome"], late["message"]) == ("taken", "Already claimed by alice.")

        # carol comes back with the highest seq she saw: she gets the newer state and the
        # (empty) list of open ids, so the alert is not shown as open
        carol.open_socket()
        assert carol.wait(lambda p: len(p.snapshots) == 2)
        snap = carol.snapshots[-1]
        assert snap["open_ids"] == [] and [a["state"] for a in snap["alerts"]] == ["claimed"]
        assert carol.open_ids() == set()

        view = alice.http.get(f"/api/customers/c1?alert_id={alert_id}")
        assert view.status_code == 200 and view.json()["card"]["name"] == "Ada Lovelace"
        assert bob.http.get(f"/api/customers/c1?alert_id={alert_id}").status_code == 403
        done = alice.act(alert_id, "done").json()
        assert done["outcome"] == "done"
        assert bob.wait(lambda p: p.alerts[alert_id]["state"] == "done")
    finally:
        for phone in (alice, bob, carol):
            phone.close()
    conn = db.connect(hub_db_path(stack.home))
    audit = conn.execute(
        "SELECT actor, action, customer_id, detail FROM audit WHERE action IN "
        "('claim', 'view_profile') ORDER BY audit_id"
    ).fetchall()
    assert [tuple(r)[:3] for r in audit] == [
        ("alice", "claim", "c1"),
        ("alice", "view_profile", "c1"),
    ]
    assert audit[1]["detail"] == f"claimed alert {alert_id}"


def test_not_this_person_from_the_phone_logs_a_false_match(stack: Stack) -> None:
    bob = ScriptedPhone(stack.web.url, "bob").open_socket()
    alice = ScriptedPhone(stack.web.url, "alice").open_socket()
    try:
        camera_sends(stack.cfg, face_track(unit(1)))
        assert bob.wait(_one_open) and alice.wait(_one_open)
        (alert_id,) = bob.open_ids()
        res = bob.act(alert_id, "reject").json()
        assert res["outcome"] == "rejected"
        assert alice.wait(lambda p: not p.open_ids(), timeout_s=10.0)
        closed = alice.alerts[alert_id]
        assert (closed["state"], closed["closed_by"], closed["closed_by_name"]) == (
            "rejected",
            "bob",
            "Bob Brown",
        )
    finally:
        bob.close()
        alice.close()
    conn = db.connect(hub_db_path(stack.home))
    fm = conn.execute("SELECT staff_id, customer_id, camera_id, best_distance FROM false_matches")
    row = fm.fetchone()
    assert (row["staff_id"], row["customer_id"], row["camera_id"]) == ("bob", "c1", "door-1")
    assert row["best_distance"] is not None and row["best_distance"] < 0.45  # the hub's evidence


def test_my_customers_and_missed_alerts_through_the_hub(client, cfg, home) -> None:
    from hub.alerts import claims as alerts
    from storesense.topics import Topics
    from tests.hub.web.conftest import claimed_alert, login

    held = claimed_alert(home, cfg.store_id, "alice")
    conn = db.connect(hub_db_path(home))
    now = time.time()
    with db.write(conn):
        missed = alerts.record_match(
            conn, Topics(cfg.store_id), customer_id="c1", camera_id="door-1",
            first_usable_at=now, now=now, cooldown_s=0, alert_ttl_s=0.01,
        ).alert_id  # fmt: skip
    alerts.expire_due(conn, Topics(cfg.store_id), now + 1)
    conn.close()
    login(client, "alice")
    mine = client.get("/api/my-customers").json()
    assert [(h["alert_id"], h["customer_name"], h["entrance_name"]) for h in mine] == [
        (held, "Ada Lovelace", "door-1")
    ]
    assert client.get("/api/missed-alerts").status_code == 403  # managers only
    login(client, "maria")
    assert client.get("/api/my-customers").json() == []
    day = client.get("/api/missed-alerts").json()
    assert (day["count"], [a["alert_id"] for a in day["alerts"]]) == (1, [missed])


def test_hub_and_door_health_reach_the_phones(stack: Stack) -> None:
    from storesense import messages as m
    from storesense.mqtt_client import connect, make_client
    from storesense.topics import Topics

    bob = ScriptedPhone(stack.web.url, "bob").open_socket()
    try:
        assert bob.wait(lambda p: len(p.snapshots) == 1)
        assert bob.snapshots[0]["doors_down"] == [] and bob.snapshots[0]["hub_online"] is True
        cam = make_client("cam-door-1-test", stack.cfg.mqtt, persistent=False)
        connect(cam, stack.cfg.mqtt)
        topics = Topics(stack.cfg.store_id)
        bye = m.EdgeStatus(camera_id="door-1", role="entrance", online=False)
        cam.publish(topics.edge_status("door-1"), bye.to_bytes(), qos=1).wait_for_publish(5)
        cam.disconnect()
        cam.loop_stop()
        assert bob.wait(lambda p: any(s.get("doors_down") == ["door-1"] for s in p.statuses))
    finally:
        bob.close()
