"""`storesense backup` of a running hub, and `storesense restore` onto a fresh home, end to end.

A real `storesense hub run` process on a private Mosquitto, with one enrolled customer, keeps
handling door tracks of strangers while the backup is taken. The backup (0600) holds none of
the four hub secrets; the keys go to their own file (0600). A restore is refused while the
hub runs, for a file that is not a backup, for a backup from a newer schema and without the
keys; restored with the keys onto a fresh home, a new hub there raises the alert for the
right customer when their face track arrives.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hub.api.pos_token import ensure_token
from hub.faces.gallery import Gallery
from hub.store import db, migrations
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path, template_key_path
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import hub_config, unit
from tests.hub.hub_process import REPO, HubRunner, watching
from tests.hub.test_faults import _event, _persistent_broker
from tests.mosquitto_proc import require_mosquitto
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)

CUSTOMER = ("c00", "Ada Lovelace")  # _event(0) carries unit(100), her enrolled template


def _storesense(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "storesense_tools.cli", "--home", str(home), *argv],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secret_forms(home: Path) -> dict[str, list[bytes]]:
    """Each hub secret as raw bytes and as the hex/base64 text it could be stored as."""
    forms: dict[str, list[bytes]] = {}
    for path in sorted((home / "secrets").iterdir()):
        raw = path.read_bytes()
        found = [raw, raw.hex().encode(), base64.b64encode(raw)]
        if path.suffix == ".pem":  # the key's base64 body lines
            found += [ln for ln in raw.splitlines() if ln and not ln.startswith(b"-----")]
        forms[path.name] = found
    return forms


def test_a_running_hubs_backup_restores_with_its_keys_and_matches_the_customer(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    broker = _persistent_broker(tmp_path).start()
    cfg = hub_config(broker.port, "visits: {alert_ttl_s: 600}\n")
    home, fresh = tmp_path / "home", tmp_path / "fresh"
    home.mkdir()
    conn = db.migrate_db(hub_db_path(home))
    Gallery.open(conn, template_key_path(home)).enrol(
        *CUSTOMER, consent("consent-backup"), [(unit(100), 0.9, "t")]
    )
    conn.close()
    ensure_token(home)  # the POS webhook token: the fourth secret (the hub makes VAPID's)
    out, keys = tmp_path / "store.backup", tmp_path / "store.keys"
    cam = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(cam, cfg.mqtt)
    faces = Topics(cfg.store_id).faces("door-1")
    try:
        with watching(cfg) as heard:
            runner = HubRunner(home, cfg, tmp_path, heard.status)
            hub = runner.start()
            try:
                busy, sent = threading.Event(), [0]

                def strangers() -> None:  # the hub keeps writing while the backup is taken
                    while not busy.is_set():
                        sent[0] += 1
                        track = _event(400 + sent[0]).to_bytes()
                        cam.publish(faces, track, qos=1).wait_for_publish(5)
                        time.sleep(0.02)

                feeder = threading.Thread(target=strangers)
                feeder.start()
                try:
                    time.sleep(0.5)
                    made = _storesense(home, "backup", "--out", str(out), "--keys-out", str(keys))
                    time.sleep(0.5)
                finally:
                    busy.set()
                    feeder.join(10)
                assert made.returncode == 0, made.stderr
                assert sent[0] > 10, sent

                # a restore never replaces a running hub's database
                held = _storesense(home, "restore", str(out), "--keys", str(keys), "--force")
                assert held.returncode == 2 and "a hub is running" in held.stderr, held.stderr
            finally:
                hub.send_signal(signal.SIGTERM)
                assert hub.wait(30) == 0
            assert not heard.alerts, "strangers raised an alert"
        secrets = _secret_forms(home)
        unknown = (
            db.connect(hub_db_path(home))
            .execute("SELECT count(*) FROM unknown_visitors")
            .fetchone()[0]
        )
        assert unknown == sent[0]  # every stranger handled by the first hub

        # the files: both 0600; the backup holds no form of any key
        assert (_mode(out), _mode(keys)) == (0o600, 0o600)
        assert set(secrets) == {"template.key", "audit.key", "vapid_private.pem",
                                "pos_webhook.token"}  # fmt: skip
        blob = out.read_bytes()
        for name, forms in secrets.items():
            assert not any(f in blob for f in forms), f"{name} is in the backup"
        assert set(json.loads(keys.read_text())["files"]) == {f"secrets/{n}" for n in secrets}
        snap = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
        in_backup = snap.execute("SELECT count(*) FROM unknown_visitors").fetchone()[0]
        assert 0 < in_backup <= sent[0]  # taken mid-stream, from one committed state
        assert snap.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        snap.close()
        assert not out.with_name(out.name + "-wal").exists()  # one self-contained file

        # refusals, each leaving the target home without a database
        shutil.copy(hub_db_path(home), tmp_path / "raw.sqlite3")
        newer = tmp_path / "newer.backup"
        shutil.copy(out, newer)
        with sqlite3.connect(newer) as c:
            c.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, 'x', 0)",
                (migrations.LATEST + 1,),
            )
        (tmp_path / "notes.txt").write_text("not a database\n")
        for file, extra, says in [
            (tmp_path / "raw.sqlite3", ["--keys", str(keys)], "not a Storesense backup"),
            (tmp_path / "notes.txt", ["--keys", str(keys)], "not a Storesense backup"),
            (newer, ["--keys", str(keys)], "newer schema"),
            (out, [], "template key"),
        ]:
            refused = _storesense(fresh, "restore", str(file), *extra)
            assert refused.returncode == 2 and says in refused.stderr, (file, refused.stderr)
            assert "Traceback" not in refused.stderr
            assert not hub_db_path(fresh).exists()
            assert not (fresh / "secrets").exists() or not any((fresh / "secrets").iterdir())

        restored = _storesense(fresh, "restore", str(out), "--keys", str(keys))
        assert restored.returncode == 0, restored.stderr
        assert _mode(hub_db_path(fresh)) == 0o600
        assert _storesense(fresh, "audit", "verify").returncode == 0

        # a hub on the restored home knows the customer: her track raises her alert
        with watching(cfg) as heard:
            second = HubRunner(fresh, cfg, tmp_path, heard.status)
            hub = second.start()
            try:
                cam.publish(faces, _event(0).to_bytes(), qos=1).wait_for_publish(5)
                assert wait_for(lambda: heard.alerts, 30), "no alert from the restored hub"
                alert = heard.alerts[0]
                assert (alert.customer_id, alert.customer_name, alert.state) == (
                    *CUSTOMER,
                    "open",
                )
            finally:
                hub.send_signal(signal.SIGTERM)
                assert hub.wait(30) == 0
        for log in [*runner.logs, *second.logs]:
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        cam.disconnect()
        cam.loop_stop()
        broker.stop()
