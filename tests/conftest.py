"""Shared fixtures: the public face data lives beside the checkout, never inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """``$STORESENSE_SHARED_DATA`` or ``<checkout>/../shared/data``."""
    env = os.environ.get("STORESENSE_SHARED_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test (with the path tried) when it is absent."""
    path = shared_data_dir()
    if not (path / "faces").is_dir():
        pytest.skip(f"shared face data not found at {path} (set STORESENSE_SHARED_DATA)")
    return path
