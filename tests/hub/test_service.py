"""The hub daemon over a real broker: Mosquitto on 127.0.0.1:1883 and the embedded amqtt one."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hub.faces.gallery import Gallery
from hub.service import HubService
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.face_models import DEFAULT_MODEL
from storesense.mqtt_client import connect, make_client
from storesense.paths import template_key_path
from storesense_tools.embedded_broker import EmbeddedBroker
from storesense_tools.sim_phone import Phone
from tests.consent import consent
from tests.hub.conftest import hub_config, running_hub, unit
from tests.waiting import wait_for as _wait


@pytest.fixture
def cfg(broker_port: int) -> StoreConfig:
    return hub_config(
        broker_port,
        "recognition: {threshold: 0.45, margin: 0.05, min_votes: 2, min_vote_share: 0.6}\n"
        "visits: {cooldown_s: 600, alert_ttl_s: 60}\n",
    )


@pytest.fixture
def hub(cfg: StoreConfig, tmp_path: Path) -> Iterator[HubService]:
    with running_hub(cfg, tmp_path) as service:
        yield service


@pytest.fixture
def camera(cfg: StoreConfig) -> Iterator:
    client = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(client, cfg.mqtt)
    yield client
    client.disconnect()
    client.loop_stop()


def _track(
    customer_vec: np.ndarray,
    *,
    n: int = 3,
    final: bool = False,
    camera_id: str = "door-1",
    track_id: str | None = None,
    noise: float = 0.02,
) -> m.FaceTrack:
    rng = np.random.default_rng(0)
    now = time.time()
    samples = []
    for i in range(n):
        v = customer_vec + rng.normal(scale=noise / np.sqrt(128), size=128).astype(np.float32)
        samples.append(
            m.EmbeddingSample(
                vector=v, quality=0.9, face_px=40, sharpness=100, frontalness=0.95, t=now + i * 0.1
            )
        )
    return m.FaceTrack(
        model=DEFAULT_MODEL,
        camera_id=camera_id,
        track_id=track_id or uuid.uuid4().hex,
        update=0,
        final=final,
        first_usable_at=now,
        samples=samples,
    )


def _publish(client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def _alert_count(hub: HubService) -> int:
    return hub.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]


def test_enrolled_face_track_alerts_every_phone(hub: HubService, camera, cfg: StoreConfig) -> None:
    phones = [Phone(s, hub.topics, cfg.mqtt).start() for s in ("alice", "bob", "carol")]
    try:
        _publish(camera, hub.topics.faces("door-1"), _track(unit(1)).to_bytes())
        for p in phones:
            assert p.wait_for(lambda ph: len(ph.open_alerts()) == 1), p.staff_id
        alert = phones[0].open_alerts()[0]
        assert (alert.customer_id, alert.customer_name) == ("c1", "Ada Lovelace")
        assert alert.greeting == "Ada has just walked in"
    finally:
        for p in phones:
            p.stop()


def test_stranger_track_is_an_unknown_visitor_not_an_alert(hub: HubService, camera) -> None:
    track = _track(unit(99), final=True)
    _publish(camera, hub.topics.faces("door-1"), track.to_bytes())
    assert _wait(lambda: hub.stats.unknown_visitors == 1)
    assert _alert_count(hub) == 0
    # A stranger's embeddings are dropped once matching fails: nothing of them stays in the
    # hub's memory or in its database file (main file or WAL), only the count row.
    assert track.track_id not in hub.recognizer._open
    db_file = Path(hub.conn.execute("PRAGMA database_list").fetchone()[2])
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    for s in track.samples:
        plain = np.asarray(s.vector, dtype="<f4").tobytes()
        assert plain[:32] not in raw and plain[-32:] not in raw
    row = hub.conn.execute("SELECT * FROM unknown_visitors").fetchone()
    assert set(row.keys()) == {"track_id", "camera_id", "seen_at", "best_distance"}


def test_later_messages_of_a_matched_track_keep_the_visit_alive(hub: HubService, camera) -> None:
    track = _track(unit(1))
    _publish(camera, hub.topics.faces("door-1"), track.to_bytes())
    assert _wait(lambda: _alert_count(hub) == 1)
    first_seen = hub.conn.execute("SELECT last_seen_at FROM visits").fetchone()[0]
    time.sleep(0.3)
    final = track.model_copy(update={"update": 1, "final": True, "msg_id": m.new_msg_id()})
    _publish(camera, hub.topics.faces("door-1"), final.to_bytes())
    assert _wait(
        lambda: hub.conn.execute("SELECT last_seen_at FROM visits").fetchone()[0] > first_seen
    ), "the visit's last-seen did not move with the track"
    assert _alert_count(hub) == 1  # still one visit, one alert


def test_duplicate_messages_make_one_alert(hub: HubService, camera) -> None:
    payload = _track(unit(1)).to_bytes()
    for _ in range(3):
        _publish(camera, hub.topics.faces("door-1"), payload)
    # a second track of the same visit (another camera) joins the visit: still one alert
    _publish(camera, hub.topics.faces("door-2"), _track(unit(1), camera_id="door-2").to_bytes())
    assert _wait(lambda: hub.stats.duplicates >= 2 and hub.stats.received["face_track"] >= 4)
    time.sleep(0.3)
    assert _alert_count(hub) == 1
    cams = hub.conn.execute("SELECT cameras FROM visits").fetchone()[0]
    assert json.loads(cams) == ["door-1", "door-2"]


def test_malformed_payloads_are_counted_and_the_hub_keeps_running(hub: HubService, camera) -> None:
    topic = hub.topics.faces("door-1")
    good = json.loads(_track(unit(1)).to_bytes())
    wrong_version = {**good, "v": 2}
    short = json.loads(_track(unit(1)).to_bytes())
    short["samples"][0]["vector"] = short["samples"][0]["vector"][:40]
    nan_vec = np.zeros(128, "<f4")
    nan_vec[3] = np.nan
    with_nan = json.loads(_track(unit(1)).to_bytes())
    import base64

    with_nan["samples"][0]["vector"] = base64.b64encode(nan_vec.tobytes()).decode()
    spoofed = json.loads(_track(unit(1), camera_id="door-9").to_bytes())
    for payload in (
        b"{oops",
        b"\x00\xff",
        json.dumps(wrong_version).encode(),
        json.dumps(short).encode(),
        json.dumps(with_nan).encode(),
        json.dumps(spoofed).encode(),
        b"[]",
    ):
        _publish(camera, topic, payload)
    _publish(camera, hub.topics.claims("alice"), b'{"v": 1, "kind": "claim_request"}')
    assert _wait(lambda: sum(hub.stats.rejected.values()) == 8)
    assert hub.stats.rejected["bad_json"] == 2
    assert hub.stats.rejected["bad_version"] == 1
    assert hub.stats.rejected["bad_schema"] == 4  # short vector, NaN, a list, incomplete claim
    assert hub.stats.rejected["topic_mismatch"] == 1
    # …and a good message afterwards still works
    _publish(camera, topic, json.dumps(good).encode())
    assert _wait(lambda: _alert_count(hub) == 1)


def test_twenty_phones_race_over_mqtt_one_wins_all_told(hub: HubService, camera, cfg) -> None:
    phones = [Phone(f"staff{i:02d}", hub.topics, cfg.mqtt).start() for i in range(20)]
    try:
        _publish(camera, hub.topics.faces("door-1"), _track(unit(2)).to_bytes())
        for p in phones:
            assert p.wait_for(lambda ph: len(ph.open_alerts()) == 1)
        alert_id = phones[0].open_alerts()[0].alert_id
        go = threading.Barrier(20)

        def press(p: Phone) -> None:
            go.wait()
            p.claim(alert_id)

        threads = [threading.Thread(target=press, args=(p,)) for p in phones]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in phones:
            assert p.wait_for(lambda ph: len(ph.results) == 1 and not ph.open_alerts()), p.staff_id
        outcomes = [p.results[0].outcome for p in phones]
        assert outcomes.count("won") == 1
        assert outcomes.count("taken") == 19
        winner = next(p.staff_id for p in phones if p.results[0].outcome == "won")
        assert all(p.alerts[alert_id].alert.claimed_by == winner for p in phones)
        # the winner pressing again is idempotent
        phones[0 if phones[0].staff_id == winner else 1]
        again = next(p for p in phones if p.staff_id == winner)
        again.claim(alert_id)
        assert again.wait_for(lambda ph: len(ph.results) == 2)
        assert again.results[1].outcome == "already_yours"
    finally:
        for p in phones:
            p.stop()


def test_a_phone_connecting_late_sees_the_current_state(hub: HubService, camera, cfg) -> None:
    alice = Phone("alice", hub.topics, cfg.mqtt).start()
    try:
        _publish(camera, hub.topics.faces("door-1"), _track(unit(1)).to_bytes())
        assert alice.wait_for(lambda ph: len(ph.open_alerts()) == 1)
        alert_id = alice.open_alerts()[0].alert_id
        alice.claim(alert_id)
        assert alice.wait_for(lambda ph: not ph.open_alerts())
    finally:
        alice.stop()
    late = Phone("dave", hub.topics, cfg.mqtt).start()
    try:
        assert late.wait_for(lambda ph: alert_id in ph.alerts)
        assert late.alerts[alert_id].alert.state == "claimed"
        assert late.open_alerts() == []
    finally:
        late.stop()


def test_claims_from_someone_not_on_the_staff_list_are_rejected(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        cfg = parse_config(f"store_id: s1\nmqtt: {{port: {broker.port}}}\nstaff: [alice]\n")
        with HubService(cfg, tmp_path) as hub:
            intruder = Phone("mallory", hub.topics, cfg.mqtt).start()
            try:
                intruder.claim("a" * 32)
                assert _wait(lambda: hub.stats.rejected["unknown_staff"] == 1)
                assert intruder.results == []
            finally:
                intruder.stop()


def test_heartbeats_are_recorded_and_a_silent_camera_is_marked_down(tmp_path: Path, capsys) -> None:
    from hub.alerts import node_health
    from hub.store import db
    from storesense_tools.cli import main

    with EmbeddedBroker() as broker:
        cfg = parse_config(f"store_id: s1\nmqtt: {{port: {broker.port}}}\n")
        with HubService(cfg, tmp_path) as hub:
            cam = make_client("cam-door-1", cfg.mqtt)
            connect(cam, cfg.mqtt)
            status = m.EdgeStatus(
                camera_id="door-1",
                role="entrance",
                online=True,
                fps=7.5,
                frames=300,
                queue_depth=2,
                reconnects=1,
                rejections={"blurry": 4},
            )
            _publish(cam, hub.topics.edge_status("door-1"), status.to_bytes())
            spoof = m.EdgeStatus(camera_id="door-2", role="entrance", online=True)
            _publish(cam, hub.topics.edge_status("door-1"), spoof.to_bytes())
            assert _wait(
                lambda: (
                    hub.stats.received["edge_status"] == 1
                    and hub.stats.rejected["topic_mismatch"] == 1
                )
            )
            cam.disconnect()
            cam.loop_stop()
            row = hub.conn.execute("SELECT * FROM nodes").fetchone()
            assert (row["camera_id"], row["state"], row["fps"], row["queue_depth"]) == (
                "door-1",
                "up",
                7.5,
                2,
            )
        # hub stopped; the camera has been silent: a later sweep marks it down
        conn = db.migrate_db(tmp_path / "hub.sqlite3")
        assert node_health.mark_silent(conn, hub.topics, time.time() + 60) == ["door-1"]
        assert node_health.mark_silent(conn, hub.topics, time.time() + 90) == []  # once
    assert main(["--home", str(tmp_path), "status"]) == 0
    out = capsys.readouterr().out
    assert "door-1" in out and "down" in out and "7.5" in out


def _unknown_visitor(conn, track_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM unknown_visitors WHERE track_id=?", (track_id,)).fetchone()
    return row is not None


def test_the_running_hub_follows_enrolment_and_erasure_without_a_restart(
    hub: HubService, camera, cfg: StoreConfig
) -> None:
    """``storesense enroll`` / ``erase`` write from another process while the hub runs; the
    matcher must reload from the gallery version, or a new customer is not greeted until a
    restart and an erased one is still recognised (the erasure promise broken)."""
    from hub.privacy.erasure import erase_customer
    from hub.store import db
    from storesense.paths import hub_db_path

    topic = hub.topics.faces("door-1")
    cli = db.open_db(hub_db_path(hub.home))  # what the CLI opens: its own connection
    alice = Phone("alice", hub.topics, cfg.mqtt).start()
    try:
        before = _track(unit(3), final=True)
        _publish(camera, topic, before.to_bytes())
        assert _wait(lambda: _unknown_visitor(cli, before.track_id))  # not enrolled yet

        gallery = Gallery.open(cli, template_key_path(hub.home))
        gallery.enrol("c3", "Katherine Johnson", consent("consent-ref-3"), [(unit(3), 0.9, "t")])
        _publish(camera, topic, _track(unit(3)).to_bytes())
        assert alice.wait_for(lambda ph: len(ph.open_alerts()) == 1)
        alert = alice.open_alerts()[0]
        assert (alert.customer_id, alert.customer_name) == ("c3", "Katherine Johnson")

        assert erase_customer(cli, "c3", actor="test", reason="erasure request").profile
        after = _track(unit(3), final=True)
        _publish(camera, topic, after.to_bytes())
        assert _wait(lambda: _unknown_visitor(cli, after.track_id))  # a stranger again
        for table in ("visits", "alerts"):
            n = cli.execute(f"SELECT count(*) FROM {table} WHERE customer_id='c3'").fetchone()[0]
            assert n == 0, table
        # the enrolled customers of the start are still matched by the same running hub
        _publish(camera, topic, _track(unit(1)).to_bytes())
        assert alice.wait_for(lambda ph: any(a.customer_id == "c1" for a in ph.open_alerts()))
    finally:
        alice.stop()
        cli.close()


def _watch_node_health(cfg: StoreConfig, topic: str, name: str) -> tuple[object, list]:
    """An ops client subscribed to ``hub/nodes`` (SUBACK received); collects (retain, nodes)."""
    got: list[tuple[bool, dict[str, str]]] = []
    subscribed = threading.Event()
    client = make_client(f"{name}-{cfg.store_id}", cfg.mqtt)
    client.on_message = lambda c, u, msg: got.append(
        (bool(msg.retain), m.decode(msg.payload, m.NodeHealth).nodes)
    )
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
    connect(client, cfg.mqtt)
    client.subscribe(topic, qos=1)
    assert subscribed.wait(5), "no SUBACK for hub/nodes"
    return client, got


def test_node_health_is_published_retained_with_a_silent_camera_down(
    hub: HubService, camera, cfg: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ops dashboards read on ``hub/nodes`` (docs/mqtt.md): up / offline / down.

    The silence threshold is shortened from 20 s to 1.5 s. It is a default argument of
    ``mark_silent``, so the hub's call is wrapped with the shorter value; the sweep, the state
    change and the publication are the real ones.
    """
    import functools

    from hub.alerts import node_health

    monkeypatch.setattr(
        node_health, "mark_silent", functools.partial(node_health.mark_silent, silent_after_s=1.5)
    )
    ops, got = _watch_node_health(cfg, hub.topics.node_health, "ops")
    stop_beating = threading.Event()

    def heartbeat(camera_id: str, online: bool = True) -> None:
        status = m.EdgeStatus(camera_id=camera_id, role="entrance", online=online)
        _publish(camera, hub.topics.edge_status(camera_id), status.to_bytes())

    def keep_door_1_alive() -> None:
        while not stop_beating.wait(0.2):
            heartbeat("door-1")

    beater = threading.Thread(target=keep_door_1_alive, daemon=True)
    try:
        for cam in ("door-1", "door-2", "door-3"):
            heartbeat(cam)
        heartbeat("door-3", online=False)  # says goodbye: offline, not down
        beater.start()
        assert _wait(lambda: {"door-1": "up", "door-2": "up", "door-3": "up"} in _nodes(got))
        expected = {"door-1": "up", "door-2": "down", "door-3": "offline"}
        assert _wait(lambda: expected in _nodes(got)), got
    finally:
        stop_beating.set()
        beater.join(timeout=5)
        ops.disconnect()
        ops.loop_stop()
    # retained: a dashboard connecting later gets the current picture at once
    viewer, late = _watch_node_health(cfg, hub.topics.node_health, "ops-late")
    try:
        assert _wait(lambda: bool(late))
        retained, nodes = late[0]
        assert retained
        assert (nodes["door-2"], nodes["door-3"]) == ("down", "offline")
    finally:
        viewer.disconnect()
        viewer.loop_stop()


def _nodes(got: list[tuple[bool, dict[str, str]]]) -> list[dict[str, str]]:
    return [nodes for _, nodes in got]


def test_malformed_payloads_are_logged_with_topic_and_reason(
    hub: HubService, camera, caplog: pytest.LogCaptureFixture
) -> None:
    """A counter says *that* something is wrong; the log line says where and what, so an
    installer can find the misconfigured camera. It names the problem, never the embedding."""
    import logging

    caplog.set_level(logging.WARNING, logger="hub.service")
    topic = hub.topics.faces("door-1")
    good = json.loads(_track(unit(1)).to_bytes())
    short = json.loads(_track(unit(1)).to_bytes())
    short["samples"][0]["vector"] = short["samples"][0]["vector"][:40]
    spoofed = json.loads(_track(unit(1), camera_id="door-9").to_bytes())
    sent = [
        (b"{oops", "bad_json"),
        (json.dumps({**good, "v": 2}).encode(), "bad_version"),
        (json.dumps(short).encode(), "bad_schema"),
        (json.dumps(spoofed).encode(), "topic_mismatch"),
    ]
    for payload, _ in sent:
        _publish(camera, topic, payload)

    def rejections() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "hub.service"
            and r.levelno == logging.WARNING
            and r.getMessage().startswith("rejected message")
        ]

    assert _wait(lambda: len(rejections()) == len(sent)), rejections()
    for line, (_, reason) in zip(rejections(), sent, strict=True):  # one line each, in order
        assert line.startswith(f"rejected message on {topic} ({reason}): "), line
        assert len(line) < 400, line  # a summary, not the payload
    vectors = [s["vector"] for p in (good, short, spoofed) for s in p["samples"]]
    assert not any(v in caplog.text for v in vectors)
