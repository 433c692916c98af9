"""A fresh PostgreSQL database per test on the local server (127.0.0.1:5432, trust auth).

``$STORESENSE_TEST_PG`` overrides the server's connection string (without a dbname). The
database is created for the test and dropped after it (``WITH (FORCE)``: a test's service
may still hold a connection). No server is a broken machine: fail, never skip (.ci/run
starts one when none runs).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER = os.environ.get("STORESENSE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")


@contextmanager
def fresh_database() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {SERVER!r} (.ci/run starts one): {exc}", pytrace=False)
    name = f"storesense_test_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{SERVER} dbname={name}"
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
