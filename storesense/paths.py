"""Where a node keeps its state: ``--home`` beats ``STORESENSE_HOME`` beats the per-user folder."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "storesense"


def resolve_home(cli_value: str | None = None) -> Path:
    raw = cli_value or os.environ.get("STORESENSE_HOME")
    home = Path(raw).expanduser() if raw else default_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def hub_db_path(home: Path) -> Path:
    return home / "hub.sqlite3"


def template_key_path(home: Path) -> Path:
    return home / "secrets" / "template.key"
