"""Where a node keeps its state: ``--home`` beats ``STORESENSE_HOME`` beats the per-user folder."""

from __future__ import annotations

import os
from pathlib import Path

# New files 0600, new folders 0700: see ``keep_new_files_private``.
PRIVATE_UMASK = 0o077


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


def chain_key_path(home: Path) -> Path:
    """The store's X25519 chain key: other stores seal chain customers' templates for it."""
    return home / "secrets" / "chain.key"


def camera_keys_path(home: Path) -> Path:
    """The hub's per-camera face seal keys (hub.faces.camera_keys)."""
    return home / "secrets" / "camera_keys.json"


def face_seal_key_path(home: Path) -> Path:
    """A camera's own face seal key, unless ``--face-key`` / STORESENSE_FACE_KEY names one."""
    return home / "secrets" / "face-seal.key"


def keep_new_files_private() -> None:
    """Set the process umask so that every file and folder it makes is its user's alone.

    Why at program start and not per file: SQLite creates the hub database, its ``-wal`` and
    ``-shm`` (which hold the same rows) and the camera outbox with 0644 less the umask, and
    the report writer, matplotlib and Jinja2 do the same; under a login shell's 022 they were
    world-readable (measured: ``hub.sqlite3`` and its ``-wal``/``-shm``, the report files,
    0644). The systemd units set ``UMask=0077`` too; this covers the same programs started by
    hand, from cron or a test. Nothing they write is meant for another user: the web process
    gets report files from the hub over MQTT (rpc ``report_file``), never from the disk.
    """
    os.umask(PRIVATE_UMASK)
