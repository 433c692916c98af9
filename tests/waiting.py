"""Polling for the tests that wait on another thread, process or broker."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> bool:
    """True as soon as ``predicate()`` is truthy; after ``timeout_s``, its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
