"""kill -9 of a real `storesense hub run` process while 20 salespeople race to claim one alert.

``test_faults.test_hub_killed_mid_claim_restarts_consistent`` stops an in-process hub *before*
the claims arrive. Here the claims are in flight when the hub dies: some are committed, some
sit in the hub's inbox uncommitted (so unacknowledged: manual ack after commit), some have
their result in the outbox but not yet at the broker, and the rest are still queued at the
broker for the hub's persistent session. The hub is a separate process on a private,
persistent Mosquitto and gets SIGKILL (no goodbye, no ``close()``) either right after the
first claim result reaches a phone (killed from the thread that receives it) or at a fixed
short delay (0 or 3 ms) after the first half of the phones pressed Accept; the second half
press right after the kill.

Pass rule, after a restart: exactly one winner in the database (or the alert still open,
never two winners), the winner's phone saw ``won`` and every other phone ``taken`` by that
winner (a phone that heard nothing 10 s after the restart re-sends its claim with the same
``msg_id``: claims are idempotent), every claim counted once (``claim_attempts``), one
``claim`` audit row, the retained alert on the broker equal to the database row, and no
unsent outbox row left.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from hub.alerts import claims as alerts
from hub.bus.outbox import Outbox
from hub.faces.gallery import Gallery
from hub.store import db
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit
from tests.hub.hub_process import HubRunner
from tests.hub.test_faults import _event, _persistent_broker
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto
from tests.waiting import wait_for

N_CLAIMERS = 20


class Claimer:
    """One salesperson's phone reduced to what a claim needs: its own MQTT session (persistent,
    as the web gateway's is), its result topic, and every distinct result it heard."""

    def __init__(self, staff_id: str, cfg: StoreConfig, on_result: Callable[[], None]) -> None:
        self.staff_id = staff_id
        self.topics = Topics(cfg.store_id)
        self.results: dict[str, m.ClaimResult] = {}  # by result msg_id: re-sends are not new
        self.request: m.ClaimRequest | None = None
        self.resent = 0
        self._lock = threading.Lock()
        self._on_result = on_result
        self.client = make_client(f"claimer-{cfg.store_id}-{staff_id}", cfg.mqtt)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            self.topics.claim_result(staff_id), qos=1
        )
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        connect(self.client, cfg.mqtt)
        assert self._subscribed.wait(5), f"{staff_id} got no SUBACK"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        result = m.decode(bytes(msg.payload), m.ClaimResult)
        with self._lock:
            self.results[result.msg_id] = result
        self._on_result()

    def claim(self, alert_id: str) -> None:
        self.request = m.ClaimRequest(alert_id=alert_id, staff_id=self.staff_id)
        self._send()

    def resend(self) -> None:
        """What a phone that heard nothing does: the same request, so the same ``msg_id``."""
        self.resent += 1
        self._send()

    def _send(self) -> None:
        assert self.request is not None
        topic = self.topics.claims(self.staff_id)
        self.client.publish(topic, self.request.to_bytes(), qos=1).wait_for_publish(5)

    def outcomes(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return [(r.outcome, r.claimed_by) for r in self.results.values()]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _query(path: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    """Read the hub's database from outside, as `storesense status` would, while it runs."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _unsent(path: Path) -> int:
    return int(_query(path, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0])


def _retained_alert(cfg: StoreConfig, alert_id: str) -> m.Alert:
    """What a phone connecting now is told: the broker's retained message for the alert."""
    got: list[m.Alert] = []
    reader = make_client(f"reader-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    reader.on_message = lambda c, u, msg: got.append(m.decode(bytes(msg.payload), m.Alert))
    reader.on_connect = lambda c, u, f, rc, p: c.subscribe(Topics(cfg.store_id).alert(alert_id), 1)
    connect(reader, cfg.mqtt)
    try:
        assert wait_for(lambda: got, 5), "no retained alert on the broker"
        time.sleep(0.2)  # a retained message is delivered once, at subscribe
        return got[-1]
    finally:
        reader.disconnect()
        reader.loop_stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A persistent Mosquitto of this test's own, stopped even when the test fails."""
    require_mosquitto()
    broker = _persistent_broker(tmp_path).start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("kill_at", ["first-result", "0ms", "3ms"])
def test_hub_killed_mid_claim_race_has_one_winner(
    kill_at: str, private_broker: MosquittoProcess, tmp_path: Path
) -> None:
    broker = private_broker
    staff = [f"s{i:02d}" for i in range(N_CLAIMERS)]
    cfg = parse_config(
        yaml.safe_dump(
            {
                "store_id": f"k{uuid.uuid4().hex[:8]}",
                "mqtt": {"port": broker.port, "keepalive_s": 5},
                "visits": {"cooldown_s": 600, "alert_ttl_s": 600},
                "staff": staff,
            }
        )
    )
    topics = Topics(cfg.store_id)
    home = tmp_path / "home"
    home.mkdir()
    db_path = hub_db_path(home)
    conn = db.migrate_db(db_path)
    Gallery.open(conn, template_key_path(home)).enrol(
        "c00", "Ada Lovelace", consent("consent-kill"), [(unit(100), 0.9, "t")]
    )
    conn.close()

    status: list[m.HubStatus] = []
    alerts: list[m.Alert] = []

    def on_watch(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.hub_status:
            status.append(m.decode(msg.payload, m.HubStatus))
        elif msg.payload:
            alerts.append(m.decode(msg.payload, m.Alert))

    watcher = make_client(f"watch-{cfg.store_id}", cfg.mqtt, persistent=False)
    watcher.on_message = on_watch
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [(topics.hub_status, 1), (topics.all_alerts, 1)]
    )
    connect(watcher, cfg.mqtt)
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(cam, cfg.mqtt)

    runner = HubRunner(home, cfg, tmp_path, status)
    start_hub, logs = runner.start, runner.logs

    first_result = threading.Event()
    kill_on_result: list[Callable[[], None]] = []
    kill_lock = threading.Lock()

    def on_result() -> None:
        """Runs on a claimer's paho thread; the first result may fire the kill from there."""
        with kill_lock:
            if not first_result.is_set():
                for kill in kill_on_result:
                    kill()
                first_result.set()

    claimers: list[Claimer] = []
    hub = start_hub()
    try:
        claimers = [Claimer(s, cfg, on_result) for s in staff]
        cam.publish(topics.faces("door-1"), _event(0).to_bytes(), qos=1).wait_for_publish(5)
        assert wait_for(lambda: any(a.state == "open" for a in alerts), 15), "no alert opened"
        alert_id = next(a.alert_id for a in alerts if a.state == "open")

        # The race, in two waves from one thread per phone: the first half press Accept
        # together; the second half press as soon as the hub has been killed, so the race
        # spans the kill by construction however fast the first hub is.
        first, second = claimers[: N_CLAIMERS // 2], claimers[N_CLAIMERS // 2 :]
        gates = [threading.Barrier(len(first)), threading.Barrier(len(second) + 1)]

        def press(c: Claimer, gate: threading.Barrier) -> None:
            gate.wait()
            c.claim(alert_id)

        threads = [threading.Thread(target=press, args=(c, gates[c in second])) for c in claimers]
        victim = hub
        if kill_at == "first-result":  # from the paho thread that hears it: no added delay
            kill_on_result.append(lambda: victim.send_signal(signal.SIGKILL))
        for t in threads:
            t.start()
        if kill_at == "first-result":
            assert first_result.wait(15), "no claim result before the kill"
        else:
            time.sleep(int(kill_at.removesuffix("ms")) / 1000)
            hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        gates[1].wait()  # the second wave, into the dead hub's session at the broker
        for t in threads:
            t.join(10)
        answered_before_kill = sum(bool(c.results) for c in claimers)
        committed = _query(db_path, "SELECT claim_attempts FROM alerts")[0][0]
        assert committed < N_CLAIMERS, f"the kill came after all {committed} claims: not mid-race"

        hub = start_hub()
        wait_for(lambda: all(c.results for c in claimers), 10)
        for c in claimers:
            if not c.results:
                c.resend()  # idempotent: the hub answers it or has already answered it
        assert wait_for(lambda: all(c.results for c in claimers), 30), [
            c.staff_id for c in claimers if not c.results
        ]
        assert wait_for(lambda: _unsent(db_path) == 0, 15), "outbox rows left unsent"
        time.sleep(0.5)  # late repeats of results re-sent after the restart

        row = _query(db_path, "SELECT * FROM alerts WHERE alert_id=?", alert_id)[0]
        winners = {c.staff_id for c in claimers if any(o == "won" for o, _ in c.outcomes())}
        diag = (
            f"kill at {kill_at}: {answered_before_kill} answered and {committed} claims "
            f"committed before the kill; re-sent {sum(c.resent for c in claimers)}; "
            f"state {row['state']} by {row['claimed_by']}"
        )
        assert row["state"] in ("claimed", "open"), diag
        if row["state"] == "open":  # allowed by the rule, but then nobody may think they won
            assert not winners, diag
        else:
            assert winners == {row["claimed_by"]}, diag
            for c in claimers:
                want = "won" if c.staff_id == row["claimed_by"] else "taken"
                assert {o for o, _ in c.outcomes()} == {want}, (c.staff_id, c.outcomes(), diag)
                assert {by for _, by in c.outcomes()} == {row["claimed_by"]}, diag
        assert row["claim_attempts"] == N_CLAIMERS, diag  # each claim counted exactly once
        audit = _query(
            db_path,
            "SELECT actor FROM audit WHERE action='claim' AND detail LIKE ?",
            f"%{alert_id}%",
        )
        assert [r[0] for r in audit] == ([row["claimed_by"]] if winners else []), diag

        retained = _retained_alert(cfg, alert_id)
        assert (retained.state, retained.claimed_by, retained.seq) == (
            row["state"],
            row["claimed_by"],
            row["seq"],
        ), diag
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(20) == 0
        assert _unsent(db_path) == 0
        for log in logs:
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if hub.poll() is None:
            hub.kill()
        for c in claimers:
            c.close()
        for client in (watcher, cam):
            client.disconnect()
            client.loop_stop()


pytestmark = pytest.mark.timeout(300)


def test_a_kill_while_acks_are_recorded_never_leaves_an_older_alert_state_to_resend(
    private_broker: MosquittoProcess, tmp_path: Path
) -> None:
    """The outbox marks acknowledged rows sent all together or not at all.

    Found while writing the test above: ``Outbox`` marked a batch of PUBACKs one autocommit
    UPDATE at a time, in ``set`` order. A kill between two of them could leave an alert's
    ``open`` row unsent while its newer ``claimed`` row was marked sent; the restarted hub then
    re-publishes the older state, and the broker's retained message says "open" for a claimed
    alert. The kill is simulated exactly where it hurts by a trigger that aborts the second
    mark of the batch (whichever row it is); then a new outbox, as after a restart, sends what
    is left.
    """
    port = private_broker.port
    cfg = parse_config(f"store_id: a{uuid.uuid4().hex[:8]}\nmqtt: {{port: {port}}}\n")
    topics = Topics(cfg.store_id)
    home = tmp_path / "home"
    home.mkdir()
    conn = db.migrate_db(hub_db_path(home))
    Gallery.open(conn, template_key_path(home)).enrol(
        "c00", "Ada Lovelace", consent("consent-acks"), [(unit(100), 0.9, "t")]
    )
    now = time.time()
    with db.write(conn):
        alert_id = alerts.record_match(
            conn, topics, customer_id="c00", camera_id="door-1", first_usable_at=now, now=now,
            cooldown_s=600, alert_ttl_s=600,
        ).alert_id  # fmt: skip
    assert alert_id is not None
    claim = m.ClaimRequest(alert_id=alert_id, staff_id="s00")
    assert alerts.handle_claim(conn, topics, claim, now).outcome == "won"
    rows = conn.execute("SELECT outbox_id FROM outbox WHERE sent_at IS NULL").fetchall()
    assert len(rows) == 3  # alert open, alert claimed, the claim result

    client = make_client(f"hub-{cfg.store_id}", cfg.mqtt)
    outbox = Outbox(conn, client)
    acked: list[int] = []

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        acked.append(mid)
        outbox.on_publish(mid)

    client.on_publish = on_publish
    connect(client, cfg.mqtt)
    try:
        client.loop_stop()  # no network thread: the PUBACKs wait in the socket...
        assert outbox.flush() == 3  # ...while all three rows are written to it
        conn.execute(
            "CREATE TEMP TRIGGER killed BEFORE UPDATE OF sent_at ON outbox "
            "WHEN (SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL) >= 1 "
            "BEGIN SELECT RAISE(ABORT, 'the hub is killed here'); END"
        )
        client.loop_start()  # the three PUBACKs arrive together
        assert wait_for(lambda: len(acked) == 3, 5), acked
        with pytest.raises(sqlite3.IntegrityError, match="killed here"):
            outbox.flush()
        marked = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
        assert marked.fetchone()[0] == 0  # all or nothing: no older row left behind a newer one
        conn.execute("DROP TRIGGER killed")
    finally:
        client.disconnect()
        client.loop_stop()

    # The restart: a new outbox re-sends every unsent row, oldest first.
    client = make_client(f"hub-{cfg.store_id}", cfg.mqtt)
    outbox = Outbox(conn, client)
    client.on_publish = lambda c, u, mid, rc, p: outbox.on_publish(mid)
    connect(client, cfg.mqtt)
    try:
        assert wait_for(lambda: (outbox.flush(), outbox.unsent())[1] == 0, 10)
    finally:
        client.disconnect()
        client.loop_stop()
    row = conn.execute("SELECT state, claimed_by, seq FROM alerts").fetchone()
    retained = _retained_alert(cfg, alert_id)
    assert (
        (retained.state, retained.claimed_by, retained.seq)
        == tuple(row)
        == (
            "claimed",
            "s00",
            row["seq"],
        )
    )
    conn.close()
