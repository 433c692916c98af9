"""10,000 Accept presses racing for 500 alerts through the channel the web app uses: real
Mosquitto, the real hub daemon, 20 claimers each with its own rpc topic pair and a real login
session, every press a ``claim`` request with its deadline (storesense/rpc.py).

Each alert is pressed once by each of the 20 claimers, all of them going through the alerts in
the same order, so the 20 presses of one alert arrive together. Then: exactly one winner per
alert, and that winner is the one the table, the audit log and the retained alert message
name; every other press was answered "taken", naming the winner; every request answered
exactly once; ``claim_attempts`` counts 20 per alert (10,000 in all: no press lost, none
applied twice); no alert row more or less; the audit chain verifies. The counts are printed.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from hub.privacy import audit
from hub.service import HubService
from hub.staff.accounts import Staff, add_staff, create_session
from hub.store import db
from storesense import messages as m
from storesense import rpc
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from tests.hub.conftest import hub_config, open_alerts
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ALERTS = 500
CLAIMERS = 20
WINDOW = 8  # presses a claimer has in flight at once (a phone's impatient taps, many phones)
TIMEOUT_S = 55.0  # each press's deadline (under rpc.MAX_HORIZON_S): none may time out here


@pytest.fixture
def cfg(tmp_path: Path) -> Iterator[StoreConfig]:
    require_mosquitto()
    with ExitStack() as stack:
        port = private_mosquitto(stack, tmp_path)
        yield hub_config(port, "visits: {alert_ttl_s: 3600, cooldown_s: 0}\n")


class _Claimer(threading.Thread):
    """One web process's worth of presses: its own rpc topics, one staff session."""

    def __init__(self, cfg: StoreConfig, hub: HubService, staff: Staff, order: list[str]) -> None:
        super().__init__(daemon=True)
        # set-up only, before the hub's worker sees any request (create_session commits)
        self.token, session = create_session(hub.conn, staff)
        self.csrf = session.csrf_token
        self.staff_id = staff.staff_id
        self.order = order
        self.topics = hub.topics
        self.web_id = f"web-{uuid.uuid4().hex[:10]}"
        self.sent: dict[str, str] = {}  # request id -> alert id
        self.replies: dict[str, list[rpc.Reply]] = {}
        self._window = threading.Semaphore(WINDOW)
        self._lock = threading.Lock()
        self.client = make_client(self.web_id, cfg.mqtt, persistent=False)
        self.client.on_message = self._on_reply
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            self.topics.rpc_reply(self.web_id), 1
        )
        connect(self.client, cfg.mqtt)
        self.go = threading.Event()

    def _on_reply(self, c: object, u: object, msg: m.Any) -> None:  # type: ignore[name-defined]
        reply = rpc.decode_reply(bytes(msg.payload))
        with self._lock:
            first = reply.request_id not in self.replies
            self.replies.setdefault(reply.request_id, []).append(reply)
        if first:
            self._window.release()

    def run(self) -> None:
        self.go.wait()
        for alert_id in self.order:
            self._window.acquire()
            args = {"token": self.token, "csrf": self.csrf, "alert_id": alert_id,
                    "action": "claim"}  # fmt: skip
            req = rpc.new_request("claim", args, timeout_s=TIMEOUT_S)
            with self._lock:
                self.sent[req.request_id] = alert_id
            self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)

    def answered(self) -> int:
        with self._lock:
            return len(self.replies)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_ten_thousand_claims_for_500_alerts_one_winner_each_every_loser_told(
    cfg: StoreConfig, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    hub = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    ids = open_alerts(hub.conn, home, hub.topics, ALERTS)
    staff = []
    for i in range(CLAIMERS):
        sid = f"s{i:02d}"
        add_staff(hub.conn, sid, f"Staff {i}", "salesperson", "correct horse battery")
        staff.append(Staff(sid, f"Staff {i}", "salesperson"))
    rng = random.Random(15)
    claimers = []
    for s in staff:  # the same order for all, shifted by a press or two: real contention
        shift = rng.randrange(3)
        claimers.append(_Claimer(cfg, hub, s, ids[shift:] + ids[:shift]))

    # the retained alert messages, kept by the sequence rule, as a phone keeps them
    seen: dict[str, m.Alert] = {}
    seen_lock = threading.Lock()

    def on_alert(c: object, u: object, msg: m.Any) -> None:  # type: ignore[name-defined]
        if not msg.payload:
            return
        alert = m.decode(bytes(msg.payload), m.Alert)
        with seen_lock:
            if alert.alert_id not in seen or seen[alert.alert_id].seq < alert.seq:
                seen[alert.alert_id] = alert

    watcher = make_client(f"phone-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    watcher.on_message = on_alert
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(hub.topics.all_alerts, 1)
    connect(watcher, cfg.mqtt)
    hub.start()
    try:
        for c in claimers:
            assert c.subscribed.wait(10)
            c.start()
        assert wait_for(lambda: len(seen) == ALERTS, 60), len(seen)  # every alert shown open
        t0 = time.monotonic()
        for c in claimers:
            c.go.set()
        total = ALERTS * CLAIMERS
        assert wait_for(lambda: sum(c.answered() for c in claimers) == total, 240), sum(
            c.answered() for c in claimers
        )
        took = time.monotonic() - t0
        for c in claimers:
            c.join(10)
        # the final retained state of each alert (its claimed message follows the last reply)
        assert wait_for(lambda: all(a.state == "claimed" for a in list(seen.values())), 60), (
            Counter(a.state for a in seen.values())
        )
    finally:
        for c in claimers:
            c.close()
        watcher.disconnect()
        watcher.loop_stop()
        hub.stop()

    # every request answered exactly once, none refused or timed out
    replies = {rid: rs[0] for c in claimers for rid, rs in c.replies.items()}
    assert len(replies) == total and set(replies) == {rid for c in claimers for rid in c.sent}
    assert all(len(rs) == 1 for c in claimers for rs in c.replies.values())
    statuses = Counter(r.status for r in replies.values())
    assert statuses == {200: total}, statuses

    winners: dict[str, list[str]] = {a: [] for a in ids}
    outcomes: Counter[str] = Counter()
    for c in claimers:
        for rid, alert_id in c.sent.items():
            answer = rpc.ClaimAnswer.model_validate(c.replies[rid][0].result)
            assert answer.alert_id == alert_id
            outcomes[answer.outcome] += 1
            if answer.outcome == "won":
                winners[alert_id].append(c.staff_id)
    assert outcomes == {"won": ALERTS, "taken": total - ALERTS}, outcomes
    assert all(len(w) == 1 for w in winners.values()), [
        a for a, w in winners.items() if len(w) != 1
    ]
    for c in claimers:  # every loser told who has the customer
        for rid, alert_id in c.sent.items():
            answer = rpc.ClaimAnswer.model_validate(c.replies[rid][0].result)
            if answer.outcome == "taken":
                (winner,) = winners[alert_id]
                assert answer.claimed_by == winner
                assert answer.message == f"Already claimed by {winner}.", answer.message

    conn = db.connect(hub_db_path(home))
    try:
        rows = {
            r["alert_id"]: r
            for r in conn.execute("SELECT alert_id, state, claimed_by, claim_attempts FROM alerts")
        }
        assert set(rows) == set(ids)  # no row lost, none added
        for alert_id, row in rows.items():
            assert (row["state"], row["claimed_by"]) == ("claimed", winners[alert_id][0])
            assert row["claim_attempts"] == CLAIMERS, (alert_id, row["claim_attempts"])
            phone = seen[alert_id]
            assert (phone.state, phone.claimed_by) == ("claimed", row["claimed_by"])
        assert sum(r["claim_attempts"] for r in rows.values()) == total
        claims = conn.execute(
            "SELECT actor, detail FROM audit WHERE action='claim' ORDER BY audit_id"
        ).fetchall()
        assert len(claims) == ALERTS
        assert {r["detail"].removeprefix("claimed alert "): r["actor"] for r in claims} == {
            a: w[0] for a, w in winners.items()
        }
        assert audit.verify(conn).ok
        applied = conn.execute(
            f"SELECT count(*) FROM seen_messages WHERE msg_id IN ({','.join('?' * len(replies))})",
            list(replies),
        ).fetchone()[0]
        assert applied == total  # each press recorded once (a redelivery would be refused)
    finally:
        conn.close()
    spread = Counter(w[0] for w in winners.values())
    print(
        f"\n{total} claim presses ({CLAIMERS} claimers x {ALERTS} alerts) in {took:.1f} s "
        f"({total / took:.0f}/s): {outcomes['won']} won, {outcomes['taken']} taken, "
        f"0 lost, 0 doubled; wins per claimer {min(spread.values())}-{max(spread.values())}"
    )
