"""Single-frame alerts through the real hub daemon and broker: one alert, never a flip.

The door sends a track's first usable frame alone; the hub alerts on it when it is very
confident. Later frames of that track that say "someone else" must neither raise a second
alert nor move the visit to another customer — checked in the hub's own database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hub.service import HubService
from storesense import messages as m
from storesense.config import StoreConfig
from storesense.mqtt_client import connect, make_client
from tests.hub.conftest import hub_config, running_hub, unit
from tests.hub.faces.test_recognizer import Door, _at
from tests.waiting import wait_for


@pytest.fixture
def cfg(broker_port: int) -> StoreConfig:
    return hub_config(
        broker_port,
        "recognition: {threshold: 0.46, margin: 0.08, single_frame_threshold: 0.36, "
        "single_frame_margin: 0.12}\nvisits: {cooldown_s: 600, alert_ttl_s: 60}\n",
    )


@pytest.fixture
def hub(cfg: StoreConfig, tmp_path: Path) -> Iterator[HubService]:
    with running_hub(cfg, tmp_path) as service:
        yield service


@pytest.fixture
def send(cfg: StoreConfig, hub: HubService) -> Iterator:
    client = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(client, cfg.mqtt)

    def publish(msg: m.FaceTrack) -> None:
        client.publish(hub.topics.faces("door-1"), msg.to_bytes(), qos=1).wait_for_publish(5)

    yield publish
    client.disconnect()
    client.loop_stop()


def _alerts(hub: HubService) -> list[tuple[str, str]]:
    rows = hub.conn.execute("SELECT alert_id, customer_id FROM alerts").fetchall()
    return [(r[0], r[1]) for r in rows]


def _received(hub: HubService, n: int) -> bool:
    return hub.stats.received["face_track"] >= n


def test_a_confident_first_frame_alerts_and_later_disagreement_changes_nothing(
    hub: HubService, send
) -> None:
    door = Door()
    t0 = time.monotonic()
    send(door.send(_at(unit(1), 0.25, 1)))  # the first usable frame, alone
    assert wait_for(lambda: len(_alerts(hub)) == 1)
    print(f"one-frame message → alert committed in {(time.monotonic() - t0) * 1000:.0f} ms")
    [(alert_id, customer)] = _alerts(hub)
    assert customer == "c1"
    send(door.send(_at(unit(2), 0.2, 2), _at(unit(2), 0.2, 3)))  # now clearly Grace
    send(door.send(final=True))
    assert wait_for(lambda: hub.recognizer.counters["single_frame_contradicted"] == 1)
    assert _alerts(hub) == [(alert_id, "c1")]  # no second alert, no flip
    visits = hub.conn.execute("SELECT customer_id FROM visits").fetchall()
    assert [v[0] for v in visits] == ["c1"]


def test_a_borderline_first_frame_waits_for_the_second(hub: HubService, send) -> None:
    door = Door()
    send(door.send(_at(unit(1), 0.42, 1)))
    assert wait_for(lambda: _received(hub, 1))
    time.sleep(0.2)
    assert _alerts(hub) == []  # not confident enough alone
    send(door.send(_at(unit(1), 0.42, 2)))
    assert wait_for(lambda: len(_alerts(hub)) == 1)
    assert _alerts(hub)[0][1] == "c1"
    assert hub.recognizer.counters["match_agreement"] == 1


def test_a_stranger_frame_alone_is_no_alert(hub: HubService, send) -> None:
    door = Door()
    stranger = unit(77)
    send(door.send(stranger))
    send(door.send(np.asarray(_at(stranger, 0.1, 5)), final=True))
    assert wait_for(lambda: hub.stats.unknown_visitors == 1)
    assert _alerts(hub) == []
