"""The camera agent's frame loop never dies silently: a role that raises on some frames is
logged and counted (``EdgeStatus.errors`` in every heartbeat, so ``storesense status`` shows
it), and the frames after it are analysed and published as usual. The bundled clip, a real
Mosquitto; the only fake is the fault (the role's ``process`` raising its first N calls)."""

from __future__ import annotations

import threading
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from edge.camera_agent import CameraAgent
from storesense import messages as m
from storesense.config import parse_config
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics
from tests.mosquitto_proc import private_mosquitto, require_mosquitto
from tests.waiting import wait_for

CLIP = (
    Path(__file__).resolve().parents[2]
    / "storesense_tools"
    / "demo_assets"
    / "face-demographics-walking-and-pause.gif"
)
N = 5


def test_frames_the_role_fails_on_are_counted_and_the_agent_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_mosquitto()
    with ExitStack() as stack:
        port = private_mosquitto(stack, tmp_path)
        store = f"e{uuid.uuid4().hex[:8]}"
        cfg = parse_config(
            f"store_id: {store}\nmqtt: {{port: {port}}}\n"
            f"cameras:\n  - {{id: door-1, role: entrance, source: '{CLIP}', fps: 12}}\n"
        )
        topics = Topics(store)
        got: list[tuple[str, bytes]] = []
        lock = threading.Lock()

        def on_message(c: object, u: object, msg: object) -> None:
            with lock:
                got.append((msg.topic, bytes(msg.payload)))  # type: ignore[attr-defined]

        listener = make_client(f"listen-{store}", cfg.mqtt, persistent=False)
        listener.on_message = on_message
        connect(listener, cfg.mqtt)
        listener.subscribe(f"{topics.base}/#", qos=1)
        stack.callback(listener.loop_stop)
        agent = CameraAgent(cfg, cfg.camera("door-1"), home=tmp_path, realtime=False)
        real = agent.role.process
        calls = [0]

        def flaky(image, t):  # type: ignore[no-untyped-def]
            calls[0] += 1
            if calls[0] <= N:
                raise RuntimeError("injected")
            return real(image, t)

        monkeypatch.setattr(agent.role, "process", flaky)
        agent.run()  # to the clip's end: it must not stop at the first failure
        assert calls[0] > N + 10, calls
        assert agent.guard.counts == {"frame": N}
        faces = [p for t, p in got if t == topics.faces("door-1")]

        def goodbye() -> m.EdgeStatus | None:
            with lock:
                beats = [m.decode(p, m.EdgeStatus) for t, p in got
                         if t == topics.edge_status("door-1") and p]  # fmt: skip
            return next((b for b in beats if not b.online), None)

        assert wait_for(lambda: goodbye() is not None, 10)
        assert goodbye().errors == {"frame": N}  # type: ignore[union-attr]
        assert faces, "frames after the failures were analysed and published"
