from pathlib import Path

import numpy as np
import pytest

from hub import db
from hub.gallery import Gallery
from hub.template_crypto import TemplateCipher, load_or_create_key


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "hub.sqlite3"
    db.open_db(path).close()
    return path


@pytest.fixture
def gallery(tmp_path: Path, db_path: Path) -> Gallery:
    key = load_or_create_key(tmp_path / "secrets" / "template.key")
    return Gallery(db.connect(db_path), TemplateCipher(key))


def unit(seed: int) -> np.ndarray:
    """A random direction scaled like a dlib embedding (norm ~1)."""
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)
