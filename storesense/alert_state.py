"""The sequence rule for alert states, coded once for every server-side reader of ``alerts/+``.

The hub database owns alert state; the retained ``alerts/<id>`` messages are its projection,
and a reader (the web gateway, ``storesense_tools.sim_phone``) keeps at most a copy of that
projection. MQTT may hand a reader an older state after a newer one (a retained message on
reconnect racing a live one), so a copy applies a state only if its ``seq`` is higher than the
one it holds: "a message with a lower (or equal) seq than the one held is stale". The phone app
(``hub/web/static/app.js``) keeps the browser's own copy with the same rule, client side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storesense.messages import Alert


def supersedes(new: Alert, held: Alert | None) -> bool:
    """True if ``new`` replaces ``held``: nothing held yet, or a strictly higher seq."""
    return held is None or new.seq > held.seq


def is_open(alert: Alert, now: float) -> bool:
    """Open and not past ``expires_at`` (the hub refuses claims then, swept or not)."""
    return alert.state == "open" and alert.expires_at > now


@dataclass
class AlertBook:
    """A reader's copy of the retained alert states, kept by the seq rule."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    stale: int = 0  # states dropped because a newer one was already held

    def apply(self, alert: Alert) -> bool:
        """Keep ``alert`` if it supersedes what is held; False (and counted) if stale."""
        if not supersedes(alert, self.alerts.get(alert.alert_id)):
            self.stale += 1
            return False
        self.alerts[alert.alert_id] = alert
        return True

    def forget(self, alert_id: str) -> bool:
        """The hub cleared the retained message (a long-closed alert): drop the copy."""
        return self.alerts.pop(alert_id, None) is not None

    def get(self, alert_id: str) -> Alert | None:
        return self.alerts.get(alert_id)

    @property
    def max_seq(self) -> int:
        return max((a.seq for a in self.alerts.values()), default=0)

    def newer_than(self, since_seq: int) -> list[Alert]:
        """Every state with a seq above ``since_seq``, oldest first (a resync by seq)."""
        return sorted((a for a in self.alerts.values() if a.seq > since_seq), key=lambda a: a.seq)

    def open_ids(self, now: float) -> list[str]:
        return [a.alert_id for a in self.alerts.values() if is_open(a, now)]
