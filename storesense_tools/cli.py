"""``storesense`` — one console script, one subcommand per job.

Heavy imports (dlib, OpenCV, TFLite) happen inside the subcommand that needs them, so
``storesense --help`` and config checks are instant on a Pi.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from storesense import service_notify
from storesense.config import ConfigError, RecognitionConfig, load_config
from storesense.errors import CliError
from storesense.face_models import FACE_MODELS
from storesense.instance_lock import edge_lock, hub_lock
from storesense.paths import keep_new_files_private, resolve_home
from storesense_tools import (
    cli_backup,
    cli_camera_keys,
    cli_central,
    cli_faces,
    cli_floor,
    cli_pos,
    cli_privacy,
    cli_staff,
    cli_web,
)
from storesense_tools.common import (
    EXTRA_KEY,
    HUB_EXTRA,
    SHARED_FILES_KEY,
    missing_distributions,
    needs_extra_message,
    recognition_config,
    store_config,
)

log = logging.getLogger("storesense")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    service_notify.stopping()


def cmd_hub_run(args: argparse.Namespace, home: Path) -> int:
    from hub.service import HubService

    cfg = store_config(args, home)
    # before the database and the broker: a second hub must touch neither (one line, exit 2)
    with hub_lock(home), HubService(cfg, home):
        service_notify.ready()  # Type=notify: systemd waits for this
        log.info("hub running for store %s (home %s); Ctrl-C stops", cfg.store_id, home)
        _wait_for_signal()
    return 0


def cmd_edge_run(args: argparse.Namespace, home: Path) -> int:
    from edge.camera_agent import CameraAgent

    cfg = store_config(args, home)
    camera = cfg.camera(args.camera)
    lock = edge_lock(home, camera.id).acquire()  # held until the process ends
    face_key = args.face_key or os.environ.get("STORESENSE_FACE_KEY")
    agent = CameraAgent(cfg, camera, home=home, face_key=Path(face_key) if face_key else None)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: agent.request_stop())
    try:
        agent.run()
    finally:
        lock.release()
    return 0


def _eval_recognition(args: argparse.Namespace, home: Path) -> RecognitionConfig:
    """The store config's ``recognition`` section (defaults without one); ``--model`` another
    model at that model's own defaults."""
    rc = recognition_config(args, home)
    if args.model and args.model != rc.model:
        rc = RecognitionConfig(model=args.model, aggregation=rc.aggregation)
    return rc


def cmd_eval_faces(args: argparse.Namespace, home: Path) -> int:
    rc = _eval_recognition(args, home)
    if args.track_size:  # the door-track protocol: storesense_tools/accuracy/track_protocol.py
        from storesense_tools.accuracy.track_protocol import run_track_eval

        summary = run_track_eval(
            Path(args.enroll), Path(args.probe), Path(args.out), args.track_size, rc
        )
        print(json.dumps(summary, indent=2))
        return 0
    from storesense_tools.face_eval import run_face_eval

    summary = run_face_eval(Path(args.enroll), Path(args.probe), Path(args.out), recognition=rc)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace, home: Path) -> int:
    from storesense_tools.demo import run_demo

    # the demo empties the home's database first: never under a running hub or a restore
    with hub_lock(home, doing="the demo"):
        summary = run_demo(
            home=home, seconds=args.seconds, out_dir=Path(args.out), headless=args.headless
        )
    return 0 if summary["alerts"] else 1


def cmd_status(args: argparse.Namespace, home: Path) -> int:
    import json as _json
    import time

    from rich.console import Console
    from rich.table import Table

    from hub.alerts.node_health import node_rows
    from hub.store import db
    from storesense.paths import hub_db_path

    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    table = Table(
        "camera",
        "role",
        "state",
        "last heartbeat",
        "fps",
        "frames",
        "queue",
        "reconnects",
        "rejected faces",
    )
    failing: list[str] = []
    now = time.time()
    for r in node_rows(db.open_db(hub_db_path(home))):
        rejected = sum(_json.loads(r["rejections"]).values())
        errors = _json.loads(r["errors"])  # exceptions its loops survived, by step
        if errors:
            steps = ", ".join(f"{step} {n}" for step, n in sorted(errors.items()))
            failing.append(f"{r['camera_id']}: loop errors since its start: {steps}")
        table.add_row(
            r["camera_id"],
            r["role"],
            r["state"],
            f"{now - r['last_heartbeat_at']:.0f} s ago",
            f"{r['fps']:.1f}",
            str(r["frames"]),
            str(r["queue_depth"]),
            str(r["reconnects"]),
            str(rejected),
        )
    console = Console()
    console.print(table)
    for line in failing:
        console.print(line)
    return 0


def cmd_db_migrate(args: argparse.Namespace, home: Path) -> int:
    """Create or upgrade the hub database (installers, tests; the hub daemon does it itself)."""
    from hub.store import db
    from storesense.paths import hub_db_path

    path = hub_db_path(home)
    applied = db.migrate(path)
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    print(f"{path}: schema version {db.SCHEMA_VERSION} ({done})")
    return 0


def cmd_broker_config(args: argparse.Namespace, home: Path) -> int:
    from storesense_tools.broker_config import BrokerConfigError, write_broker_config

    cfg = store_config(args, home)
    try:
        bundle = write_broker_config(
            cfg,
            Path(args.out),
            listen_host=args.listen,
            tls_port=args.port,
            hub_host_names=args.host,
            force=args.force,
        )
    except BrokerConfigError as exc:
        raise CliError(str(exc)) from None
    print(
        f"wrote {bundle.conf} (TLS on {args.listen}:{args.port}), CA {bundle.ca_cert}, "
        f"{len(bundle.accounts)} accounts; per-device credentials in {bundle.out_dir}/credentials"
    )
    return 0


def cmd_config_check(args: argparse.Namespace, home: Path) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok (store {cfg.store_id}, {len(cfg.cameras)} cameras)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="storesense", description=__doc__.splitlines()[0])
    p.add_argument("--home", help="state folder (default $STORESENSE_HOME or the user data dir)")
    p.add_argument("--config", help="store YAML (default $STORESENSE_CONFIG or HOME/store.yaml)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    hub = sub.add_parser("hub", help="the in-store hub").add_subparsers(
        dest="action", required=True
    )
    hub.add_parser("run", help="run the hub daemon").set_defaults(func=cmd_hub_run, extra=HUB_EXTRA)

    edge = sub.add_parser("edge", help="a camera's edge agent").add_subparsers(
        dest="action", required=True
    )
    er = edge.add_parser("run", help="run the agent for one configured camera")
    er.add_argument("--camera", required=True, help="camera id from the store config")
    er.add_argument(
        "--face-key",
        help="the camera's face seal key file (default: $STORESENSE_FACE_KEY, else "
        "<home>/secrets/face-seal.key); see `storesense camera-key`",
    )
    er.set_defaults(func=cmd_edge_run)

    ev = sub.add_parser("eval", help="evaluate on labelled data").add_subparsers(
        dest="action", required=True
    )
    ef = ev.add_parser("faces", help="open-set identification on DIR/<identity>/<images>")
    ef.add_argument("--enroll", required=True)
    ef.add_argument("--probe", required=True)
    ef.add_argument("--out", required=True)
    ef.add_argument(
        "--track-size",
        type=int,
        choices=range(1, 11),
        metavar="K",
        help="door tracks: each person's probe images in groups of K, decided by the hub's "
        "per-track rule; --out gets one row per track",
    )
    ef.add_argument(
        "--model",
        choices=FACE_MODELS,
        help="embedding model (default: the store config's recognition.model), at that "
        "model's default thresholds unless it is the config's own",
    )
    ef.set_defaults(func=cmd_eval_faces)

    de = sub.add_parser("demo", help="broker + hub + door camera + 3 phones on a bundled clip")
    de.add_argument("--headless", action="store_true", help="no live narration")
    de.add_argument("--seconds", type=float, default=20.0)
    de.add_argument("--out", default="demo-out")
    de.set_defaults(func=cmd_demo, extra=HUB_EXTRA)

    sub.add_parser(
        "status", help="each camera's last heartbeat, frame rate and queue depth"
    ).set_defaults(func=cmd_status, extra=HUB_EXTRA)

    dbp = sub.add_parser("db", help="the hub database").add_subparsers(dest="action", required=True)
    dbp.add_parser(
        "migrate", help="create or upgrade the hub database (the hub does it when it starts)"
    ).set_defaults(func=cmd_db_migrate, extra=HUB_EXTRA)

    bc = sub.add_parser("broker-config", help="TLS Mosquitto config, accounts and ACLs")
    bc.add_argument("--out", required=True)
    bc.add_argument("--listen", default="0.0.0.0")
    bc.add_argument("--port", type=int, default=8883)
    bc.add_argument("--host", action="append", default=[], help="hub name/IP for the cert")
    bc.add_argument("--force", action="store_true", help="replace an existing folder")
    bc.set_defaults(func=cmd_broker_config, extra=HUB_EXTRA, shared_files=True)

    cc = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="action", required=True
    )
    ck = cc.add_parser("check", help="validate a store YAML")
    ck.add_argument("file")
    ck.set_defaults(func=cmd_config_check)

    cli_privacy.register(sub)
    cli_backup.register(sub)  # backup, restore
    cli_faces.register(sub)  # faces review (the store's threshold)
    cli_camera_keys.register(sub)  # camera-key issue|retire|revoke|list (face seal keys)
    cli_floor.register(sub)
    staff_actions = cli_web.register(sub)  # staff add, web run|cert|onboarding|pos-token
    cli_staff.register(staff_actions)  # staff list|disable|enable
    cli_pos.register(sub)  # pos import/recategorize/birthday/card, suggest build/eval
    cli_central.register(sub)  # central run|migrate|bridge-config (the chain's office)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    extra = getattr(args, EXTRA_KEY, None)
    if extra is not None and missing_distributions(extra):
        # A camera install (core only) has the hub's code but not its libraries: one line
        # saying what to install, not an ImportError traceback from deep inside the hub.
        print(f"storesense: {needs_extra_message(args, extra)}", file=sys.stderr)
        return 2
    if not getattr(args, SHARED_FILES_KEY, False):
        keep_new_files_private()  # before the home folder, the database or a report exists
    try:
        home = resolve_home(args.home)
        return int(args.func(args, home))
    except (CliError, ConfigError) as exc:
        print(f"storesense: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
