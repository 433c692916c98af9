"""`storesense staff add` and `storesense web pos-token` on a real home folder."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from hub.staff.accounts import authenticate
from hub.store import db
from storesense.paths import hub_db_path
from storesense_tools.cli import main


def _staff_add(monkeypatch: pytest.MonkeyPatch, home: Path, password: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(
        ["--home", str(home), "staff", "add", "--id", "alice", "--name", "Alice Adams",
         "--role", "salesperson", "--password-stdin", *extra]
    )  # fmt: skip


def test_staff_add_then_login_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db.migrate_db(hub_db_path(tmp_path)).close()  # the hub (or `db migrate`) makes the file
    assert _staff_add(monkeypatch, tmp_path, "a long enough pw") == 0
    assert "added alice (Alice Adams) as salesperson" in capsys.readouterr().out
    conn = db.open_db(hub_db_path(tmp_path))
    staff = authenticate(conn, "alice", "a long enough pw")
    assert staff is not None and staff.role == "salesperson"
    assert authenticate(conn, "alice", "wrong password!") is None

    assert _staff_add(monkeypatch, tmp_path, "another long pw") == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert _staff_add(monkeypatch, tmp_path, "short") == 2
    assert "password must be" in capsys.readouterr().err
    assert _staff_add(monkeypatch, tmp_path, "another long pw", "--replace") == 0
    assert authenticate(conn, "alice", "another long pw") is not None

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["--home", str(tmp_path), "staff", "add", "--id", "bad id!", "--name", "X",
                 "--role", "manager", "--password-stdin"])  # fmt: skip
    assert code == 2 and "nothing on standard input" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal, so ``read_password`` prompts instead of refusing."""

    def isatty(self) -> bool:
        return True


def test_read_password_asks_twice_only_when_setting_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """``staff add`` (confirm) and ``faces review`` (no confirm) share one reader."""
    import argparse

    from storesense.errors import CliError
    from storesense_tools.common import read_password

    args = argparse.Namespace(password_stdin=False)
    answers: list[str] = []
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    monkeypatch.setattr("sys.stdin", _Terminal())
    answers[:] = ["pw one", "pw two"]
    with pytest.raises(CliError, match="the two passwords differ"):
        read_password(args, "password for alice: ", confirm=True)
    assert prompts == ["password for alice: ", "again: "]
    prompts.clear()
    answers[:] = ["pw one"]
    assert read_password(args, "password for manager m: ") == "pw one"
    assert prompts == ["password for manager m: "] and answers == []

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    with pytest.raises(CliError, match="no terminal to ask for the manager's password"):
        read_password(args, "p: ", what="the manager's password")


def test_pos_token_is_created_private_and_stable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_path), "web", "pos-token"]) == 0
    token = capsys.readouterr().out.strip()
    path = tmp_path / "secrets" / "pos_webhook.token"
    assert path.read_text().strip() == token and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["--home", str(tmp_path), "web", "pos-token"]) == 0
    assert capsys.readouterr().out.strip() == token
    assert main(["--home", str(tmp_path), "web", "pos-token", "--rotate"]) == 0
    assert capsys.readouterr().out.strip() != token


def test_web_run_without_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_path), "web", "run"]) == 2
    assert "no store config" in capsys.readouterr().err


def test_web_cert_issues_from_the_store_ca_and_onboarding_prints_the_qr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography import x509

    config = tmp_path / "store.yaml"
    config.write_text("store_id: s1\napp: {tls_hosts: [hub.store.lan]}\n")
    base = ["--home", str(tmp_path / "h"), "--config", str(config), "web"]
    assert main([*base, "cert", "--host", "10.0.0.2"]) == 0
    out = capsys.readouterr().out
    tls_dir = tmp_path / "h" / "tls"
    assert "created the store CA" in out and "hub.store.lan" in out and "10.0.0.2" in out
    ca = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    first = x509.load_pem_x509_certificate((tls_dir / "web.crt").read_bytes())
    first.verify_directly_issued_by(ca)
    assert stat.S_IMODE((tls_dir / "web.key").stat().st_mode) == 0o600
    # again: the same CA, a new leaf
    assert main([*base, "cert"]) == 0
    assert "created the store CA" not in capsys.readouterr().out
    assert x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes()) == ca
    # from a broker-config folder's CA, which must exist (never a CA made on the side)
    assert main([*base, "cert", "--ca-dir", str(tmp_path / "nope")]) == 2
    assert "cannot load the store CA" in capsys.readouterr().err

    assert main([*base, "onboarding", "--url-host", "hub.store.lan", "--port", "8443"]) == 0
    shown = capsys.readouterr().out
    assert "phone onboarding: https://hub.store.lan:8443/onboarding" in shown
    assert "█" in shown or "▀" in shown  # the QR code, drawn in the terminal
    assert "SHA-256" in shown
