"""Tell systemd how a daemon is doing: ready, alive, stopping, and a one-line status.

The units in ``systemd/`` are ``Type=notify`` with ``WatchdogSec=``: systemd only counts the hub
or an edge agent as started once it says ``READY=1``, and kills and restarts it when the
``WATCHDOG=1`` pings stop — which catches a wedged worker thread that a plain "process still
exists" check never would. ``STATUS=`` shows up in ``systemctl status`` so an installer sees
"waiting for camera" instead of guessing.

When systemd-python (``systemd.daemon``) is importable it does the sending; otherwise the
pure-Python ``sdnotify`` package speaks the same protocol (one datagram to ``$NOTIFY_SOCKET``,
``@name`` read as an abstract socket). systemd-python is deliberately not a dependency: it
builds against libsystemd headers, which a plain ``pip install`` on a Pi does not have.
Outside systemd (``NOTIFY_SOCKET`` unset: a shell, the tests, the demo) every call is a cheap
no-op, so callers never need to check where they run. A failed send is logged and swallowed:
losing a status line must never take a daemon down.

Kept here rather than in sdnotify: which address kinds to try (sdnotify would ``connect`` a
``vsock:`` address as a file name), the logged-not-silent failure (sdnotify swallows every
error unless ``debug=True``, so it runs in debug mode and this module catches), the UTF-8
encoding (sdnotify encodes Latin-1, which cannot carry "caméra" as UTF-8 nor any non-Latin
text), and reconnecting when ``NOTIFY_SOCKET`` changes or a send fails (sdnotify connects once,
in its constructor).

Notifications are accepted from the main process only (``NotifyAccess=main``); call these from
any thread of the ``storesense`` process, never from a child process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import sdnotify

log = logging.getLogger(__name__)

try:  # pragma: no cover - depends on the host having systemd-python
    from systemd.daemon import notify as _systemd_notify
except ImportError:  # the usual case: sdnotify below is what runs (and what is tested)
    _systemd_notify: Callable[[str], bool] | None = None  # type: ignore[no-redef]

# One connected notifier per NOTIFY_SOCKET value: the watchdog pings every few seconds, and a
# socket per ping would be opened and left to the garbage collector. The lock keeps two
# threads (the hub's worker and its main thread) from racing on the swap.
_lock = threading.Lock()
_notifier: tuple[str, sdnotify.SystemdNotifier] | None = None


def _drop_notifier() -> None:
    global _notifier
    if _notifier is not None:
        sock = _notifier[1].socket
        if sock is not None:
            sock.close()
        _notifier = None


def _send_datagram(message: str) -> bool:
    """sd_notify(3) through sdnotify: one datagram to ``$NOTIFY_SOCKET``; False if not sent."""
    global _notifier
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if not address.startswith(("/", "@")):
        # e.g. systemd >= 253's "vsock:CID:PORT", only used for whole VMs, not our services
        log.debug("NOTIFY_SOCKET %r is not a unix socket; not notifying", address)
        return False
    # sdnotify encodes Latin-1; decoding our UTF-8 bytes as Latin-1 first makes its encoder
    # hand systemd exactly those bytes (Latin-1 maps each byte 0-255 to one code point).
    wire = message.encode("utf-8").decode("latin-1")
    with _lock:
        # A send on a kept connection can fail because systemd re-created its socket (daemon
        # re-exec): then connect afresh once and resend before calling it lost.
        for fresh in (_notifier is None or _notifier[0] != address, True):
            try:
                if fresh:
                    _drop_notifier()
                    _notifier = (address, sdnotify.SystemdNotifier(debug=True))
                assert _notifier is not None
                _notifier[1].notify(wire)
                return True
            except OSError as exc:
                _drop_notifier()
                if fresh:
                    key = message.split("=", 1)[0]
                    log.warning("could not notify systemd (%s): %s", key, exc)
                    return False
    return False  # pragma: no cover - the loop always returns


def notify(message: str) -> bool:
    """Send raw ``KEY=value`` lines; True if a service manager was told. No-op outside systemd."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    if _systemd_notify is not None:  # pragma: no cover - exercised only with systemd-python
        return bool(_systemd_notify(message))
    return _send_datagram(message)


def ready() -> bool:
    """Start-up is done (connected, loops running): systemd marks the unit active."""
    return notify("READY=1")


def watchdog() -> bool:
    """Still alive: call at least every :func:`watchdog_interval_s` from the loop that matters."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """Shutdown has begun: systemd stops expecting watchdog pings and shows "deactivating"."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line human status for ``systemctl status``.

    The protocol is newline-separated ``KEY=value`` assignments, so newlines in ``text`` are
    flattened: otherwise a status quoting, say, a camera error could inject ``READY=1``.
    """
    one_line = " ".join(text.splitlines())
    return notify(f"STATUS={one_line}")


def watchdog_interval_s() -> float | None:
    """How often to call :func:`watchdog`: half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    advises, so one late ping is not fatal. None when there is no watchdog for this process:
    the variable is unset or invalid, or ``WATCHDOG_PID`` names another process (the variables
    leaked to a child that must not ping on its parent's behalf)."""
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
