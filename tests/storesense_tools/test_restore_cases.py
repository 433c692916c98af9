"""`storesense restore` cases that need no running hub: an erasure made after the backup is
done again, a keys file whose audit key does not fit is refused with the home left as it was,
and a backup from an older schema is brought up to date."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.privacy.erasure import erase_customer
from hub.store import backup, db, migrations
from storesense.instance_lock import hub_lock
from storesense.paths import hub_db_path, template_key_path
from storesense_tools.cli import main
from tests.consent import consent
from tests.hub.conftest import unit


def _home(tmp_path: Path, name: str = "home") -> Path:
    home = tmp_path / name
    conn = db.migrate_db(hub_db_path(home))
    gallery = Gallery.open(conn, template_key_path(home))
    gallery.enrol("c1", "Ada", consent("consent-1"), [(unit(1), 0.9, "t")])
    gallery.enrol("c2", "Bob", consent("consent-2"), [(unit(2), 0.9, "t")])
    conn.close()
    return home


def _customers(home: Path) -> list[str]:
    conn = db.open_db(hub_db_path(home))
    try:
        return [r[0] for r in conn.execute("SELECT customer_id FROM customers ORDER BY 1")]
    finally:
        conn.close()


def test_a_restore_erases_again_whom_the_replaced_database_erased_after_the_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _home(tmp_path)
    out = tmp_path / "b.sqlite3"
    assert main(["--home", str(home), "backup", "--out", str(out)]) == 0
    conn = db.open_db(hub_db_path(home))
    erase_customer(conn, "c1", actor="dpo", reason="asked at the till")
    conn.close()
    capsys.readouterr()
    assert main(["--home", str(home), "restore", str(out)]) == 2  # a database is there
    assert "--force" in capsys.readouterr().err
    assert _customers(home) == ["c2"]
    assert main(["--home", str(home), "restore", str(out), "--force"]) == 0
    said = capsys.readouterr().out
    assert "erased again" in said and "c1" in said
    assert _customers(home) == ["c2"]  # the backup had c1; the restore did not bring her back
    conn = db.open_db(hub_db_path(home))
    try:
        assert audit.verify(conn).ok
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY audit_id")]
        assert actions[-2:] == ["restore", "erase"]  # the backup held no erasure yet
    finally:
        conn.close()


def test_keys_whose_audit_key_does_not_fit_are_refused_and_the_home_stays_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _home(tmp_path)
    out, keys = tmp_path / "b.sqlite3", tmp_path / "k.json"
    assert main(["--home", str(home), "backup", "--out", str(out), "--keys-out", str(keys)]) == 0
    doc = json.loads(keys.read_text())
    doc["files"]["secrets/audit.key"] = base64.b64encode(os.urandom(32)).decode()
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(doc))
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert main(["--home", str(fresh), "restore", str(out), "--keys", str(wrong)]) == 2
    assert "does not verify under the audit key" in capsys.readouterr().err
    assert not hub_db_path(fresh).exists()
    # only the hub's lock, which the restore held
    assert sorted(p.name for p in fresh.rglob("*") if p.is_file()) == ["hub.lock"]
    assert main(["--home", str(fresh), "restore", str(out), "--keys", str(keys)]) == 0
    assert _customers(fresh) == ["c1", "c2"]


def test_a_backup_from_an_older_schema_is_brought_up_to_date(tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    conn = db.connect(hub_db_path(home))
    migrations.upgrade(conn, upto=migrations.LATEST - 1)
    with db.write(conn):
        audit.append(conn, actor="cli", action="enrol", customer_id="c1", detail="x")
    out = tmp_path / "old.backup"
    made = backup.take(conn, out)
    conn.close()
    assert made.schema_version == migrations.LATEST - 1
    keys = {"format": "storesense-keys", "version": 1, "files": {
        "secrets/audit.key": base64.b64encode((home / "secrets" / "audit.key").read_bytes())
        .decode()}}  # fmt: skip
    (tmp_path / "k.json").write_text(json.dumps(keys))
    fresh = tmp_path / "fresh"
    argv = ["--home", str(fresh), "restore", str(out), "--keys", str(tmp_path / "k.json")]
    assert main(argv) == 0
    conn = db.open_db(hub_db_path(fresh))  # at this release's schema, or it would refuse
    assert audit.verify(conn).ok
    conn.close()


def test_a_restore_is_refused_while_the_hubs_lock_is_held_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The restore takes the hub's single-instance lock (``hub.lock``), the one `hub run`
    holds: refused with one line naming the hub's pid, the database left as it was; there is
    no second lock file (the old ``hub.sqlite3.lock``)."""
    home = _home(tmp_path)
    out = tmp_path / "b.sqlite3"
    assert main(["--home", str(home), "backup", "--out", str(out)]) == 0
    before = hub_db_path(home).read_bytes()
    capsys.readouterr()
    with hub_lock(home):  # what `storesense hub run` holds for its whole life
        assert main(["--home", str(home), "restore", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert f"a hub is running on {home} (pid {os.getpid()})" in err, err
    assert "stop it first" in err and len(err.strip().splitlines()) == 1
    assert hub_db_path(home).read_bytes() == before
    assert main(["--home", str(home), "restore", str(out), "--force"]) == 0  # lock released
    assert not (home / "hub.sqlite3.lock").exists()
