"""One way to start Debian's Chromium under Playwright for every browser test.

Also sets Playwright's ``expect`` timeout: its 5 s default is a wall-clock bet that a loaded
2-core CI machine (a hub, a web process, Mosquitto and Chromium sharing it) sometimes loses;
the assertions wait for a condition, so a longer bound only costs time when something is
really wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 20_000


def chromium() -> Iterator[Any]:
    """A launched browser (for a fixture to ``yield from``); skips where Chromium is absent."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    sync_api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()
