"""Claim races while the hub and the broker are killed with SIGKILL (issue 15, part 6).

The real hub daemon (``storesense hub run``, a process of its own) and a real Mosquitto with
persistence (saved every few seconds, as the shipped broker config does every 60 s) serve
claimers that press Accept for every alert, each press a ``claim`` request with its deadline,
pressing again when no answer comes (what a phone's user does). At random moments the hub is
killed with ``kill -9`` and restarted, and so is the broker (which then restarts from a
persistence file seconds old, or from none).

Afterwards: one winner per alert, and every "won" answer any claimer got for an alert names
the one staff member the table names; every "taken" answer names them too; the audit log has
one claim per alert and verifies; and what a phone sees, both one that stayed connected
through everything (keeping states by the sequence rule) and one that connects at the end
(the broker's retained messages), equals the database. ``run_races`` is shared with
``bench/claim_race_kill.py``, which runs it larger and prints the counts.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from hub.privacy import audit
from hub.staff.accounts import Staff, add_staff, create_session
from hub.store import db
from storesense import messages as m
from storesense import rpc
from storesense.alert_state import AlertBook
from storesense.config import StoreConfig, parse_config
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from storesense.topics import Topics
from storesense_tools.embedded_broker import free_port
from tests.hub.conftest import open_alerts
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
PRESS_TIMEOUT_S = 6.0  # each press's deadline
REPRESS_S = 8.0  # unanswered this long, the claimer presses again


@dataclass
class Counts:
    alerts: int
    claimers: int
    presses: int = 0
    answered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    hub_kills: int = 0
    broker_kills: int = 0
    hub_exits: int = 0  # ends not by our kill (a start while the broker was down), restarted
    took_s: float = 0.0
    mismatches: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.alerts} alerts x {self.claimers} claimers: {self.presses} presses, "
            f"{self.answered} answered ({dict(self.outcomes)}), {self.presses - self.answered} "
            f"unanswered and pressed again; hub kill -9 x{self.hub_kills}, broker kill -9 "
            f"x{self.broker_kills} (hub's own exits, restarted: {self.hub_exits}); "
            f"{self.took_s:.1f} s; {len(self.mismatches)} mismatches"
        )


class _Broker:
    """Mosquitto with persistence on a fixed port, killable and restartable."""

    def __init__(self, folder: Path, port: int, autosave_s: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            f"persistence true\npersistence_location {folder}/\n"
            f"autosave_interval {autosave_s}\nmax_queued_messages 0\n"
        )
        self.proc = MosquittoProcess(conf, port)

    def start(self) -> None:
        self.proc.start()

    def kill9(self) -> None:
        assert self.proc.proc is not None
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait(timeout=10)
        self.proc.proc = None

    def stop(self) -> None:
        self.proc.stop()


class _Hub:
    """``storesense hub run`` as its own process, restarted when it ends as systemd's
    ``Restart=on-failure`` does: a hub started while the broker is down exits (it cannot
    connect) and comes back once the broker is there."""

    def __init__(self, home: Path, conf: Path, restart_s: float = 0.5) -> None:
        self.home, self.conf, self.restart_s = home, conf, restart_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []  # the exit codes of every end, kills included (-9)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watch = threading.Thread(target=self._supervise, daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-m", "storesense_tools.cli", "--home", str(self.home),
                "--config", str(self.conf), "hub", "run"]  # fmt: skip
        log = (self.home.parent / f"hub-{self.starts}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                assert self.proc is not None
                code = self.proc.poll()
                if code is None:
                    continue
                self.exits.append(code)
            if self._stopping.wait(self.restart_s):
                return
            with self._lock:
                self._spawn()

    def _alive(self) -> bool:
        with self._lock:
            return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9`` of the running hub (waiting for the supervisor's restart if it is down)."""
        assert wait_for(self._alive, 60), "the hub did not come back within 60 s"
        with self._lock:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join(10)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)


class _Claimer(threading.Thread):
    """One phone's presses: Accept on each alert in turn until some answer comes."""

    def __init__(
        self,
        cfg: StoreConfig,
        token: str,
        csrf: str,
        staff_id: str,
        order: list[str],
        pace_s: float,
    ) -> None:
        super().__init__(daemon=True)
        self.pace = random.Random(staff_id)
        self.pace_s = pace_s  # mean pause between two alerts: the races span the kills
        self.token, self.csrf, self.staff_id, self.order = token, csrf, staff_id, order
        self.topics = Topics(cfg.store_id)
        self.web_id = f"web-{uuid.uuid4().hex[:10]}"
        self.answers: dict[str, rpc.ClaimAnswer] = {}  # alert id -> the answer it got
        self.won_replies: dict[str, list[str]] = {}  # alert id -> outcomes of every reply
        self.presses = 0
        self._got: dict[str, rpc.Reply] = {}
        self._cv = threading.Condition()
        self.client = make_client(self.web_id, cfg.mqtt, persistent=False)
        self.client.on_message = self._on_reply
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            self.topics.rpc_reply(self.web_id), 1
        )
        connect(self.client, cfg.mqtt)

    def _on_reply(self, c: object, u: object, msg: object) -> None:
        reply = rpc.decode_reply(bytes(msg.payload))  # type: ignore[attr-defined]
        with self._cv:
            self._got[reply.request_id] = reply
            self._cv.notify_all()

    def run(self) -> None:
        for alert_id in self.order:
            time.sleep(self.pace.uniform(0, 2 * self.pace_s))
            while alert_id not in self.answers:
                args = {"token": self.token, "csrf": self.csrf, "alert_id": alert_id,
                        "action": "claim"}  # fmt: skip
                req = rpc.new_request("claim", args, timeout_s=PRESS_TIMEOUT_S)
                self.presses += 1
                self.client.publish(self.topics.rpc_request(self.web_id), req.to_bytes(), qos=1)
                rid = req.request_id
                with self._cv:
                    self._cv.wait_for(lambda: rid in self._got, REPRESS_S)  # noqa: B023
                    reply = self._got.get(rid)
                if reply is None or reply.status != 200:
                    continue  # no answer (hub or broker down) or "too late": press again
                self.answers[alert_id] = rpc.ClaimAnswer.model_validate(reply.result)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _phone(cfg: StoreConfig) -> tuple[AlertBook, threading.Lock, object]:
    """A phone's view: every retained and live alert state, kept by the sequence rule."""
    book, lock = AlertBook(), threading.Lock()
    topics = Topics(cfg.store_id)

    def on_alert(c: object, u: object, msg: object) -> None:
        payload = bytes(msg.payload)  # type: ignore[attr-defined]
        if payload:
            with lock:
                book.apply(m.decode(payload, m.Alert))

    client = make_client(f"phone-{uuid.uuid4().hex[:8]}", cfg.mqtt, persistent=False)
    client.on_message = on_alert
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.all_alerts, 1)
    connect(client, cfg.mqtt)
    return book, lock, client


def _setup(home: Path, cfg: StoreConfig, n_alerts: int, n_claimers: int) -> tuple[list, list]:
    """Alerts open and staff logged in, written before the hub process starts."""
    conn = db.migrate_db(hub_db_path(home))
    topics = Topics(cfg.store_id)
    ids = open_alerts(conn, home, topics, n_alerts)
    sessions = []
    for i in range(n_claimers):
        sid = f"s{i:02d}"
        add_staff(conn, sid, f"Staff {i}", "salesperson", "correct horse battery")
        token, session = create_session(conn, Staff(sid, f"Staff {i}", "salesperson"))
        sessions.append((sid, token, session.csrf_token))
    conn.close()
    return ids, sessions


def run_races(
    folder: Path,
    *,
    n_alerts: int,
    n_claimers: int,
    hub_kills: int,
    broker_kills: int,
    autosave_s: int = 5,
    pace_s: float = 0.3,
    seed: int = 15,
) -> Counts:
    """Races with kills at random moments; returns the counts and every mismatch found."""
    rng = random.Random(seed)
    port = free_port()
    store = f"k{uuid.uuid4().hex[:8]}"
    cfg = parse_config(
        f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 5}}\n"
        "visits: {alert_ttl_s: 3600, cooldown_s: 0, claim_idle_s: 3600}\n"
    )
    conf = folder / "store.yaml"
    conf.write_text(
        f"store_id: {store}\nmqtt: {{port: {port}, keepalive_s: 5}}\n"
        "visits: {alert_ttl_s: 3600, cooldown_s: 0, claim_idle_s: 3600}\n"
    )
    home = folder / "home"
    home.mkdir()
    ids, sessions = _setup(home, cfg, n_alerts, n_claimers)
    broker = _Broker(folder / "broker", port, autosave_s)
    hub = _Hub(home, conf)
    counts = Counts(n_alerts, n_claimers)
    broker.start()
    hub.start()
    claimers: list[_Claimer] = []
    phone_client = None
    try:
        book, book_lock, phone_client = _phone(cfg)
        assert wait_for(lambda: len(book.alerts) == n_alerts, 60), "alerts never shown open"
        for sid, token, csrf in sessions:
            shift = rng.randrange(3)
            claimers.append(_Claimer(cfg, token, csrf, sid, ids[shift:] + ids[:shift], pace_s))
        t0 = time.monotonic()
        for c in claimers:
            c.start()
        kills = ["hub"] * hub_kills + ["broker"] * broker_kills
        rng.shuffle(kills)
        for what in kills:
            time.sleep(rng.uniform(1.0, 4.0))
            if all(not c.is_alive() for c in claimers):
                break
            if what == "hub":
                hub.kill9()  # the supervisor restarts it
                counts.hub_kills += 1
            else:
                broker.kill9()
                counts.broker_kills += 1
                time.sleep(rng.uniform(0.2, 1.5))
                broker.start()
        for c in claimers:
            c.join(600)
            assert not c.is_alive(), f"{c.staff_id} still pressing after 10 min"
        counts.took_s = time.monotonic() - t0
        counts.hub_exits = len([c for c in hub.exits if c != -signal.SIGKILL])
        counts.presses = sum(c.presses for c in claimers)
        counts.answered = sum(len(c.answers) for c in claimers)
        for c in claimers:
            counts.outcomes.update(a.outcome for a in c.answers.values())
        _compare(cfg, home, ids, claimers, book, book_lock, counts)
    finally:
        for c in claimers:
            c.close()
        if phone_client is not None:
            phone_client.disconnect()  # type: ignore[attr-defined]
            phone_client.loop_stop()  # type: ignore[attr-defined]
        hub.stop()
        broker.stop()
    return counts


def _compare(
    cfg: StoreConfig,
    home: Path,
    ids: list[str],
    claimers: list[_Claimer],
    book: AlertBook,
    book_lock: threading.Lock,
    counts: Counts,
) -> None:
    """Every check after the races; a failed one is a line in ``counts.mismatches``."""
    bad = counts.mismatches
    conn = db.connect(hub_db_path(home))
    try:
        rows = {
            r["alert_id"]: r
            for r in conn.execute("SELECT alert_id, state, claimed_by, seq FROM alerts")
        }
        if set(rows) != set(ids):
            bad.append(f"alert rows {len(rows)} != {len(ids)}")
        for c in claimers:
            for alert_id, answer in c.answers.items():
                owner = rows[alert_id]["claimed_by"]
                if answer.outcome in ("won", "already_yours") and c.staff_id != owner:
                    bad.append(f"{c.staff_id} told {answer.outcome} for {alert_id} of {owner}")
                if answer.outcome == "taken" and answer.claimed_by != owner:
                    bad.append(f"{c.staff_id} told taken by {answer.claimed_by}, table {owner}")
                if answer.outcome not in ("won", "already_yours", "taken"):
                    bad.append(f"{c.staff_id} got {answer.outcome} for {alert_id}")
        for alert_id, row in rows.items():
            if row["state"] != "claimed" or row["claimed_by"] is None:
                bad.append(f"{alert_id} is {row['state']} in the table")
        claims = conn.execute(
            "SELECT actor, detail FROM audit WHERE action='claim' ORDER BY audit_id"
        ).fetchall()
        per_alert = Counter(r["detail"].removeprefix("claimed alert ") for r in claims)
        if sorted(per_alert) != sorted(ids) or set(per_alert.values()) != {1}:
            bad.append(f"audit claims per alert {Counter(per_alert.values())}")
        if not audit.verify(conn).ok:
            bad.append("the audit chain does not verify")
    finally:
        conn.close()

    def state(a: m.Alert | None) -> tuple[object, ...]:
        return (None,) if a is None else (a.state, a.claimed_by, a.seq)

    def table(alert_id: str) -> tuple[object, ...]:
        r = rows[alert_id]
        return (r["state"], r["claimed_by"], r["seq"])

    def phone_agrees(b: AlertBook, lock: threading.Lock) -> bool:
        with lock:
            return all(state(b.get(a)) == table(a) for a in ids)

    # the phone that stayed connected, and one connecting now (the broker's retained states)
    late, late_lock, late_client = _phone(cfg)
    try:
        for name, b, lock in (("connected phone", book, book_lock), ("new phone", late, late_lock)):
            if not wait_for(partial(phone_agrees, b, lock), 30):
                with lock:
                    off = [a for a in ids if state(b.get(a)) != table(a)]
                first = off[0]
                bad.append(
                    f"{name}: {len(off)} alerts differ, e.g. {first} "
                    f"{state(b.get(first))} vs the table's {table(first)}"
                )
    finally:
        late_client.disconnect()  # type: ignore[attr-defined]
        late_client.loop_stop()  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_claims_stay_consistent_when_the_hub_and_the_broker_are_killed(tmp_path: Path) -> None:
    require_mosquitto()
    counts = run_races(tmp_path, n_alerts=60, n_claimers=8, hub_kills=2, broker_kills=2)
    print("\n" + counts.line())
    assert counts.hub_kills == 2 and counts.broker_kills == 2, counts.line()
    assert counts.answered == 60 * 8
    # one claimer per alert was told it has the customer (a lost "won" reply: "already yours")
    assert counts.outcomes["won"] + counts.outcomes["already_yours"] == 60, counts.line()
    assert not counts.mismatches, "\n".join(counts.mismatches)
