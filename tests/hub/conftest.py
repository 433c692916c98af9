import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from hub.alerts import claims as alerts
from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.service import HubService
from hub.store import db
from storesense.config import StoreConfig, parse_config
from storesense.paths import template_key_path
from storesense.topics import Topics
from storesense_tools.embedded_broker import EmbeddedBroker
from tests.consent import consent

MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "hub.sqlite3"
    db.migrate_db(path).close()
    return path


@pytest.fixture
def gallery(tmp_path: Path, db_path: Path) -> Gallery:
    key = load_or_create_key(tmp_path / "secrets" / "template.key")
    return Gallery(db.connect(db_path), TemplateCipher(key))


def unit(seed: int) -> np.ndarray:
    """A random direction scaled like a dlib embedding (norm ~1)."""
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def open_alerts(conn: sqlite3.Connection, home: Path, topics: Topics, n: int) -> list[str]:
    """``n`` enrolled customers ``c0000``… each with an open door alert (TTL 1 h, no
    cooldown), written straight through the alert room: the claim tests' starting point."""
    gallery = Gallery.open(conn, template_key_path(home))
    now = time.time()
    ids: list[str] = []
    for i in range(n):
        cid = f"c{i:04d}"
        gallery.enrol(cid, f"Customer {i}", consent(f"consent-{i}"), [(unit(1000 + i), 0.9, "t")])
        with db.write(conn):
            made = alerts.record_match(
                conn, topics, customer_id=cid, camera_id="door-1",
                first_usable_at=now, now=now, cooldown_s=0, alert_ttl_s=3600,
            )  # fmt: skip
        assert made.alert_id is not None
        ids.append(made.alert_id)
    return ids


def _mosquitto_up() -> bool:
    try:
        socket.create_connection(MOSQUITTO, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """Each hub test runs on the system Mosquitto and on the embedded broker."""
    if request.param == "mosquitto":
        if not _mosquitto_up():
            pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
        yield MOSQUITTO[1]
    else:
        with EmbeddedBroker() as broker:
            yield broker.port


def hub_config(port: int, extra_yaml: str = "") -> StoreConfig:
    """A store config on broker ``port`` with a fresh store id (isolates tests sharing one
    Mosquitto), plus ``extra_yaml`` (the test's recognition/visits settings)."""
    return parse_config(f"store_id: t{uuid.uuid4().hex[:10]}\nmqtt: {{port: {port}}}\n{extra_yaml}")


# (customer id, name, consent reference, seed of the unit() embedding)
ADA_AND_GRACE = (
    ("c1", "Ada Lovelace", "consent-ref-1", 1),
    ("c2", "Grace Hopper", "consent-ref-2", 2),
)


@contextmanager
def running_hub(
    cfg: StoreConfig, tmp_path: Path, customers: Sequence[tuple[str, str, str, int]] = ADA_AND_GRACE
) -> Iterator[HubService]:
    """The real hub daemon on ``tmp_path/home`` with ``customers`` enrolled (one embedding
    each, ``unit(seed)``), started, and stopped afterwards: the set-up the service-level hub
    tests share, so they all enrol through the gallery and start the hub the same way."""
    home = tmp_path / "home"
    home.mkdir()
    service = HubService(cfg, home, client_id=f"hub-{cfg.store_id}")
    gallery = Gallery(service.conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    for customer_id, name, consent_ref, seed in customers:
        gallery.enrol(customer_id, name, consent(consent_ref), [(unit(seed), 0.9, "t")])
    service.start()
    try:
        yield service
    finally:
        service.stop()
