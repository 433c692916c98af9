"""The edge agent: one camera, on-device analysis, MQTT out. Never sends an image.

capture (``edge.video``) → the camera's role (``edge.role``: entrance faces or floor people,
picked once from the config) → the disk outbox (``edge.outbox``) → MQTT. The agent owns what
every role shares and never asks which role it runs.

The camera reader runs in its own thread and keeps only the newest frame, so slow analysis
drops frames instead of building a backlog; a heartbeat reports frame rate, rejections and
reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from edge.outbox import EdgeOutbox
from edge.role import Outgoing, Role
from edge.roles import make_role
from edge.video.source import VideoSource, VideoSourceError
from storesense import messages as m
from storesense import service_notify
from storesense.config import CameraConfig, ConfigError, StoreConfig
from storesense.face_seal import KeyFileSealer
from storesense.loop_guard import LoopGuard, guard_mqtt_callbacks
from storesense.mqtt_client import connect_in_background, make_client
from storesense.paths import face_seal_key_path
from storesense.topics import Topics

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
PROGRESS_GRACE_S = 60.0  # no frame and no reconnect attempt for this long = hung: stop pinging
RECONNECT_BACKOFF_MAX_S = 20.0  # keeps reconnect attempts (progress) well inside the grace


class CameraAgent:
    """One camera end to end; ``run`` blocks until the source ends or ``request_stop``."""

    def __init__(
        self,
        cfg: StoreConfig,
        camera: CameraConfig,
        *,
        home: Path,
        realtime: bool = True,
        face_key: Path | None = None,
    ) -> None:
        """``face_key``: this camera's face seal key file (``storesense.face_seal``; default
        ``<home>/secrets/face-seal.key``): face tracks are sealed with it before the outbox."""
        self.cfg = cfg
        self.camera = camera
        self.realtime = realtime
        self.topics = Topics(cfg.store_id)
        # First, so a camera that cannot run as configured fails before connecting anywhere.
        self.role: Role = make_role(cfg, camera, self.topics)
        self.sealer = self._sealer(face_key or face_seal_key_path(home))
        self.counters: Counter[str] = Counter()  # the agent's own; the role keeps its figures
        # exceptions the loops survived, by step: in every heartbeat (EdgeStatus.errors)
        self.guard = LoopGuard(log)
        self._stop = threading.Event()
        self._frames = 0
        self._fps = 0.0
        self._reconnects = 0
        self._source: VideoSource | None = None
        # The last will is fixed at connect time, before the outbox exists: nothing queued yet.
        offline = self._status(online=False, queue_depth=0).to_bytes()
        self.client = make_client(
            f"storesense-edge-{camera.id}",
            cfg.mqtt,
            will=(self.topics.edge_status(camera.id), offline),
        )
        guard_mqtt_callbacks(self.client, self.guard, log)
        self.outbox = EdgeOutbox(home / f"edge-{camera.id}-outbox.sqlite3", self.client)
        self.client.on_publish = lambda c, u, mid, rc, props: self.outbox.on_publish(mid)

    def _sealer(self, path: Path) -> KeyFileSealer | None:
        """The face tracks' sealer; None (plain tracks, warned) only for a camera with no key
        file while the store allows that (``face_seal.required`` false: a migration)."""
        if self.camera.role != "entrance":
            return None  # floor positions carry no biometric data
        if not path.exists():
            if self.cfg.face_seal.required:
                raise ConfigError(
                    f"camera {self.camera.id}: no face seal key at {path} and face_seal.required "
                    "is set (issue one with `storesense camera-key issue`, docs/deployment.md)"
                )
            log.warning(
                "camera %s: no face seal key at %s: face tracks go out UNSEALED (the broker "
                "and the outbox hold the embeddings in plain)", self.camera.id, path,
            )  # fmt: skip
            return None
        try:
            sealer = KeyFileSealer(path, self.camera.id)
        except ValueError as exc:
            raise ConfigError(f"camera {self.camera.id}: {exc}") from None
        log.info("camera %s: face tracks sealed under key %s", self.camera.id, sealer.key_id)
        return sealer

    def request_stop(self) -> None:
        self._stop.set()
        service_notify.stopping()

    def _progress_marker(self) -> tuple[int, int]:
        """Changes while the agent is doing its job: frames analysed, or camera retries."""
        src = self._source
        retries = (
            0
            if src is None
            else (
                src.stats.open_failures
                + src.stats.read_failures
                + src.stats.stalls
                + src.stats.reconnects
            )
        )
        return self._frames, retries

    def _watchdog_loop(self, interval_s: float) -> None:
        """systemd watchdog: ping while frames flow or the camera is being retried.

        A camera that is down for hours is not a hung agent (VideoSource keeps retrying, which
        counts as progress); an analysis step stuck for a minute is, and systemd restarts us.
        """
        state = [self._progress_marker(), time.monotonic()]
        while not self._stop.wait(interval_s):
            self.guard.step("watchdog", self._watchdog_round, state)

    def _watchdog_round(self, state: list) -> None:
        """One look: ``state`` is [the last progress marker, when it changed]."""
        now_marker = self._progress_marker()
        if now_marker != state[0]:
            state[:] = [now_marker, time.monotonic()]
        if time.monotonic() - state[1] < PROGRESS_GRACE_S:
            service_notify.watchdog()
        else:
            log.error(
                "camera %s: no progress for %.0f s; letting the watchdog restart us",
                self.camera.id,
                PROGRESS_GRACE_S,
            )

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        # "online" goes out from on_connect, after the CONNACK: published before it, it could
        # beat the CONNECT onto the wire (see EdgeOutbox._ready), and every reconnect re-announces.
        self.client.on_connect = self._on_connect
        connect_in_background(self.client, self.cfg.mqtt)  # the outbox holds what can't go yet
        service_notify.ready()  # not waiting for the broker: the outbox covers an outage
        wd = service_notify.watchdog_interval_s()
        if wd is not None:
            threading.Thread(
                target=self._watchdog_loop, args=(wd,), daemon=True, name="edge-watchdog"
            ).start()
        try:
            # Live sources reconnect inside VideoSource and end only on stop; files end at EOF
            # (or loop there). VideoSourceError means a file that cannot be opened at all.
            self._stream()
        except VideoSourceError as exc:
            self.counters["source_errors"] += 1
            log.error("camera %s: %s", self.camera.id, exc)
        finally:
            self.guard.step("flush", self._flush_role)
            goodbye = self.guard.step("goodbye", self._publish_status, False)
            self._drain(timeout_s=5.0)
            if goodbye is not None and self.client.is_connected():
                goodbye.wait_for_publish(timeout=2.0)
            self.client.disconnect()
            self.client.loop_stop()
            self.outbox.close()
            self._stop.set()  # ends the watchdog thread

    def _stream(self) -> None:
        last_beat = time.monotonic()
        window_start, window_frames = last_beat, 0
        with VideoSource(
            self.camera.source,
            fps=self.camera.fps,
            loop=self.camera.loop,
            realtime=self.realtime,
            max_backoff_s=RECONNECT_BACKOFF_MAX_S,
        ) as source:
            self._source = source
            for frame in source:
                if self._stop.is_set():
                    break
                self._frames += 1
                window_frames += 1
                # a frame the role fails on is logged and counted, and the next one comes
                self.guard.step("frame", self.process_frame, frame.image_bgr, frame.t_capture)
                self._reconnects = source.stats.reconnects
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_S:
                    self._fps = window_frames / (now - window_start)
                    window_start, window_frames, last_beat = now, 0, now
                    self.guard.step("heartbeat", self._publish_status, True)
                pause = self.guard.backoff_s()
                if pause and self._stop.wait(min(pause, HEARTBEAT_S)):
                    break

    def process_frame(self, image_bgr: np.ndarray, t_capture: float) -> None:
        """Analyse one frame (t_capture on the monotonic clock) and publish what is due."""
        self._publish_all(self.role.process(image_bgr, t_capture))

    # -- publishing ------------------------------------------------------------------------
    def _flush_role(self) -> None:
        self._publish_all(self.role.flush(time.monotonic(), everything=True))

    def _publish_all(self, messages: list[Outgoing]) -> None:
        """Into the outbox (on disk until acknowledged), then let it send what it can."""
        for msg in messages:
            out: m.FaceTrack | m.FloorPositions | m.SealedFaceTrack = msg
            if self.sealer is not None and isinstance(msg, m.FaceTrack):
                out = self.sealer.seal(msg)  # before the outbox: the disk never sees vectors
            self.outbox.send(self.role.topic, out.to_bytes())
        self.outbox.pump()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        rc: mqtt.ReasonCode,
        props: mqtt.Properties | None,
    ) -> None:
        if not rc.is_failure:
            self._publish_status(True)

    def _publish_status(self, online: bool) -> mqtt.MQTTMessageInfo | None:
        """Heartbeats skip the disk outbox: a stale one is worthless after an outage, and
        hours of them must not push face events out of the bounded outbox. Without a session
        there is nothing to send (None): the next connect announces the camera again.
        """
        if not self.client.is_connected():
            return None
        status = self._status(online=online)
        return self.client.publish(
            self.topics.edge_status(self.camera.id), status.to_bytes(), qos=1, retain=True
        )

    def _status(self, *, online: bool, queue_depth: int | None = None) -> m.EdgeStatus:
        """This camera's heartbeat; ``queue_depth`` defaults to the outbox's current depth."""
        return m.EdgeStatus(
            camera_id=self.camera.id,
            role=self.camera.role,
            online=online,
            fps=round(self._fps, 2),
            frames=self._frames,
            queue_depth=self.outbox.depth() if queue_depth is None else queue_depth,
            reconnects=self._reconnects,
            rejections=self.role.rejections(),
            errors=self.guard.snapshot(),
        )

    def _drain(self, timeout_s: float) -> None:
        """Give the outbox a chance to empty before disconnecting; the rest waits on disk."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.outbox.pump()
            if not self.outbox.depth():
                break
            time.sleep(0.02)
        if self.outbox.depth():
            log.warning(
                "camera %s: %d messages left in the outbox for the next start",
                self.camera.id,
                self.outbox.depth(),
            )

    def rejections(self) -> dict[str, int]:
        """The role's refusals so far (also in every status heartbeat)."""
        return self.role.rejections()
