"""`storesense backup` and `storesense restore`: the hub database, copied while the hub runs,
and its keys kept apart.

Why the keys go to a file of their own (``--keys-out``) and never into the backup: the
database alone is ciphertext for the face templates and a chain nobody can forge without the
audit key; a backup that carried the keys would give both to whoever finds one copy (a backup
disk, a cloud bucket). Kept apart, the database backups can go where backups usually go and
the keys file (a few hundred bytes, changing only when a key is rotated) goes somewhere else,
offline (docs/deployment.md, "Backups"). A restore needs both: it refuses a template key
that is not the one the backup's templates are under, and an audit key under which the
backup's chain does not verify, before it changes anything.

The database copy and the file checks are ``hub.store.backup``'s; this module composes them
with the key files, whose paths their owning rooms define.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, operator_name

if TYPE_CHECKING:
    from hub.store.backup import BackupFile
    from storesense.instance_lock import InstanceLock

KEYS_FORMAT = "storesense-keys"
KEYS_VERSION = 1
TEMPLATE_KEY = "secrets/template.key"


def _key_files(home: Path) -> dict[str, Path]:
    """Every hub secret, by its name relative to the home: the only names a keys file may
    carry (a restore never writes a path it read from the file)."""
    from hub.api.pos_token import token_path
    from hub.push.sender import vapid_key_path
    from hub.store.chain import audit_key_path
    from storesense.paths import camera_keys_path, hub_db_path, template_key_path

    paths = [
        template_key_path(home),
        camera_keys_path(home),  # the door cameras' face seal keys (hub.faces.camera_keys)
        audit_key_path(hub_db_path(home)),
        vapid_key_path(home),
        token_path(home),
    ]
    return {p.relative_to(home).as_posix(): p for p in paths}


def _fingerprint(key: bytes) -> str:
    from hub.faces.template_crypto import TemplateCipher

    return TemplateCipher(key).fingerprint


def _backup_meta(path: Path, key: str) -> str | None:
    from hub.store import db

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.get_meta(conn, key)
    finally:
        conn.close()


def _write_private(path: Path, data: bytes) -> None:
    from storesense import tls

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tls.write_private(path, data, 0o600)


def _template_key_for(home: Path, made: BackupFile) -> bytes | None:
    """The template key the backup's templates are under: ``template.key``, or the pending
    ``.next`` of a rotation that committed before the snapshot but had not renamed its key."""
    from hub.faces.template_crypto import FINGERPRINT_KEY

    want = _backup_meta(made.path, FINGERPRINT_KEY)
    path = _key_files(home)[TEMPLATE_KEY]
    candidates = [p for p in (path, path.with_name(path.name + ".next")) if p.is_file()]
    if want is None:  # no template was ever stored: any key (or none) will do
        return candidates[0].read_bytes() if candidates else None
    for p in candidates:
        if _fingerprint(p.read_bytes()) == want:
            return p.read_bytes()
    raise CliError(
        "the template key changed while the backup was taken (`storesense keys rotate`?): "
        "take the backup again"
    )


def _write_keys(home: Path, made: BackupFile, out: Path) -> list[str]:
    files = {rel: p.read_bytes() for rel, p in _key_files(home).items() if p.is_file()}
    template = _template_key_for(home, made)
    if template is not None:
        files[TEMPLATE_KEY] = template
    doc = {
        "format": KEYS_FORMAT,
        "version": KEYS_VERSION,
        "taken_at": time.time(),
        "for_backup": made.path.name,
        "files": {rel: base64.b64encode(data).decode() for rel, data in sorted(files.items())},
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return sorted(files)


def cmd_backup(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy import audit
    from hub.store import backup, db
    from storesense.paths import hub_db_path

    out = Path(args.out).absolute()
    keys_out = Path(args.keys_out).absolute() if args.keys_out else None
    if keys_out is not None and (keys_out == out or keys_out.exists()):
        raise CliError(f"--keys-out {keys_out}: give a new file, apart from the backup")
    if out.exists():
        raise CliError(f"{out} exists: give another file name (a backup never overwrites)")
    conn = db.open_db(hub_db_path(home))
    try:
        with db.write(conn):  # who copied everything the hub holds, and where to
            audit.append(conn, actor=operator_name(), action="backup", detail=f"to {out}")
        made = backup.take(conn, out)
    finally:
        conn.close()
    print(f"backup of {home}: {made.path} (schema {made.schema_version}, "
          f"{made.size / 1e6:.1f} MB, 0600); it holds no keys")  # fmt: skip
    if keys_out is not None:
        names = _write_keys(home, made, keys_out)
        print(f"keys: {keys_out} (0600: {', '.join(names)}); keep it apart from the backups")
    else:
        print("keys not written: keep a copy of HOME/secrets apart from the backups (--keys-out)")
    return 0


def _read_keys(path: Path) -> dict[str, bytes]:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != KEYS_FORMAT:
            raise ValueError("not a keys file")
        if int(doc["version"]) > KEYS_VERSION:
            raise ValueError(f"keys file version {doc['version']} is newer than this program's")
        files = {str(k): base64.b64decode(v, validate=True) for k, v in doc["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CliError(
            f"{path} is not a keys file from `storesense backup --keys-out`: {exc}"
        ) from None
    return files


def _keys_for_restore(args: argparse.Namespace, home: Path) -> dict[str, bytes]:
    """The keys to install (from ``--keys``), refused if one would replace a different key
    already in the home without ``--force``."""
    known = _key_files(home)
    given = _read_keys(Path(args.keys)) if args.keys else {}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise CliError(f"{args.keys} names files that are not hub keys: {', '.join(unknown)}")
    for rel, data in given.items():
        have = known[rel]
        if have.is_file() and have.read_bytes() != data and not args.force:
            raise CliError(f"{have} exists and differs from the key in {args.keys}: --force")
    return given


def _check_keys(made: BackupFile, home: Path, keys: dict[str, bytes]) -> None:
    """Refuse, before anything changes, a restore whose keys cannot open the backup."""
    from hub.faces.template_crypto import FINGERPRINT_KEY

    def key(rel: str) -> bytes | None:
        path = _key_files(home)[rel]
        return keys.get(rel) or (path.read_bytes() if path.is_file() else None)

    want = _backup_meta(made.path, FINGERPRINT_KEY)
    template = key(TEMPLATE_KEY)
    if want is not None and (template is None or _fingerprint(template) != want):
        found = "none" if template is None else f"key {_fingerprint(template)[:12]}"
        raise CliError(
            f"the backup's face templates are under template key {want[:12]} and the restore "
            f"has {found}: pass --keys FILE (from `storesense backup --keys-out`)"
        )
    from hub.privacy import audit

    audit_rel = next(r for r in _key_files(home) if r.endswith("audit.key"))
    conn = sqlite3.connect(f"file:{made.path}?mode=ro", uri=True)
    try:
        logged = audit.newest_at(conn) is not None
    finally:
        conn.close()
    if logged and key(audit_rel) is None:
        raise CliError("the backup's audit log needs its audit key: pass --keys FILE")


def _build(made: BackupFile, tmp: Path, erased: list[str]) -> int:
    """The restored database at ``tmp``: the backup copied (marked a database, not a backup),
    migrated, its chain verified under the installed audit key, the restore audited and the
    later erasures done again. Returns the chain's row count."""
    from hub.privacy import audit
    from hub.privacy.erasure import erase_customer
    from hub.store import backup, db

    src = sqlite3.connect(f"file:{made.path}?mode=ro", uri=True)
    try:
        backup.copy_database(src, tmp, application_id=0)
    finally:
        src.close()
    conn = db.migrate_db(tmp)  # a backup from an older release is brought up to date
    try:
        chain = audit.verify(conn)
        if not chain.ok:
            raise CliError(
                f"the backup's audit chain does not verify under the audit key (row "
                f"{chain.broken_at}: {chain.reason}): wrong keys file, or a damaged backup"
            )
        who = operator_name()
        with db.write(conn):
            detail = f"from {made.path} (schema {made.schema_version})"
            audit.append(conn, actor=who, action="restore", detail=detail)
        for customer_id in erased:  # an erasure is never undone by a restore
            why = "erased again: the erasure postdates the restored backup"
            erase_customer(conn, customer_id, actor=who, reason=why)
        return chain.rows
    finally:
        conn.close()


def cmd_restore(args: argparse.Namespace, home: Path) -> int:
    from hub.store import backup
    from hub.store.chain import forget_key
    from storesense.paths import hub_db_path

    made = backup.check(Path(args.file))
    db_path = hub_db_path(home)
    hold = _hold_home(home)
    try:
        replaced = db_path.exists()
        if replaced and not args.force:
            raise CliError(f"{db_path} exists: --force replaces it with the backup")
        keys = _keys_for_restore(args, home)
        _check_keys(made, home, keys)
        erased = _erased_since(db_path, made)
        installed = [rel for rel, data in keys.items() if _install(home, rel, data)]
        tmp = db_path.with_name(db_path.name + ".restoring")
        for p in (tmp, *_sidecars(tmp)):
            p.unlink(missing_ok=True)
        try:
            rows = _build(made, tmp, erased)
        except BaseException:
            for p in (tmp, *_sidecars(tmp)):
                p.unlink(missing_ok=True)
            for rel in installed:  # the home is left as it was
                _key_files(home)[rel].unlink(missing_ok=True)
                forget_key(_key_files(home)[rel])
            raise
        for p in _sidecars(db_path):  # an old -wal must never be replayed onto the backup
            p.unlink(missing_ok=True)
        os.replace(tmp, db_path)
    finally:
        hold.release()
    keys_text = ", ".join(installed) or "none (those in the home fit)"
    print(f"restored {made.path} (schema {made.schema_version}) into {db_path}; audit chain ok "
          f"({rows} rows); keys installed: {keys_text}")  # fmt: skip
    if erased:
        print("erased again, as the replaced database had erased them after this backup was "
              f"taken: {', '.join(erased)}")  # fmt: skip
    elif not replaced:
        print("no database was replaced, so erasures made after this backup are not known "
              "here: repeat them from the store's records (docs/deployment.md)")  # fmt: skip
    print("start the hub (systemctl start storesense-hub)")
    return 0


def _hold_home(home: Path) -> InstanceLock:
    """The hub's own single-instance lock, taken for the restore: refused while a hub (or
    another restore) runs on ``home``, and a hub started meanwhile refuses to start (systemd
    tries again) instead of opening a database being replaced."""
    from storesense.instance_lock import AlreadyRunning, hub_lock

    try:
        return hub_lock(home, doing="a restore").acquire()
    except AlreadyRunning as exc:
        if exc.holder == "a restore":
            raise CliError(
                f"another restore onto {home} is under way (pid {exc.pid}): wait for it"
            ) from None
        raise CliError(
            f"a hub is running on {home} (pid {exc.pid}): stop it first (systemctl stop "
            "storesense-hub); a restore never replaces a running hub's database"
        ) from None


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _install(home: Path, rel: str, data: bytes) -> bool:
    """Write one key (0600); False when the same key is already there."""
    from hub.store.chain import forget_key

    path = _key_files(home)[rel]
    if path.is_file() and path.read_bytes() == data:
        return False
    _write_private(path, data)
    forget_key(path)  # this process must read the key just written, not one cached before
    return True


def _erased_since(db_path: Path, made: BackupFile) -> list[str]:
    """Customers the database being replaced erased after the backup's newest audit row."""
    from hub.privacy import audit

    if not db_path.exists():
        return []
    try:
        old = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        new = sqlite3.connect(f"file:{made.path}?mode=ro", uri=True)
        try:
            return audit.erased_since(old, audit.newest_at(new))
        finally:
            old.close()
            new.close()
    except sqlite3.Error:
        return []  # an unreadable old database is why one restores


def register(sub: argparse._SubParsersAction) -> None:
    """``storesense backup`` and ``storesense restore``."""
    bk = sub.add_parser("backup", help="copy the hub database while the hub runs (no keys in it)")
    bk.add_argument("--out", required=True, help="the backup file to write (0600, must not exist)")
    bk.add_argument(
        "--keys-out", help="also write the hub's keys to this separate file (0600, must not exist)"
    )
    bk.set_defaults(func=cmd_backup, extra=HUB_EXTRA)
    rs = sub.add_parser("restore", help="put a backup in place of the hub database (hub stopped)")
    rs.add_argument("file", help="a file written by `storesense backup`")
    rs.add_argument("--keys", help="the keys file from `storesense backup --keys-out`")
    rs.add_argument(
        "--force", action="store_true", help="replace an existing database and differing keys"
    )
    rs.set_defaults(func=cmd_restore, extra=HUB_EXTRA)
