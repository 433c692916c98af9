"""``storesense camera-key issue|retire|revoke|list``: the cameras' face seal keys on the hub.

The hub keeps every camera's key in ``<home>/secrets/camera_keys.json``
(``hub.faces.camera_keys``); ``issue`` also writes the camera's copy (``--out``, 0600), which
``scripts/flash_device.sh --face-key`` installs on the camera. The running hub reads the file
again when it changes: no restart for any of these (docs/deployment.md, "Face seal keys").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from storesense.errors import CliError
from storesense.paths import camera_keys_path
from storesense_tools.common import HUB_EXTRA, operator_name, store_config


def _audited(home: Path, detail: str) -> None:
    """One ``camera_key`` row in the hub's audit chain (who issued, retired or revoked what).

    Opened first, so a hub whose database is not ready refuses before any key changes.
    """
    from hub.privacy import audit
    from hub.store import db
    from storesense.paths import hub_db_path

    conn = db.open_db(hub_db_path(home))
    try:
        with db.write(conn):
            audit.append(conn, actor=operator_name(), action="camera_key", detail=detail)
    finally:
        conn.close()


def _ready(home: Path) -> None:
    """The hub's database at this program's version: the key change can be audited."""
    from hub.store import db
    from storesense.paths import hub_db_path

    db.open_db(hub_db_path(home)).close()


def cmd_issue(args: argparse.Namespace, home: Path) -> int:
    from hub.faces import camera_keys
    from storesense.face_seal import write_key_file

    camera = store_config(args, home).camera(args.camera)
    if camera.role != "entrance":
        raise CliError(f"camera {camera.id} is a {camera.role} camera: only door cameras seal")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"{out} exists (the camera's current key?): pass --force to replace it")
    older = [
        r["key_id"]
        for r in camera_keys.listing(camera_keys_path(home))
        if r["camera_id"] == camera.id and r["state"] == "active"
    ]
    _ready(home)
    key = camera_keys.issue(camera_keys_path(home), camera.id)
    write_key_file(out, key)
    _audited(home, f"issued face seal key {key.key_id} for camera {camera.id}")
    print(f"key {key.key_id} for camera {camera.id}: the camera's copy in {out} (0600)")
    if older:
        print(
            f"rotation: {', '.join(older)} still accepted; once the camera runs the new key and "
            f"its outbox is empty: storesense camera-key retire {older[-1]}"
        )
    return 0


def cmd_retire(args: argparse.Namespace, home: Path) -> int:
    from hub.faces import camera_keys

    _ready(home)
    try:
        ended = camera_keys.retire(camera_keys_path(home), args.key_id)
    except camera_keys.CameraKeyError as exc:
        raise CliError(str(exc)) from None
    if ended:
        _audited(home, f"retired face seal key {args.key_id}")
    print(f"retired: {args.key_id}" if ended else f"{args.key_id} was not active: unchanged")
    return 0


def cmd_revoke(args: argparse.Namespace, home: Path) -> int:
    from hub.faces import camera_keys

    _ready(home)
    try:
        ended = camera_keys.revoke(
            camera_keys_path(home), key_id=args.key_id, camera_id=args.camera
        )
    except camera_keys.CameraKeyError as exc:
        raise CliError(str(exc)) from None
    if ended:
        _audited(home, f"revoked face seal key(s) {', '.join(ended)}")
    print(f"revoked: {', '.join(ended)}" if ended else "nothing to revoke: unchanged")
    return 0


def cmd_list(args: argparse.Namespace, home: Path) -> int:
    from hub.faces import camera_keys

    for r in camera_keys.listing(camera_keys_path(home)):
        print(f"{r['camera_id']:<20} {r['key_id']}  {r['state']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``camera-key issue|retire|revoke|list`` to the top-level parser."""
    ck = sub.add_parser("camera-key", help="door cameras' face seal keys").add_subparsers(
        dest="action", required=True
    )
    iss = ck.add_parser("issue", help="a new key for a door camera (first, or a rotation)")
    iss.add_argument("--camera", required=True, help="camera id from the store config")
    iss.add_argument("--out", required=True, help="where to write the camera's key file")
    iss.add_argument("--force", action="store_true", help="replace an existing --out file")
    iss.set_defaults(func=cmd_issue, extra=HUB_EXTRA)
    ret = ck.add_parser("retire", help="refuse a rotated-out key from now on")
    ret.add_argument("key_id")
    ret.set_defaults(func=cmd_retire, extra=HUB_EXTRA)
    rev = ck.add_parser("revoke", help="refuse a key, or all of a camera's keys, from now on")
    which = rev.add_mutually_exclusive_group(required=True)
    which.add_argument("--key-id")
    which.add_argument("--camera")
    rev.set_defaults(func=cmd_revoke, extra=HUB_EXTRA)
    ck.add_parser("list", help="every key: camera, id, state").set_defaults(
        func=cmd_list, extra=HUB_EXTRA
    )
