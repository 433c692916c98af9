"""The seq rule (``storesense.alert_state``), coded once for the gateway and the sim phones."""

from __future__ import annotations

from storesense import messages as m
from storesense.alert_state import AlertBook, is_open, supersedes


def _alert(seq: int, state: str = "open", alert_id: str = "a1", expires_at: float = 100.0):
    return m.Alert(
        alert_id=alert_id, seq=seq, state=state, customer_id="c1", customer_name="Ada",
        greeting="Ada has just walked in", camera_id="door-1", arrived_at=0.0,
        expires_at=expires_at,
    )  # fmt: skip


def test_an_older_or_equal_seq_is_stale_and_never_reopens() -> None:
    book = AlertBook()
    assert book.apply(_alert(5, "claimed"))
    assert not book.apply(_alert(4, "open"))  # late retained copy
    assert not book.apply(_alert(5, "open"))
    assert book.get("a1").state == "claimed" and book.stale == 2
    assert supersedes(_alert(6), book.get("a1")) and supersedes(_alert(1), None)


def test_resync_lists_newer_states_and_only_unexpired_open_ids() -> None:
    book = AlertBook()
    book.apply(_alert(3, "open", "a1", expires_at=100))
    book.apply(_alert(7, "open", "a2", expires_at=50))
    book.apply(_alert(5, "done", "a3"))
    assert [a.seq for a in book.newer_than(3)] == [5, 7] and book.max_seq == 7
    assert book.open_ids(now=60) == ["a1"]
    assert not is_open(_alert(1, expires_at=10), now=10)
    assert book.forget("a3") and not book.forget("a3")
