"""LoopGuard and paho's network thread: a callback that raises no longer ends the thread.

Real Mosquitto. Without ``guard_mqtt_callbacks`` paho re-raises a callback's exception in its
network thread, which ends ``loop_start``'s thread: the client looks alive and hears nothing
more (the second test shows that failure, so the first cannot pass by accident)."""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from storesense.config import parse_config
from storesense.loop_guard import LoopGuard, guard_mqtt_callbacks
from storesense.mqtt_client import connect, make_client
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

N = 3
log = logging.getLogger(__name__)


def _listen(tmp_path: Path, guarded: bool) -> tuple[list[bytes], LoopGuard]:
    require_mosquitto()
    got: list[bytes] = []
    guard = LoopGuard(log)
    with ExitStack() as stack:
        port = private_mosquitto(stack, tmp_path)
        cfg = parse_config(f"store_id: g1\nmqtt: {{port: {port}}}\n")
        topic = f"t/{uuid.uuid4().hex}"

        def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
            if len(got) < N:
                got.append(b"")
                raise RuntimeError("injected")
            got.append(bytes(msg.payload))

        sub = make_client("sub", cfg.mqtt, persistent=False)
        if guarded:
            guard_mqtt_callbacks(sub, guard, log)
        sub.on_message = on_message
        connect(sub, cfg.mqtt)
        stack.callback(sub.loop_stop)
        sub.subscribe(topic, 1)
        pub = make_client("pub", cfg.mqtt, persistent=False)
        connect(pub, cfg.mqtt)
        stack.callback(pub.loop_stop)
        wait_for(lambda: False, 0.5)  # the subscription is in place
        for i in range(N + 2):
            pub.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(5)
        wait_for(lambda: len(got) >= N + 2, 10)
    return got, guard


def test_a_guarded_client_counts_callback_errors_and_goes_on(tmp_path: Path) -> None:
    got, guard = _listen(tmp_path, guarded=True)
    assert got[N:] == [f"m{N}".encode(), f"m{N + 1}".encode()]
    assert guard.snapshot() == {"mqtt_callback": N}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_unguarded_client_stops_at_the_first_callback_error(tmp_path: Path) -> None:
    got, _ = _listen(tmp_path, guarded=False)
    assert got == [b""]  # paho's thread ended: nothing after the first message


def test_backoff_grows_while_a_step_keeps_failing_and_resets_on_success() -> None:
    guard = LoopGuard(log, backoff_max_s=4.0)
    assert guard.backoff_s() == 0

    def boom() -> None:
        raise sqlite_locked()

    pauses = []
    for _ in range(5):
        assert guard.step("flush", boom) is None
        pauses.append(guard.backoff_s())
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert guard.step("flush", lambda: 7) == 7
    assert guard.backoff_s() == 0 and guard.counts == {"flush": 5}


def sqlite_locked() -> Exception:
    import sqlite3

    return sqlite3.OperationalError("database is locked")


@pytest.mark.parametrize("level", [mqtt.MQTT_LOG_INFO, mqtt.MQTT_LOG_WARNING])
def test_other_paho_log_lines_are_not_counted(level: int) -> None:
    guard = LoopGuard(log)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    guard_mqtt_callbacks(client, guard, log)
    client.on_log(client, None, level, "Caught exception in on_message: x")  # type: ignore[misc]
    assert guard.snapshot() == {}
