"""The login throttle: reserve before verifying, per account and client, growing delays."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hub.staff import accounts
from hub.staff.throttle import ACCOUNT, MAX_RECORDS, PAIR, LoginThrottle, Throttled
from hub.store import db
from storesense.paths import hub_db_path

PASSWORD = "correct horse battery"


def test_sixteen_concurrent_wrong_passwords_verify_at_most_ten(tmp_path: Path) -> None:
    """Real argon2 on 16 threads at once: the reservation is taken before the (slow) verify,
    so no attempt passes a check made before the others had failed (the old race)."""
    conn = db.migrate_db(hub_db_path(tmp_path))
    accounts.add_staff(conn, "bob", "Bob", "salesperson", PASSWORD)
    conn.close()
    throttle = LoginThrottle()
    verified: list[bool] = []
    refused: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def attempt() -> None:
        own = db.open_db(hub_db_path(tmp_path))
        start.wait()
        try:
            res = throttle.reserve("bob", "10.0.0.66")
        except Throttled as exc:
            with lock:
                refused.append(exc.retry_after_s)
            return
        ok = accounts.authenticate(own, "bob", "wrong password!") is not None
        with lock:
            verified.append(ok)
        throttle.failed(res)
        own.close()

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(verified) == 10 and not any(verified)
    assert len(refused) == 6 and all(r > 0 for r in refused)


def test_delays_grow_and_a_stranger_cannot_lock_a_colleague_out() -> None:
    t = LoginThrottle()
    now = 1000.0
    for _ in range(PAIR.free):  # a stranger at 10.0.0.66 guesses alice's password
        t.failed(t.reserve("alice", "10.0.0.66", now))
    waits = []
    for _ in range(4):
        with pytest.raises(Throttled) as exc:
            t.reserve("alice", "10.0.0.66", now)
        waits.append(exc.value.retry_after_s)
        now += exc.value.retry_after_s  # wait exactly as told, then fail again
        t.failed(t.reserve("alice", "10.0.0.66", now))
    assert waits == [1.0, 2.0, 4.0, 8.0]  # growing, not a 5-minute lock
    # alice herself, on her own phone: the per-account delay applies, capped at 30 s
    with pytest.raises(Throttled) as exc:
        t.reserve("alice", "10.0.0.5", now)
    assert exc.value.retry_after_s <= ACCOUNT.max_delay_s
    now += ACCOUNT.max_delay_s
    res = t.reserve("alice", "10.0.0.5", now)  # she gets in after at most 30 s
    t.succeeded(res)
    # alice's login does not reset the stranger's record: his next try waits 16 s
    stranger = PAIR.delay(PAIR.free + 4)
    assert stranger == 16.0
    with pytest.raises(Throttled):
        t.reserve("alice", "10.0.0.66", now)


def test_a_success_clears_its_own_pair_and_frees_its_reservation() -> None:
    t = LoginThrottle()
    for _ in range(PAIR.free - 1):
        t.failed(t.reserve("bob", "10.0.0.7", 0.0))
    t.succeeded(t.reserve("bob", "10.0.0.7", 0.0))  # the 10th: right password, not a failure
    t.failed(t.reserve("bob", "10.0.0.7", 1.0))  # so a 10th failure is still free
    with pytest.raises(Throttled) as exc:  # the account's 11th waits; the pair was cleared
        t.reserve("bob", "10.0.0.7", 1.0)
    assert exc.value.rule == "account"


def test_many_made_up_ids_do_not_grow_memory_for_ever() -> None:
    t = LoginThrottle()
    sizes = []
    for i in range(20_000):  # a new id and address every 0.9 s: 3 records each
        t.failed(t.reserve(f"id{i}", f"10.1.{i // 250}.{i % 250}", i * 0.9))
        sizes.append(len(t._records))
    assert max(sizes) <= 2 * MAX_RECORDS + 3  # not the 60,000 ever made
    assert ("account", "id0") not in t._records  # long out of its window: forgotten
