"""`storesense faces review` (issue 13, item 6): the store's own evidence, a recommendation with
its reasons, and a change only by an active manager who confirms it, audited.

The evidence is made by the real claim machine (``hub.alerts.claims``: record_match, then a
claim or a "not this person"), in a real hub database, read back through the alerts room."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from hub.alerts import claims
from hub.alerts.review import MatchEvidence, match_evidence
from hub.faces import threshold
from hub.faces.gallery import Gallery
from hub.store import db
from storesense import messages as m
from storesense.paths import hub_db_path, template_key_path
from storesense.topics import Topics
from storesense_tools.cli import main
from storesense_tools.threshold_review import histogram, recommend
from tests.consent import consent, consent_taker
from tests.hub.conftest import unit

TOPICS = Topics("s1")
CONFIRMED = [0.20 + 0.005 * i for i in range(40)]  # 0.200 … 0.395
REPORTED = [0.41, 0.42, 0.43, 0.44]


def _evidence(conf: list[float], rej: list[float]) -> MatchEvidence:
    return MatchEvidence(sorted(conf), sorted(rej), unanswered=0, no_distance=0,
                         rejected_customers=len(rej))  # fmt: skip


def test_recommend_tightens_just_below_the_reports_when_they_sit_above_the_customers() -> None:
    rec = recommend(_evidence(CONFIRMED, REPORTED), 0.46)
    assert rec.action == "tighten"
    assert rec.threshold == pytest.approx(0.402)  # halfway 0.395 | 0.41, rounded down
    assert (rec.confirmed_lost, rec.reports_removed, rec.false_share_after) == (0, 4, 0.0)
    assert rec.false_share_now == pytest.approx(4 / 44)
    assert any("never looser" in r for r in rec.reasons)


def test_recommend_keeps_within_target_with_too_little_evidence_or_too_high_a_cost() -> None:
    within = recommend(_evidence(CONFIRMED * 3, [0.44]), 0.46)  # 1 in 121
    assert (within.action, within.threshold) == ("keep", 0.46) and "within" in within.reasons[0]
    few = recommend(_evidence(CONFIRMED[:10], REPORTED), 0.46)
    assert few.action == "keep" and "at least 30" in few.reasons[0]
    # reports spread among the customers: a threshold that removes them loses most customers
    mixed = recommend(_evidence(CONFIRMED, [0.21, 0.30, 0.35, 0.44]), 0.46)
    assert mixed.action == "keep" and "sit among genuine ones" in mixed.reasons[0]
    assert one_report_is_an_anecdote()


def one_report_is_an_anecdote() -> bool:
    rec = recommend(_evidence(CONFIRMED[:30], [0.45, 0.455]), 0.46)  # 6 % but two reports
    return rec.action == "keep" and "at least 3" in rec.reasons[0]


def test_never_recommends_looser_even_when_all_is_well() -> None:
    rec = recommend(_evidence([0.1] * 200, []), 0.46)
    assert rec.threshold == 0.46 and rec.action == "keep"


def test_histogram_marks_the_threshold_and_counts_each_side() -> None:
    text = histogram(_evidence(CONFIRMED, REPORTED), 0.46, 0.402)
    assert "<- threshold now 0.460" in text and "<- recommended 0.402" in text
    total_c = sum(int(line.split()[2]) for line in text.splitlines()[1:] if "#" in line)
    assert total_c == len(CONFIRMED)
    assert text.count("x") >= len(REPORTED)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A hub with 40 confirmed and 4 reported matches at the distances above, one expired."""
    (tmp_path / "store.yaml").write_text("store_id: s1\nrecognition: {threshold: 0.46}\n")
    assert main(["--home", str(tmp_path), "db", "migrate"]) == 0
    path = hub_db_path(tmp_path)
    consent_taker(path, "sam")
    consent_taker(path, "mia", role="manager")
    conn = db.connect(path)
    gallery = Gallery.open(conn, template_key_path(tmp_path))
    now = time.time()
    for i, d in enumerate([*CONFIRMED, *REPORTED, 0.3]):
        cid = f"R.{4000 + i}"
        gallery.enrol(cid, f"Customer {i}", consent(f"f-{i}"), [(unit(i), 0.9, "t")])
        with db.write(conn):
            out = claims.record_match(
                conn, TOPICS, customer_id=cid, camera_id="door-1", first_usable_at=now, now=now,
                cooldown_s=600, alert_ttl_s=60, track_id=f"{i:032x}", best_distance=d,
            )  # fmt: skip
        assert out.alert_id is not None
        if i < len(CONFIRMED):
            action = "claim"
        elif i < len(CONFIRMED) + len(REPORTED):
            action = "reject"
        else:
            continue  # nobody answered: stays open, counted as no evidence
        req = m.ClaimRequest(alert_id=out.alert_id, staff_id="sam", action=action)
        res = claims.handle_claim(conn, TOPICS, req, now)
        assert res is not None and res.outcome in ("won", "rejected")
    conn.close()
    return tmp_path


def test_match_evidence_reads_what_the_claim_machine_recorded(home: Path) -> None:
    ev = match_evidence(db.connect(hub_db_path(home)), time.time() - 3600)
    assert ev.confirmed == pytest.approx(sorted(CONFIRMED))
    assert ev.rejected == pytest.approx(REPORTED)
    assert (ev.unanswered, ev.rejected_customers, ev.no_distance) == (1, 4, 0)
    assert match_evidence(db.connect(hub_db_path(home)), time.time() + 60).confirmed == []


def _review(
    home: Path, *args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None
) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["--home", str(home), "faces", "review", *args])


def _threshold_rows(home: Path) -> list[tuple]:
    with sqlite3.connect(hub_db_path(home)) as conn:
        return [
            tuple(r) for r in conn.execute("SELECT threshold, staff_id FROM threshold_settings")
        ]


def test_review_shows_the_operating_point_and_recommends(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _review(home) == 0
    out = capsys.readouterr().out
    assert "threshold in force: 0.460 (the store config's recognition.threshold)" in out
    assert "40 confirmed matches, 4 'not this person' reports (4 customers), 1 unanswered" in out
    assert "<- threshold now 0.460" in out and "recommendation: tighten to 0.402" in out
    assert _review(home, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["recommendation"]["threshold"] == pytest.approx(0.402)
    assert doc["ids_breaking_rule"] == []
    assert _threshold_rows(home) == []  # a review alone changes nothing


def test_apply_needs_an_active_manager_and_the_value_typed_back(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = ("--apply", "--password-stdin")
    # a salesperson, with the right password
    assert _review(home, *apply, "--manager", "sam", "--confirm", "0.402",
                   stdin="correct horse battery\n", monkeypatch=monkeypatch) == 2  # fmt: skip
    assert "not an active manager account" in capsys.readouterr().err
    # the manager, wrong password
    assert _review(home, *apply, "--manager", "mia", "--confirm", "0.402",
                   stdin="wrong\n", monkeypatch=monkeypatch) == 2  # fmt: skip
    # the manager, no confirmation, no terminal
    assert _review(home, *apply, "--manager", "mia", stdin="correct horse battery\n",
                   monkeypatch=monkeypatch) == 2  # fmt: skip
    assert "pass --confirm 0.402" in capsys.readouterr().err
    # the manager, a different value typed back
    assert _review(home, *apply, "--manager", "mia", "--confirm", "0.44",
                   stdin="correct horse battery\n", monkeypatch=monkeypatch) == 2  # fmt: skip
    assert "not confirmed: nothing changed" in capsys.readouterr().err
    assert _threshold_rows(home) == []
    # the manager, confirmed
    assert _review(home, *apply, "--manager", "mia", "--confirm", "0.402",
                   stdin="correct horse battery\n", monkeypatch=monkeypatch) == 0  # fmt: skip
    assert "threshold 0.460 -> 0.402, confirmed by mia (audited)" in capsys.readouterr().out
    assert _threshold_rows(home) == [(pytest.approx(0.402), "mia")]
    conn = db.connect(hub_db_path(home))
    assert threshold.effective_threshold(conn, 0.46) == pytest.approx(0.402)
    row = conn.execute(
        "SELECT action, detail FROM audit WHERE action=? ORDER BY audit_id DESC LIMIT 1",
        (threshold.APPLY_THRESHOLD,),
    ).fetchone()
    assert row is not None and "0.460 -> 0.402 (tighter" in row[1] and "'not this person'" in row[1]
    # the review now starts from the applied value
    assert _review(home) == 0
    out = capsys.readouterr().out
    assert "threshold in force: 0.402 (applied" in out and "by mia" in out


def test_a_looser_threshold_is_only_a_managers_explicit_warned_choice(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _review(home, "--threshold", "0.5") == 2  # without --apply nothing happens
    assert "change nothing without --apply" in capsys.readouterr().err
    assert _review(home, "--apply", "--threshold", "0.5", "--manager", "mia", "--password-stdin",
                   "--confirm", "0.5", "--reason", "door camera replaced",
                   stdin="correct horse battery\n", monkeypatch=monkeypatch) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "WARNING: 0.500 is LOOSER than 0.460" in out
    detail = (
        db.connect(hub_db_path(home))
        .execute(
            "SELECT detail FROM audit WHERE action=? ORDER BY audit_id DESC LIMIT 1",
            (threshold.APPLY_THRESHOLD,),
        )
        .fetchone()[0]
    )
    assert "0.460 -> 0.500 (looser" in detail and "door camera replaced" in detail
