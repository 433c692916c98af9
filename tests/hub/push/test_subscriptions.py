"""Which endpoints the hub will POST to, and the subscription rows (a real migrated file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.push import subscriptions as subs
from hub.push.sender import application_server_key, load_or_create_vapid, vapid_key_path
from hub.store import db


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", True),
        ("https://updates.push.services.mozilla.com/wpush/v2/x", True),
        ("https://web.push.apple.com/QGx", True),
        ("https://db5p.notify.windows.com/w/?token=1", True),
        ("http://fcm.googleapis.com/fcm/send/abc", False),  # known host, but not HTTPS
        ("https://fcm.googleapis.com.evil.example/x", False),
        ("https://192.168.1.10/admin", False),
        ("http://127.0.0.1:8080/push", False),  # loopback only where a test allows it
        ("file:///etc/passwd", False),
    ],
)
def test_only_known_push_services(endpoint: str, ok: bool) -> None:
    assert subs.allowed(endpoint) is ok


def test_subscribe_moves_and_unsubscribe_is_per_staff(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "hub.db")
    url = "https://fcm.googleapis.com/fcm/send/phone-1"
    subs.subscribe(conn, "alice", url, "B" * 87, "a" * 22, 1.0)
    subs.subscribe(conn, "bob", url, "B" * 87, "a" * 22, 2.0)  # the phone changed hands
    assert [(s.staff_id, s.endpoint) for s in subs.active(conn)] == [("bob", url)]
    assert not subs.unsubscribe(conn, url, "alice")  # not alice's any more
    with pytest.raises(subs.BadSubscription):
        subs.subscribe(conn, "bob", "https://evil.example/x", "B" * 87, "a" * 22, 3.0)
    with pytest.raises(subs.BadSubscription):
        subs.subscribe(conn, "bob", url, "short", "a" * 22, 3.0)
    assert subs.unsubscribe(conn, url, "bob") and subs.active(conn) == []


def test_vapid_key_is_made_once_private_and_stable(tmp_path: Path) -> None:
    first = application_server_key(load_or_create_vapid(tmp_path))
    assert oct(os.stat(vapid_key_path(tmp_path)).st_mode & 0o777) == "0o600"
    assert application_server_key(load_or_create_vapid(tmp_path)) == first


def test_disabling_an_account_drops_its_phones_subscriptions(tmp_path: Path) -> None:
    """A disabled salesperson's lock screen gets no more customer names, whether a manager
    disables them on the page (rpc) or an operator with `storesense staff disable`."""
    from hub.staff import accounts
    from storesense_tools.cli import main

    home = tmp_path / "home"
    assert main(["--home", str(home), "db", "migrate"]) == 0
    conn = db.open_db(home / "hub.sqlite3")
    for who in ("alice", "bob"):
        accounts.add_staff(conn, who, who.title(), "salesperson", "a long password 1")
        subs.subscribe(
            conn, who, f"https://fcm.googleapis.com/fcm/send/{who}", "B" * 87, "a" * 22, 1.0
        )
    assert main(["--home", str(home), "staff", "disable", "bob"]) == 0
    assert [s.staff_id for s in subs.active(conn)] == ["alice"]
    assert accounts.set_active(conn, "alice", False, actor="maria", on_disable=subs.forget_staff)
    assert subs.active(conn) == []
