"""The login throttle, kept by the hub (the one process that sees every login attempt).

Three rules, each a budget of free attempts in a window and then a *growing delay* (1 s, 2 s,
4 s, … up to a cap) between attempts, never a hard lock:

- per **account and client** (the pair a guesser at one phone uses): 10 free, delays up to
  15 minutes;
- per **client** (one address trying many accounts): 20 free, up to 15 minutes;
- per **account** from any client (a guesser rotating addresses): 10 free, delays capped at
  30 s. This is the only rule a stranger can make the real staff member feel, and it costs
  them at most a 30 s wait, not the 5-minute lock-out the old throttle let anyone trigger
  with 10 wrong passwords.

An attempt is **reserved before the password is verified** (``reserve``) and counts as a
failure while in flight; ``succeeded`` or ``failed`` settles it. So 16 wrong passwords sent
at once verify at most the free budget, instead of all passing a check made before any of
them had failed (the old check-then-verify race). A refused attempt costs no argon2 at all.

In memory: a hub restart forgets, which is acceptable for a store LAN.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    name: str
    free: int  # attempts in the window before delays start
    window_s: float
    max_delay_s: float
    base_delay_s: float = 1.0

    def delay(self, count: int) -> float:
        """The wait after the last attempt once ``count`` attempts are on record."""
        if count < self.free:
            return 0.0
        return min(self.base_delay_s * 2.0 ** (count - self.free), self.max_delay_s)


PAIR = Rule("account+client", free=10, window_s=900.0, max_delay_s=900.0)
CLIENT = Rule("client", free=20, window_s=900.0, max_delay_s=900.0)
ACCOUNT = Rule("account", free=10, window_s=900.0, max_delay_s=30.0)
MAX_RECORDS = 10_000
HARD_MAX_RECORDS = 200_000  # ~100 bytes each: a flood costs the hub at most ~20 MB


@dataclass
class _Record:
    fails: deque[float] = field(default_factory=deque)  # failures (and attempts in flight)
    last: float = -float("inf")


@dataclass(frozen=True)
class Reservation:
    """One attempt in flight: the keys it counts against and the time it was taken."""

    keys: tuple[tuple[Rule, str], ...]
    at: float


class Throttled(Exception):
    """Refused before verifying: try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: float, rule: str) -> None:
        super().__init__(f"too many failed logins ({rule}): try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s
        self.rule = rule


class LoginThrottle:
    """Thread-safe: the reservation and the settling may run on different threads."""

    def __init__(self, rules: tuple[Rule, Rule, Rule] = (PAIR, CLIENT, ACCOUNT)) -> None:
        self.pair_rule, self.client_rule, self.account_rule = rules
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()
        self._prune_at = MAX_RECORDS
        self.refused = 0

    def _record(self, rule: Rule, key: str, now: float) -> _Record:
        rec = self._records.setdefault((rule.name, key), _Record())
        while rec.fails and rec.fails[0] <= now - rule.window_s:
            rec.fails.popleft()
        return rec

    def _keys(self, staff_id: str, client: str) -> tuple[tuple[Rule, str], ...]:
        return (
            (self.pair_rule, f"{staff_id}\x00{client}"),
            (self.client_rule, client),
            (self.account_rule, staff_id),
        )

    def reserve(self, staff_id: str, client: str, now: float | None = None) -> Reservation:
        """Take one attempt, or raise ``Throttled`` with the wait; call before verifying."""
        now = time.time() if now is None else now
        keys = self._keys(staff_id, client)
        with self._lock:
            if len(self._records) > self._prune_at:  # many made-up ids or addresses
                self._prune(now)
            wait, rule_name = 0.0, ""
            for rule, key in keys:
                rec = self._record(rule, key, now)
                left = rec.last + rule.delay(len(rec.fails)) - now
                if left > wait:
                    wait, rule_name = left, rule.name
            if wait > 0:
                self.refused += 1
                raise Throttled(wait, rule_name)
            for rule, key in keys:
                rec = self._record(rule, key, now)
                rec.fails.append(now)  # a failure until proven otherwise
                rec.last = now
        return Reservation(keys, now)

    def _prune(self, now: float) -> None:
        """Forget records whose failures all left their window; if a flood inside the window
        still leaves too many, forget the least recent half (those guessers start afresh,
        which costs them argon2 time, not us memory). Amortised: the next prune waits until
        the table has doubled."""
        rules = {r.name: r for r in (self.pair_rule, self.client_rule, self.account_rule)}
        for (name, key), rec in list(self._records.items()):
            if not rec.fails or rec.fails[-1] <= now - rules[name].window_s:
                del self._records[(name, key)]
        if len(self._records) > HARD_MAX_RECORDS:
            by_age = sorted(self._records.items(), key=lambda kv: kv[1].last)
            for k, _ in by_age[: len(by_age) // 2]:
                del self._records[k]
        self._prune_at = max(MAX_RECORDS, 2 * len(self._records))

    def release(self, res: Reservation) -> None:
        """The attempt never reached a password check (the verifier was full): it counts
        neither way, as if it had not been made."""
        with self._lock:
            for rule, key in res.keys:
                rec = self._records.get((rule.name, key))
                if rec is not None:
                    with contextlib.suppress(ValueError):
                        rec.fails.remove(res.at)

    def failed(self, res: Reservation) -> None:
        """The password was wrong: the reservation stays on record as a failure."""

    def succeeded(self, res: Reservation) -> None:
        """The password was right: the attempt is no failure; the pair's record is cleared (the
        account's and client's keep other people's failures)."""
        with self._lock:
            for rule, key in res.keys:
                rec = self._records.get((rule.name, key))
                if rec is None:
                    continue
                if rule is self.pair_rule:
                    rec.fails.clear()
                    rec.last = -float("inf")
                else:
                    with contextlib.suppress(ValueError):
                        rec.fails.remove(res.at)
