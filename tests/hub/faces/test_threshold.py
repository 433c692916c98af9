"""The store's applied match threshold (hub/faces/threshold.py): stored in the face room,
audited, and used by the running hub's recognizer (issue 13, item 6)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hub.faces import threshold
from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.service import HubService
from hub.store import db
from storesense import messages as m
from storesense.config import RecognitionConfig, StoreConfig
from storesense.face_models import DEFAULT_MODEL, DLIB_RESNET
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from storesense_tools.sim_phone import Phone
from tests.hub.conftest import MOSQUITTO, hub_config, running_hub, unit
from tests.mosquitto_proc import require_mosquitto
from tests.waiting import wait_for


def test_apply_stores_audits_and_takes_precedence_over_the_config(gallery: Gallery) -> None:
    conn = gallery.conn
    assert threshold.current(conn, DLIB_RESNET) is None
    assert threshold.effective_threshold(conn, 0.46, DLIB_RESNET) == 0.46
    base = RecognitionConfig(model=DLIB_RESNET, threshold=0.46, margin=0.05)  # dlib distances
    assert threshold.recognition_config(conn, base) is base
    after = threshold.apply(
        conn, threshold=0.41, configured=0.46, staff_id="mia", reason="3 false matches",
        evidence={"reports": 3}, actor="ops", model=DLIB_RESNET,
    )  # fmt: skip
    assert after == 0.41 and threshold.effective_threshold(conn, 0.46, DLIB_RESNET) == 0.41
    rc = threshold.recognition_config(conn, base)
    assert (rc.threshold, rc.margin) == (0.41, 0.05)  # the margin stays
    single = getattr(base, "single_frame_threshold", None)
    if single is not None:  # the one-confident-frame path tightens in proportion
        assert rc.single_frame_threshold == pytest.approx(single * 0.41 / 0.46)
    setting = threshold.current(conn, DLIB_RESNET)
    assert setting is not None and (setting.previous, setting.staff_id) == (0.46, "mia")
    assert setting.evidence == {"reports": 3}
    row = conn.execute(
        "SELECT actor, action, detail FROM audit ORDER BY audit_id DESC LIMIT 1"
    ).fetchone()
    assert (row[0], row[1]) == ("ops", threshold.APPLY_THRESHOLD)
    assert "0.460 -> 0.410 (tighter" in row[2] and "manager mia" in row[2]
    # back to the config's value, also audited
    assert threshold.apply(
        conn, threshold=None, configured=0.46, staff_id="mia", reason="reset", evidence={},
        actor="ops",
    ) == 0.46  # fmt: skip
    assert threshold.effective_threshold(conn, 0.46) == 0.46
    assert audit.verify(conn).ok


@pytest.mark.parametrize("bad", [0.0, -0.1, 2.0, 3.5])
def test_out_of_range_thresholds_are_refused(gallery: Gallery, bad: float) -> None:
    with pytest.raises(ValueError, match="out of range"):
        threshold.apply(
            gallery.conn, threshold=bad, configured=0.46, staff_id="mia", reason="x",
            evidence={}, actor="ops",
        )  # fmt: skip
    assert threshold.current(gallery.conn) is None


def _at_distance(v: np.ndarray, d: float, seed: int) -> np.ndarray:
    """A unit vector exactly ``d`` (Euclidean) from the unit vector ``v``.

    ``seed`` must differ from the one that drew ``v`` (``unit(seed)``): the same seed draws the
    same direction, whose perpendicular part is then float32 noise, not a direction."""
    u = np.random.default_rng(seed).normal(size=128)
    u -= (u @ v) * v
    u /= np.linalg.norm(u)
    theta = 2 * np.arcsin(d / 2)
    return (np.cos(theta) * v + np.sin(theta) * u).astype(np.float32)


def _track(vec: np.ndarray) -> m.FaceTrack:
    now = time.time()
    samples = [
        m.EmbeddingSample(vector=vec, quality=0.9, face_px=60, sharpness=100, frontalness=0.95,
                          t=now + i * 0.1)
        for i in range(3)
    ]  # fmt: skip
    return m.FaceTrack(
        model=DEFAULT_MODEL,camera_id="door-1", track_id=uuid.uuid4().hex, update=0, final=True,
                       first_usable_at=now, samples=samples)  # fmt: skip


@pytest.fixture
def cfg() -> StoreConfig:
    require_mosquitto()
    return hub_config(
        MOSQUITTO[1],
        "recognition: {threshold: 0.46, margin: 0.05, min_votes: 2, min_vote_share: 0.6}\n",
    )


@pytest.fixture
def hub(cfg: StoreConfig, tmp_path: Path) -> Iterator[HubService]:
    customers = [(f"c{i}", f"Customer {i}", f"f-{i}", i) for i in (1, 2, 3)]
    with running_hub(cfg, tmp_path, customers) as service:
        yield service


def test_the_running_hub_matches_with_the_applied_threshold(
    hub: HubService, cfg: StoreConfig
) -> None:
    """A face 0.43 from a customer alerts at the config's 0.46; once a manager applied 0.40
    the same distance to another customer is an unknown visitor: the override took effect in
    the running hub, without a restart. Resetting brings the config's value back."""
    camera = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(camera, cfg.mqtt)
    phone = Phone("alice", hub.topics, cfg.mqtt).start()
    manager_cli = db.connect(hub_db_path(hub.home))  # what `faces review --apply` opens
    try:

        def walk_in(customer: int) -> None:
            msg = _track(_at_distance(unit(customer), 0.43, seed=1000 + customer))
            camera.publish(hub.topics.faces("door-1"), msg.to_bytes(), qos=1).wait_for_publish(5)

        walk_in(1)
        assert phone.wait_for(lambda p: {a.customer_id for a in p.open_alerts()} == {"c1"})
        threshold.apply(
            manager_cli, threshold=0.40, configured=0.46, staff_id="mia", reason="review",
            evidence={}, actor="test",
        )  # fmt: skip
        unknown_before = hub.stats.unknown_visitors
        walk_in(2)
        assert wait_for(lambda: hub.stats.unknown_visitors == unknown_before + 1, 10)
        assert {a.customer_id for a in phone.open_alerts()} == {"c1"}
        threshold.apply(
            manager_cli, threshold=None, configured=0.46, staff_id="mia", reason="reset",
            evidence={}, actor="test",
        )  # fmt: skip
        walk_in(3)
        assert phone.wait_for(lambda p: {a.customer_id for a in p.open_alerts()} == {"c1", "c3"})
    finally:
        manager_cli.close()
        phone.stop()
        camera.disconnect()
        camera.loop_stop()


def test_the_hub_starts_with_the_applied_threshold(cfg: StoreConfig, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    threshold.apply(
        first.conn, threshold=0.38, configured=0.46, staff_id="mia", reason="review",
        evidence={}, actor="test",
    )  # fmt: skip
    first.conn.close()
    second = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    try:
        assert second._recognition.threshold == 0.38
        assert second._recognition.margin == cfg.recognition.margin
    finally:
        second.conn.close()
