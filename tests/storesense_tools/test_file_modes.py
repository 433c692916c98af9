"""The programs keep what they write to their own user: a real `storesense hub run` makes its
database (with ``-wal`` and ``-shm``) 0600 and its folders 0700, and the nightly `storesense
report` writes 0600 files in a 0700 folder, although both were started under umask 022 (the
measured fault: all of them 0644). The web process never reads the report files (the hub
sends them over MQTT), so nobody but the hub's user needs to."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.store import db
from storesense.paths import PRIVATE_UMASK, hub_db_path
from storesense_tools.cli import main
from tests.hub.conftest import hub_config
from tests.hub.hub_process import REPO, HubRunner, watching
from tests.hub.test_faults import _persistent_broker
from tests.mosquitto_proc import require_mosquitto
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The login shell's 022, inherited by the programs the test starts."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_hub_database_and_report_files_are_private_under_a_loose_umask(
    tmp_path: Path, loose_umask: None
) -> None:
    require_mosquitto()
    broker = _persistent_broker(tmp_path).start()
    cfg = hub_config(broker.port)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db_path = hub_db_path(home)
    try:
        with watching(cfg) as heard:
            runner = HubRunner(home, cfg, tmp_path, heard.status)
            hub = runner.start()
            try:
                wal, shm = (db_path.with_name(db_path.name + s) for s in ("-wal", "-shm"))
                assert wait_for(lambda: wal.exists() and shm.exists(), 30)
                modes = {p.name: _mode(p) for p in (db_path, wal, shm)}
                assert modes == dict.fromkeys(modes, 0o600), modes
                assert _mode(home / "secrets") == 0o700
                for key in (home / "secrets").iterdir():
                    assert _mode(key) == 0o600, key
                env = {**os.environ, "PYTHONPATH": str(REPO)}
                done = subprocess.run(
                    [sys.executable, "-m", "storesense_tools.cli", "--home", str(home),
                     "--config", str(runner.conf), "report", "--date", "2026-12-01"],
                    env=env, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr
            finally:
                hub.send_signal(signal.SIGTERM)
                assert hub.wait(30) == 0
    finally:
        broker.stop()
    folder = home / "reports" / "2026-12-01"
    files = sorted(folder.iterdir())
    assert {f.name for f in files} >= {"report.html", "insights.json", "zones.csv", "heatmap.png"}
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert (_mode(home / "reports"), _mode(folder)) == (0o700, 0o700)


def test_the_hub_tightens_a_database_an_older_release_left_readable(
    tmp_path: Path, loose_umask: None
) -> None:
    path = tmp_path / "hub.sqlite3"
    db.migrate_db(path).close()  # in this process: umask 022, as an older release had it
    path.chmod(0o644)
    conn = db.migrate_db(path)  # what the hub does at every start
    try:
        conn.execute("SELECT count(*) FROM audit").fetchone()
        assert _mode(path) == 0o600
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or _mode(wal) == 0o600
    finally:
        conn.close()


@pytest.mark.parametrize(
    "argv",
    [["hub", "run"], ["edge", "run", "--camera", "door-1"], ["web", "run"], ["report", "--date",
     "2026-12-01"]],
)  # fmt: skip
def test_each_program_sets_the_private_umask_before_anything_else(
    tmp_path: Path, loose_umask: None, argv: list[str]
) -> None:
    """With no store config each command stops at once (exit 2): the umask is already set."""
    assert (
        main(["--home", str(tmp_path / "h"), "--config", str(tmp_path / "none.yaml"), *argv]) == 2
    )
    now = os.umask(0o022)
    assert now == PRIVATE_UMASK
    assert _mode(tmp_path / "h") == 0o700


def test_broker_config_keeps_the_callers_umask(tmp_path: Path, loose_umask: None) -> None:
    """Its files are for the mosquitto user and the cameras; it sets each one's mode itself."""
    main(["--home", str(tmp_path / "h"), "--config", str(tmp_path / "none.yaml"),
          "broker-config", "--out", str(tmp_path / "b")])  # fmt: skip
    assert os.umask(0o022) == 0o022
