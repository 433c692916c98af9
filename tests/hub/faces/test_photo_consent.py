"""The "photo shown to staff at arrival" consent end to end, on real photos and a real hub file.

``storesense enroll`` records the consent (or a hint) with the consent record; a door alert is
raised through the claim machine; the hub's op table (``hub.api.dispatch.Api``, as the worker
calls it) then shows the photo for that alert only, audits each display, refuses a colleague
once it is claimed, refuses everyone once the alert has ended and after a withdrawal
(``storesense customer withdraw-photo``). Without the consent there is at most the hint.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from hub.alerts import claims as alerts
from hub.api.dispatch import Api
from hub.staff.accounts import add_staff
from hub.store import db
from storesense import messages as m
from storesense import rpc
from storesense.config import parse_config
from storesense.paths import hub_db_path
from storesense.topics import Topics
from storesense_tools.cli import main
from tests.consent import consent_taker

PASSWORD = "correct horse battery"
TOPICS = Topics("pc1")


@pytest.fixture
def home(tmp_path: Path, shared_data: Path) -> Path:
    """A hub home that keeps enrolment photos; Ann agreed to the photo, Ben gave a hint."""
    (tmp_path / "store.yaml").write_text("store_id: pc1\nprivacy: {keep_enrolment_photo: true}\n")
    assert main(["--home", str(tmp_path), "db", "migrate"]) == 0
    consent_taker(hub_db_path(tmp_path), "bob")
    faces = shared_data / "faces" / "orl"
    enrol = ["--home", str(tmp_path), "enroll", "--consent", "form-1", "--staff", "bob"]
    ann = [str(faces / "s1" / f"{i}.pgm") for i in (1, 2)]
    ben = [str(faces / "s2" / f"{i}.pgm") for i in (1, 2)]
    assert main([*enrol, "--customer", "ann", "--name", "Ann", "--photo-consent", *ann]) == 0
    assert (
        main([*enrol, "--customer", "ben", "--name", "Ben", "--hint", "tall, red scarf", *ben]) == 0
    )
    conn = db.connect(hub_db_path(tmp_path))
    for staff_id in ("alice", "carl"):
        add_staff(conn, staff_id, staff_id.title(), "salesperson", PASSWORD)
    add_staff(conn, "maria", "Maria", "manager", PASSWORD)
    conn.close()
    return tmp_path


@pytest.fixture
def api(home: Path):
    conn = db.connect(hub_db_path(home))
    yield Api(conn, parse_config("store_id: pc1\n"), home, TOPICS)
    conn.close()


def call(api: Api, op: rpc.Op, args: dict) -> rpc.Reply:
    now = time.time()
    reply = api.handle(rpc.Request(op=op, args=args, deadline=now + 5).to_bytes(), now)
    assert reply is not None
    return reply


def token(api: Api, staff_id: str) -> str:
    reply = call(api, "login", {"staff_id": staff_id, "password": PASSWORD, "client": "t"})
    assert reply.ok, reply.detail
    return rpc.LoginResult.model_validate(reply.result).token


def arrival(api: Api, customer: str) -> str:
    now = time.time()
    with db.write(api.conn):
        out = alerts.record_match(
            api.conn, TOPICS, customer_id=customer, camera_id="door-1",
            first_usable_at=now, now=now, cooldown_s=0, alert_ttl_s=60,
        )  # fmt: skip
    return out.alert_id


def photo_rows(api: Api) -> list[tuple[str, str, str]]:
    return [
        tuple(r)
        for r in api.conn.execute(
            "SELECT actor, customer_id, detail FROM audit WHERE action='show_photo' "
            "ORDER BY audit_id"
        )
    ]


def test_photo_for_this_alert_only_audited_then_refused(api: Api, shared_data: Path) -> None:
    alice, carl, maria = (token(api, s) for s in ("alice", "carl", "maria"))
    alert_id = arrival(api, "ann")
    args = {"customer_id": "ann", "alert_id": alert_id}
    hint = call(api, "arrival_hint", {"token": carl, **args})
    assert hint.ok and hint.result == {"photo": True, "hint": None}
    shown = call(api, "arrival_photo", {"token": carl, **args})
    assert shown.ok
    answer = rpc.FileAnswer.model_validate(shown.result)
    kept = shared_data / "faces" / "orl" / "s1"
    assert base64.b64decode(answer.content_b64) in {
        (kept / f"{i}.pgm").read_bytes() for i in (1, 2)
    }  # the best accepted photo, decrypted
    assert photo_rows(api) == [("carl", "ann", f"arrival photo for alert {alert_id}")]
    # another customer's id with this alert: refused, nothing decrypted
    assert call(api, "arrival_photo", {"token": carl, "customer_id": "ben",
                                       "alert_id": alert_id}).status == 404  # fmt: skip

    claim = m.ClaimRequest(alert_id=alert_id, staff_id="alice")
    assert alerts.handle_claim(api.conn, TOPICS, claim, time.time()).outcome == "won"
    assert call(api, "arrival_photo", {"token": carl, **args}).status == 403  # a colleague's
    assert call(api, "arrival_photo", {"token": alice, **args}).ok
    assert call(api, "arrival_photo", {"token": maria, **args}).ok

    done = m.ClaimRequest(alert_id=alert_id, staff_id="alice", action="done")
    alerts.handle_claim(api.conn, TOPICS, done, time.time())
    ended = call(api, "arrival_photo", {"token": alice, **args})
    assert ended.status == 404 and "ended" in str(ended.detail)
    assert call(api, "arrival_hint", {"token": alice, **args}).status == 404
    assert [r[0] for r in photo_rows(api)] == ["carl", "alice", "maria"]  # one row per display
    assert call(api, "arrival_photo", {"customer_id": "ann", "alert_id": alert_id,
                                       "token": "nope"}).status == 401  # fmt: skip


def test_without_the_consent_only_the_hint(api: Api) -> None:
    carl = token(api, "carl")
    alert_id = arrival(api, "ben")
    args = {"token": carl, "customer_id": "ben", "alert_id": alert_id}
    assert call(api, "arrival_hint", args).result == {"photo": False, "hint": "tall, red scarf"}
    refused = call(api, "arrival_photo", args)
    assert refused.status == 404 and "did not agree" in str(refused.detail)
    assert photo_rows(api) == []
    enrol_row = api.conn.execute(
        "SELECT detail FROM audit WHERE action='enrol' AND customer_id='ben'"
    ).fetchone()[0]
    assert "photo shown to staff at arrival: no; hint for staff given" in enrol_row


def test_withdrawn_on_the_manager_op(
    api: Api, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    carl, maria = token(api, "carl"), token(api, "maria")
    alert_id = arrival(api, "ann")
    args = {"token": carl, "customer_id": "ann", "alert_id": alert_id}
    assert call(api, "arrival_photo", args).ok
    # a salesperson cannot withdraw for the customer; a manager can (the manager page)
    wd = {"customer_id": "ann", "reason": "asked at the till"}
    assert call(api, "withdraw_photo_consent", {"token": carl, **wd}).status == 403
    assert call(api, "withdraw_photo_consent", {"token": maria, **wd}).ok
    assert call(api, "arrival_photo", args).status == 404
    assert call(api, "arrival_hint", args).result == {"photo": False, "hint": None}
    assert call(api, "withdraw_photo_consent", {"token": maria, **wd}).status == 404  # again
    row = api.conn.execute(
        "SELECT actor, detail FROM audit WHERE action='withdraw_photo_consent'"
    ).fetchone()
    assert row[0] == "maria" and "asked at the till" in row[1]
    assert len(photo_rows(api)) == 1  # the one display before the withdrawal
    # the face profile stays: withdrawing this consent is not erasure
    assert api.conn.execute("SELECT count(*) FROM templates WHERE customer_id='ann'").fetchone()[0]
    assert main(["--home", str(home), "customer", "withdraw-photo", "ann"]) == 2
    assert "no photo consent on file" in capsys.readouterr().err


def test_cli_withdraw_and_refusal_without_kept_photos(
    home: Path, tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["--home", str(home), "customer", "withdraw-photo", "ann", "--reason", "phone"]) == 0
    )
    assert "photo no longer shown" in capsys.readouterr().out
    conn = db.connect(hub_db_path(home))
    assert (
        conn.execute("SELECT photo_consent_at FROM customers WHERE customer_id='ann'").fetchone()[0]
        is None
    )
    # a store that keeps no photos cannot take the photo consent: refused, nothing written
    other = tmp_path / "other"
    other.mkdir()
    assert main(["--home", str(other), "db", "migrate"]) == 0
    photo = str(shared_data / "faces" / "orl" / "s3" / "1.pgm")
    enrol = ["--home", str(other), "enroll", "--customer", "cy", "--name", "Cy",
             "--consent", "form-3", "--staff", "bob", "--photo-consent", photo]  # fmt: skip
    assert main(enrol) == 2
    assert "needs a kept enrolment photo" in capsys.readouterr().err
    assert (
        db.connect(hub_db_path(other)).execute("SELECT count(*) FROM customers").fetchone()[0] == 0
    )
