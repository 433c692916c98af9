"""One embedding model per gallery: the hub never compares a dlib vector with an SFace one.

Through the real hub daemon and Mosquitto: a track of another model is refused (counted,
logged, no alert, no visit), a track of the hub's model is matched; the gallery loads only the
templates of the hub's model and says in the log who needs re-enrolment; capping templates is
per model; a manager's threshold is per model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.faces import threshold
from hub.faces.gallery import Gallery
from hub.service import HubService
from storesense import messages as m
from storesense.config import StoreConfig
from storesense.face_models import DLIB_RESNET, SFACE
from storesense.mqtt_client import connect, make_client
from storesense.paths import template_key_path
from tests.hub.conftest import consent, hub_config, running_hub, unit
from tests.hub.faces.test_recognizer import Door
from tests.waiting import wait_for


@pytest.fixture
def cfg(broker_port: int) -> StoreConfig:
    return hub_config(broker_port, f"recognition: {{model: {SFACE}}}\n")


@pytest.fixture
def hub(cfg: StoreConfig, tmp_path: Path) -> Iterator[HubService]:
    with running_hub(cfg, tmp_path, customers=()) as service:
        gallery = Gallery.open(service.conn, template_key_path(service.home))
        gallery.enrol("c1", "Ada", consent("ref-1"), [(unit(1), 0.9, "t")], model=SFACE)
        gallery.enrol("c9", "Old", consent("ref-9"), [(unit(1), 0.9, "t")], model=DLIB_RESNET)
        yield service


def _send(cfg: StoreConfig, hub: HubService, msg: m.FaceTrack) -> None:
    client = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(client, cfg.mqtt)
    try:
        client.publish(hub.topics.faces("door-1"), msg.to_bytes(), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _track(model: str) -> m.FaceTrack:
    door = Door()
    door.send(unit(1), unit(1))
    return door.send(final=True).model_copy(update={"model": model})


def test_the_hub_defaults_to_the_models_own_thresholds(cfg: StoreConfig) -> None:
    assert cfg.recognition.model == SFACE
    assert cfg.recognition.threshold == threshold_default()


def threshold_default() -> float:
    from storesense.face_models import DECISION_DEFAULTS

    return DECISION_DEFAULTS[SFACE].threshold


def test_a_track_of_another_model_is_refused_and_counted(
    cfg: StoreConfig, hub: HubService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hub.service")
    _send(cfg, hub, _track(DLIB_RESNET))
    assert wait_for(lambda: hub.stats.rejected["face_model_mismatch"] == 1)
    assert "sends dlib-resnet-v1 vectors; this hub matches sface" in caplog.text
    assert hub.stats.alerts == 0 and hub.stats.unknown_visitors == 0
    _send(cfg, hub, _track(SFACE))  # the same vectors, named as the hub's model: matched
    assert wait_for(lambda: hub.stats.alerts == 1)
    row = hub.conn.execute("SELECT customer_id FROM alerts").fetchone()
    assert row[0] == "c1"  # never c9, whose only template is a dlib one


def test_the_gallery_loads_one_model_and_names_who_needs_re_enrolment(
    hub: HubService, caplog: pytest.LogCaptureFixture
) -> None:
    gallery = Gallery.open(hub.conn, template_key_path(hub.home))
    caplog.set_level(logging.ERROR, logger="hub.faces.gallery")
    assert gallery.load_matrix(SFACE).customer_ids == ["c1"]
    assert "1 enrolled customer(s) have templates of another face model only" in caplog.text
    assert gallery.load_matrix(DLIB_RESNET).customer_ids == ["c9"]


def test_capping_and_counting_templates_is_per_model(hub: HubService) -> None:
    gallery = Gallery.open(hub.conn, template_key_path(hub.home))
    done = gallery.enrol(
        "c9", "Old", consent("ref-9b"), [(unit(k), 0.5, f"s{k}") for k in (3, 4)],
        model=SFACE, max_templates=1,
    )  # fmt: skip
    assert done.total == 1  # the SFace ones; the dlib template is neither counted nor capped
    rows = hub.conn.execute(
        "SELECT model, count(*) FROM templates WHERE customer_id='c9' GROUP BY model ORDER BY 1"
    ).fetchall()
    assert [tuple(r) for r in rows] == [(DLIB_RESNET, 1), (SFACE, 1)]


def test_an_applied_threshold_belongs_to_its_model(hub: HubService) -> None:
    threshold.apply(
        hub.conn, threshold=0.40, configured=0.444, staff_id="maria", reason="tighter",
        evidence={}, actor="test", model=DLIB_RESNET,
    )  # fmt: skip
    assert threshold.effective_threshold(hub.conn, 0.444, DLIB_RESNET) == 0.40
    assert threshold.effective_threshold(hub.conn, 1.0, SFACE) == 1.0  # not another's number
