import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.store import db
from storesense_tools.embedded_broker import EmbeddedBroker

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
