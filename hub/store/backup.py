"""Backups of the hub database: a consistent copy taken while the hub runs, and the check that
a file is one.

Why SQLite's online backup API (``sqlite3.Connection.backup``) and not a file copy: copying
``hub.sqlite3`` while the hub writes can catch half a transaction, and the rows of the last
seconds sit in ``-wal``, not in the main file. The backup API copies the pages of one read
snapshot (all pages in one step, so the writer never forces a restart): the copy is the
database as some committed transaction left it. WAL readers do not block the writer, so the
hub keeps matching while it runs.

What a backup is: a single SQLite file (rollback journal, no ``-wal`` beside it), 0600 from
its first byte, marked with ``PRAGMA application_id`` = ``BACKUP_APPLICATION_ID`` so a restore
can refuse a file that is not one (a raw copy of a live database, another program's file).
It holds no key material: the template, audit, VAPID and POS keys are files in
``<home>/secrets``, never rows (``storesense backup --keys-out`` writes them to a file of
their own, docs/deployment.md "Backups").

What keeps a restore and a running hub apart is not here: it is the hub's single-instance
lock (``storesense.instance_lock.hub_lock``, ``<home>/hub.lock``), which ``storesense restore``
takes as well: one lock for "this home is in use", not two that could disagree.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hub.store import migrations
from storesense.errors import CliError

BACKUP_APPLICATION_ID = 0x53534231  # "SSB1": written into the backup file's header
PRIVATE_MODE = 0o600


class BackupRefused(CliError, RuntimeError):
    """The file is not a Storesense backup, or cannot be restored here: one line says why."""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    schema_version: int
    size: int


def _exclusive_file(path: Path) -> None:
    """Create ``path`` empty and 0600 (whatever the umask), or refuse if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)
    os.close(fd)


def copy_database(source: sqlite3.Connection, target: Path, *, application_id: int) -> None:
    """One-step online backup of ``source`` into a new 0600 file ``target``, left in rollback
    journal mode (no ``-wal`` beside it), stamped with ``application_id``, fsync'd."""
    _exclusive_file(target)
    try:
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            source.backup(dst)  # pages=-1: every page from one read snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.execute(f"PRAGMA application_id={int(application_id)}")
            ok = dst.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise BackupRefused(f"the copy in {target} does not check: {ok}")
        finally:
            dst.close()
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def take(source: sqlite3.Connection, out: Path) -> BackupFile:
    """Write the backup of ``source`` to ``out`` (which must not exist): a temporary file
    beside it first, renamed once complete, so ``out`` is never half a backup."""
    if out.exists():
        raise BackupRefused(f"{out} exists: give another file name (a backup never overwrites)")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    copy_database(source, tmp, application_id=BACKUP_APPLICATION_ID)
    os.replace(tmp, out)
    return check(out)


def check(path: Path) -> BackupFile:
    """The backup at ``path`` with its schema version; ``BackupRefused`` saying why it is not
    one a restore can use (not SQLite, not marked as a backup, damaged, from a newer schema)."""
    if not path.is_file():
        raise BackupRefused(f"no backup file at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            if app_id != BACKUP_APPLICATION_ID:
                raise BackupRefused(
                    f"{path} is not a Storesense backup (made by `storesense backup`): "
                    "a copy of a live database may be torn, and any other file is not ours"
                )
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = migrations.current_version(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(f"{path} is not a Storesense backup ({exc})") from None
    if ok != "ok":
        raise BackupRefused(f"{path} is damaged: {ok}")
    if version > migrations.LATEST:
        raise BackupRefused(
            f"{path} is from a newer schema ({version}; this program knows up to "
            f"{migrations.LATEST}): restore it with the release that made it, or upgrade"
        )
    return BackupFile(path, version, path.stat().st_size)
