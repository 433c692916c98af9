"""Shared fixtures: the public face data lives beside the checkout, never inside it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_database


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


@pytest.fixture(autouse=True)
def _umask_per_test() -> Iterator[None]:
    """``storesense_tools.cli.main`` sets the process umask (077) as every program does at
    start; tests that call it in-process must not pass that on to the tests after them."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for the test, dropped after it (tests/postgres.py)."""
    with fresh_database() as dsn:
        yield dsn
