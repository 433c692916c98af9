"""``storesense camera-key``: issue (and rotate), retire, revoke, list: the hub's file and the
camera's copy, as the hub then treats them (hub.faces.camera_keys)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.faces.camera_keys import CameraKeys
from hub.store import db
from storesense import messages as m
from storesense.face_seal import read_key_file
from storesense.paths import camera_keys_path, hub_db_path
from storesense_tools.cli import main

CONFIG = """store_id: s1
cameras:
  - {id: door-1, role: entrance, source: 0}
  - {id: floor-1, role: floor, source: 0, calibration: x.yaml}
"""


class Cli:
    """``storesense camera-key …`` on one hub home and store config."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "store.yaml"
        self.config.write_text(CONFIG)
        self.home = tmp_path / "home"
        db.migrate_db(hub_db_path(self.home)).close()  # the hub's database: key changes audited

    def __call__(self, *args: str) -> int:
        return main(["--home", str(self.home), "--config", str(self.config), "camera-key", *args])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_issue_rotate_retire_revoke(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = cli.home
    first_file, second_file = tmp_path / "k1", tmp_path / "k2"
    assert cli("issue", "--camera", "door-1", "--out", str(first_file)) == 0
    first = read_key_file(first_file)
    assert stat.S_IMODE(first_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(camera_keys_path(home).stat().st_mode) == 0o600
    hub = CameraKeys(camera_keys_path(home))
    assert hub.lookup("door-1", first.key_id).key == first.key
    capsys.readouterr()

    assert cli("issue", "--camera", "door-1", "--out", str(second_file)) == 0
    assert f"rotation: {first.key_id} still accepted" in capsys.readouterr().out
    second = read_key_file(second_file)
    assert hub.lookup("door-1", first.key_id) and hub.lookup("door-1", second.key_id)

    assert cli("retire", first.key_id) == 0
    with pytest.raises(m.PayloadError) as err:
        hub.lookup("door-1", first.key_id)
    assert err.value.reason == "key_retired"
    assert cli("revoke", "--camera", "door-1") == 0
    with pytest.raises(m.PayloadError) as err:
        hub.lookup("door-1", second.key_id)
    assert err.value.reason == "key_revoked"
    assert hub.keyed("door-1") and not hub.keyed("door-2")

    capsys.readouterr()
    assert cli("list") == 0
    listed = capsys.readouterr().out
    assert f"{first.key_id}  revoked" in listed and f"{second.key_id}  revoked" in listed
    conn = db.open_db(hub_db_path(home))
    logged = [r[0] for r in conn.execute("SELECT detail FROM audit WHERE action='camera_key'")]
    conn.close()
    assert logged == [
        f"issued face seal key {first.key_id} for camera door-1",
        f"issued face seal key {second.key_id} for camera door-1",
        f"retired face seal key {first.key_id}",
        f"revoked face seal key(s) {', '.join(sorted([first.key_id, second.key_id]))}",
    ]  # the keys file is written sorted by id: revoke names them in that order


def test_refusals_are_one_line(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k"
    assert cli("issue", "--camera", "floor-1", "--out", str(out)) == 2
    assert "only door cameras seal" in capsys.readouterr().err
    assert cli("issue", "--camera", "door-1", "--out", str(out)) == 0
    assert cli("issue", "--camera", "door-1", "--out", str(out)) == 2
    assert "pass --force" in capsys.readouterr().err
    assert cli("retire", "0123456789abcdef") == 2
    assert "no camera key '0123456789abcdef'" in capsys.readouterr().err


def test_a_hub_without_its_database_changes_no_key(tmp_path: Path) -> None:
    cfg = tmp_path / "store.yaml"
    cfg.write_text(CONFIG)
    home = tmp_path / "bare"
    argv = ["--home", str(home), "--config", str(cfg), "camera-key", "issue"]
    assert main([*argv, "--camera", "door-1", "--out", str(tmp_path / "k")]) == 2
    assert not camera_keys_path(home).exists() and not (tmp_path / "k").exists()
