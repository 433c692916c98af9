"""The hub's end of the channel on the real broker: a request past its deadline is refused,
the reply goes to the requester's own reply topic, and a raw claim past its deadline (a
``sim_phone`` press) is never applied."""

from __future__ import annotations

import queue
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.alerts import claims as alerts
from hub.service import HubService
from hub.staff.accounts import add_staff
from hub.store import db
from storesense import rpc
from storesense.config import StoreConfig, parse_config
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from storesense.topics import Topics
from storesense_tools.sim_phone import Phone
from tests.hub.api.helpers import enrol_c1
from tests.hub.conftest import MOSQUITTO, _mosquitto_up
from tests.waiting import wait_for

PASSWORD = "correct horse battery"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[StoreConfig, HubService]]:
    if not _mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    cfg = parse_config(f"store_id: r{uuid.uuid4().hex[:10]}\nmqtt: {{port: {MOSQUITTO[1]}}}\n")
    conn = db.migrate_db(hub_db_path(tmp_path))
    add_staff(conn, "alice", "Alice Adams", "salesperson", PASSWORD)
    enrol_c1(conn, tmp_path)
    conn.close()
    hub = HubService(cfg, tmp_path, client_id=f"hub-{cfg.store_id}").start()
    try:
        yield cfg, hub
    finally:
        hub.stop()
        shutil.rmtree(tmp_path / "reports", ignore_errors=True)


class Web:
    """A bare web instance: publishes on its request topic, collects its reply topic."""

    def __init__(self, cfg: StoreConfig, web_id: str) -> None:
        self.topics = Topics(cfg.store_id)
        self.web_id = web_id
        self.replies: queue.Queue[rpc.Reply] = queue.Queue()
        self.client = make_client(web_id, cfg.mqtt, persistent=False)
        self.client.on_message = lambda c, u, msg: self.replies.put(
            rpc.decode_reply(bytes(msg.payload))
        )
        connect(self.client, cfg.mqtt)
        self.client.subscribe(self.topics.rpc_reply(web_id), qos=1)
        time.sleep(0.3)

    def send(self, req: rpc.Request) -> None:
        self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_past_deadline_refused_on_the_wire_and_replies_go_to_the_asker_only(live) -> None:
    cfg, _ = live
    tag = uuid.uuid4().hex[:8]  # client ids are global on the shared broker
    asker, other = Web(cfg, f"web-a{tag}"), Web(cfg, f"web-b{tag}")
    try:
        late = rpc.Request(op="staff_names", args={}, deadline=time.time() - 1)
        asker.send(late)
        reply = asker.replies.get(timeout=5)
        assert (reply.request_id, reply.status) == (late.request_id, 504)
        fresh = rpc.new_request("login", {"staff_id": "alice", "password": PASSWORD})
        asker.send(fresh)
        reply = asker.replies.get(timeout=5)
        assert reply.ok and reply.request_id == fresh.request_id
        assert "token" in reply.result  # a session token: it must reach nobody else
        time.sleep(0.3)
        assert other.replies.empty()
    finally:
        asker.close()
        other.close()


def test_a_raw_claim_past_its_deadline_is_never_applied(live) -> None:
    cfg, hub = live
    conn = db.connect(hub_db_path(hub.home))
    now = time.time()
    with db.write(conn):
        out = alerts.record_match(
            conn, hub.topics, customer_id="c1", camera_id="door-1", first_usable_at=now,
            now=now, cooldown_s=0, alert_ttl_s=60,
        )  # fmt: skip
    # a unique staff id: sim phones are client "phone-<id>" on the shared broker
    phone = Phone(f"s{uuid.uuid4().hex[:8]}", hub.topics, cfg.mqtt).start()
    try:
        assert phone.wait_for(lambda p: len(p.open_alerts()) == 1)
        phone.claim(out.alert_id, timeout_s=-1.0)  # already past: as if delivered late
        assert wait_for(lambda: hub.stats.rejected["past_deadline"] == 1)
        row = conn.execute("SELECT state FROM alerts WHERE alert_id=?", (out.alert_id,))
        assert row.fetchone()[0] == "open"
        phone.claim(out.alert_id, timeout_s=5.0)
        assert phone.wait_for(lambda p: not p.open_alerts())
        # the result comes on its own topic: it may land after the alert's new state
        assert phone.wait_for(lambda p: len(p.results) >= 1)
        assert [r.outcome for r in phone.results] == ["won"]
    finally:
        phone.stop()
        conn.close()
