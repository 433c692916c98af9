"""Frames from a camera, an RTSP/HTTP stream, a video file or a GIF — and survive them failing.

An entrance camera is the one part of the store we do not control: Wi-Fi drops, PoE switches
reboot, RTSP servers stop sending without closing the socket. The agent must come back on its own
and say what happened in one log line, so:

* live sources are read by a reader thread into a 1-slot "newest only" queue: a slow consumer never
  backs the camera up and always analyses the latest picture instead of a growing backlog;
* a ``cap.read()`` that blocks is caught by a watchdog (``read_timeout_s``); the blocked thread is
  abandoned (it releases its own capture when the read returns) and a fresh one reconnects with
  capped, jittered exponential backoff (``tenacity``), so a fleet of agents does not hammer a
  recovering NVR;
* files are read synchronously (deterministic for tests and evaluation) and end cleanly at EOF,
  or restart when ``loop=True``; ``realtime=True`` paces them at media speed for demos.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential
from tenacity.wait import wait_base

from edge.video.capture import Capture, CvCapture, PillowGifCapture, clean_frame, redact

log = logging.getLogger(__name__)

_CORRUPT_IN_A_ROW_RECONNECT = 30  # a live stream that only yields garbage is treated as lost
_TS_EPS = 1e-6  # keeps exact half-slot timestamps from flickering between slots


class VideoSourceError(RuntimeError):
    """The source cannot be used at all (missing file, unreadable format) — retrying won't help."""


class _SourceLost(Exception):
    """A live source failed (would not open, read failed, only garbage): back off and retry."""

    def __init__(self, counter: str, what: str) -> None:
        super().__init__(what)
        self.counter = counter  # the VideoSourceStats field that counts this kind of failure
        self.what = what


class _Jittered(wait_base):
    """``inner``'s delay times a uniform ±20 %, still capped: agents restarted together (a PoE
    switch reboot) must not retry in lockstep. tenacity's own jitter waits are additive or
    full-range; the cap-relative spread is what the fleet was tuned with."""

    def __init__(self, inner: wait_base, cap_s: float) -> None:
        self.inner = inner
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        return min(self.cap_s, self.inner(retry_state) * random.uniform(0.8, 1.2))


@dataclass
class _ReaderState:
    """What one reader thread carries from one retried step to the next."""

    cap: Capture | None
    reconnect: bool  # the next successful open is a reconnect
    corrupt_in_row: int = 0


@dataclass(frozen=True, slots=True)
class Frame:
    """One analysed frame. ``t_capture`` is on the source's clock (monotonic by default)."""

    index: int  # position in the source (counts dropped frames too; keeps growing across loops)
    t_capture: float
    pts_s: float | None  # media time in the file; None for live sources
    image_bgr: np.ndarray  # HxWx3 uint8, BGR like OpenCV


@dataclass
class VideoSourceStats:
    """Counters for the health topic; every failure event is also logged once as a WARNING."""

    frames_read: int = 0
    frames_yielded: int = 0
    frames_dropped: int = 0  # throttled to fps, or overwritten because the consumer was slower
    corrupt_frames: int = 0
    read_failures: int = 0  # read() reported failure on a live source
    stalls: int = 0  # read() blocked longer than read_timeout_s
    open_failures: int = 0
    reconnects: int = 0  # successful re-opens after the source was lost

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class VideoSource:
    """Iterate over :class:`Frame` objects from any configured camera source.

    ``fps`` limits analysed frames (surplus frames are dropped, never slept on for files unless
    ``realtime``); ``None`` keeps every frame. Iteration ends at EOF for files and only on
    :meth:`close` for live sources, which reconnect forever — a door camera coming back at 3 am
    must be picked up without a human.
    """

    def __init__(
        self,
        source: str | int,
        *,
        fps: float | None = None,
        loop: bool = False,
        realtime: bool = False,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        read_timeout_s: float = 5.0,
        backend: Literal["auto", "opencv", "pillow"] = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError("fps must be > 0 or None")
        self.source = source
        self.name = redact(source)
        self.fps = fps
        self.loop = loop
        self.realtime = realtime
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.read_timeout_s = read_timeout_s
        self.backend = backend
        self.clock = clock
        self.stats = VideoSourceStats()
        self.backend_name = ""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._t0: float | None = None  # throttle grid origin
        self._last_slot = -1
        self._index = 0
        self.is_live = self._classify(source)
        self._cap: Capture | None = None
        if not self.is_live:
            self._path = Path(str(source).removeprefix("file://"))
            if not self._path.is_file():
                raise VideoSourceError(f"video file not found: {self._path}")
            self._cap = self._open_file()
        # live-source reader state
        self._slot: queue.Queue[Frame] = queue.Queue(maxsize=1)
        self._gen = 0
        self._reader: threading.Thread | None = None
        # (generation, when) the current reader entered a blocking read; None between reads
        self._op_started: tuple[int, float] | None = None

    # ----------------------------------------------------------------- opening
    @staticmethod
    def _classify(source: str | int) -> bool:
        if isinstance(source, int):
            return True
        s = str(source)
        return s.isdigit() or ("://" in s and not s.startswith("file://")) or s.startswith("/dev/")

    def _open_file(self) -> Capture:
        is_gif = self._path.suffix.lower() == ".gif"
        if self.backend != "pillow":
            cap = cv2.VideoCapture(str(self._path))
            if cap.isOpened():
                self.backend_name = f"opencv-{cap.getBackendName()}"
                return CvCapture(cap)
            cap.release()
        if is_gif and self.backend != "opencv":
            try:
                pil = PillowGifCapture(self._path)
            except Exception as exc:  # Pillow raises several types for bad files
                raise VideoSourceError(f"cannot decode GIF {self._path}: {exc}") from None
            self.backend_name = "pillow"
            return pil
        raise VideoSourceError(f"OpenCV cannot open video file {self._path} (unsupported/corrupt)")

    def _open_live(self) -> Capture | None:
        src = self.source
        if isinstance(src, str) and src.isdigit():
            src = int(src)
        if isinstance(src, int):
            cap = cv2.VideoCapture(src)
        else:
            # FFmpeg's own timeouts only free an abandoned reader thread; the watchdog, which
            # fires first, is what actually triggers the reconnect.
            ms = int(self.read_timeout_s * 2000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            return None
        self.backend_name = f"opencv-{cap.getBackendName()}"
        return CvCapture(cap)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    # ------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Frame]:
        return self._iter_live() if self.is_live else self._iter_file()

    def _due(self, ts: float) -> bool:
        """fps throttle on a fixed time grid: the first frame nearest each 1/fps slot is kept.

        A grid (not "period since the last kept frame") never drifts and does not drop every
        other frame of a source whose rate is just above ``fps`` with jittery timestamps (GIF
        frames of 80/90 ms at fps=12); the long-run rate never exceeds ``fps``.
        """
        if self.fps is None:
            return True
        if self._t0 is None:
            self._t0 = ts
        slot = math.floor((ts - self._t0) * self.fps + 0.5 + _TS_EPS)
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True

    def _iter_file(self) -> Iterator[Frame]:
        offset = 0.0  # timeline offset so throttling/pacing stay monotonic across loops
        last_pts = 0.0
        step = 1.0 / 25
        wall0: float | None = None
        n_pass = 0
        while not self._closed.is_set():
            cap = self._cap
            if cap is None:
                return
            if not cap.grab():
                if not self._end_of_pass(n_pass):
                    return
                offset += last_pts + step
                n_pass = 0
                continue
            n_pass += 1
            self._count("frames_read")
            pts = cap.pts_s()
            if pts is not None and pts - last_pts > 0:
                step = pts - last_pts
            last_pts = pts if pts is not None else last_pts + step
            ts = offset + last_pts
            index = self._index
            self._index += 1
            if not self._due(ts):
                self._count("frames_dropped")
                continue
            if self.realtime:
                now = self.clock()
                wall0 = now - ts if wall0 is None else wall0
                ahead = wall0 + ts - now
                if ahead > 0:
                    time.sleep(ahead)
                elif -ahead > (1.0 / self.fps if self.fps else step):
                    self._count("frames_dropped")  # behind like a camera would be: skip
                    continue
            img = clean_frame(cap.retrieve())
            if img is None:
                self._count("corrupt_frames")
                log.warning("%s: corrupt/empty frame %d skipped", self.name, index)
                continue
            self._count("frames_yielded")
            yield Frame(index, self.clock(), last_pts, img)

    def _end_of_pass(self, n_pass: int) -> bool:
        """Handle EOF: report truncation, reopen when looping. Returns False to stop."""
        expected = getattr(self._cap, "frame_count", 0)
        if expected and n_pass < expected - 1:
            log.warning(
                "%s: ended after %d of %d frames (truncated or damaged file)",
                self.name,
                n_pass,
                expected,
            )
        if not self.loop or n_pass == 0:
            if self.loop:
                log.warning("%s: no frames in a whole pass; not looping", self.name)
            return False
        if self._cap is not None:
            self._cap.release()
        self._cap = self._open_file()
        return True

    def _iter_live(self) -> Iterator[Frame]:
        self._ensure_reader()
        while not self._closed.is_set():
            try:
                frame = self._slot.get(timeout=min(0.1, self.read_timeout_s / 4))
            except queue.Empty:
                self._watchdog()
                continue
            if not self._due(frame.t_capture):
                self._count("frames_dropped")
                continue
            self._count("frames_yielded")
            yield frame

    def _ensure_reader(self) -> None:
        if self._reader is None or not self._reader.is_alive():
            self._start_reader(reconnect=False)

    def _start_reader(self, *, reconnect: bool) -> None:
        with self._lock:
            self._gen += 1
            gen = self._gen
            self._op_started = None
        self._reader = threading.Thread(
            target=self._reader_loop, args=(gen, reconnect), name=f"video-{self.name}", daemon=True
        )
        self._reader.start()

    def _watchdog(self) -> None:
        """Called while the consumer waits: replace a reader stuck in read() or one that died."""
        reader = self._reader
        if reader is not None and not reader.is_alive() and not self._closed.is_set():
            log.warning("%s: reader thread ended unexpectedly; restarting it", self.name)
            self._start_reader(reconnect=True)
            return
        started = self._op_started
        if started is None or started[0] != self._gen:
            return
        if self.clock() - started[1] <= self.read_timeout_s:
            return
        self._count("stalls")
        log.warning(
            "%s: stream stalled (no frame for %.1fs); abandoning the connection and reconnecting",
            self.name,
            self.read_timeout_s,
        )
        self._start_reader(reconnect=True)  # the blocked thread sees a stale generation and exits

    def _retrying(self, live: Callable[[], bool]) -> Retrying:
        """Back-off policy of one reader thread: capped exponential delay with ±20 % jitter.

        The delay grows with the failures since the last clean frame (each retried step ends
        at a clean frame, so a good frame starts the count again); it sleeps on the close
        event, so ``close`` interrupts it, and stops quietly once this reader is stale.
        """
        return Retrying(
            retry=retry_if_exception_type(_SourceLost),
            wait=_Jittered(
                wait_exponential(multiplier=self.initial_backoff_s, max=self.max_backoff_s),
                self.max_backoff_s,
            ),
            stop=lambda _: not live(),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            retry_error_callback=lambda _: None,
        )

    def _sleep(self, seconds: float) -> None:
        """Back-off wait that ``close`` interrupts."""
        self._closed.wait(seconds)

    def _log_retry(self, state: RetryCallState) -> None:
        """Count a failure and log it once, with the wait tenacity chose."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, _SourceLost):
            return
        self._count(exc.counter)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s: %s (attempt %d); retrying in %.2fs",
            self.name,
            exc.what,
            state.attempt_number,
            delay,
        )

    def _reader_loop(self, gen: int, reconnect: bool) -> None:
        """Own one capture at a time; on any loss back off, reopen and keep going."""

        def live() -> bool:
            return gen == self._gen and not self._closed.is_set()

        state = _ReaderState(cap=None, reconnect=reconnect)
        retrying = self._retrying(live)
        try:
            while live():
                retrying(self._next_clean_frame, gen, state, live)
        finally:
            if state.cap is not None:
                state.cap.release()

    def _next_clean_frame(self, gen: int, state: _ReaderState, live: Callable[[], bool]) -> None:
        """One retried step: (re)open if needed and read until one clean frame is queued.

        Raises ``_SourceLost`` for a failure worth a back-off; returns without a frame when
        this reader was closed or replaced meanwhile.
        """
        if state.cap is None:
            if not live():
                return
            state.cap = self._open_live()
            if state.cap is None:
                raise _SourceLost("open_failures", "cannot open")
            if state.reconnect and live():
                self._count("reconnects")
                log.warning("%s: reconnected (%s)", self.name, self.backend_name)
            state.reconnect = True  # any later open is a reconnect
        cap = state.cap
        while live():
            self._op_started = (gen, self.clock())
            try:
                ok = cap.grab()
                img = cap.retrieve() if ok else None
            except cv2.error:
                ok, img = False, None
            t = self.clock()
            if not live():
                return
            self._op_started = None
            if not ok or state.corrupt_in_row >= _CORRUPT_IN_A_ROW_RECONNECT:
                cap.release()
                state.cap = None
                what = "read failed" if not ok else "only corrupt frames"
                state.corrupt_in_row = 0
                raise _SourceLost("read_failures", f"{what}; reconnecting")
            self._count("frames_read")
            index = self._index
            self._index += 1
            clean = clean_frame(img)
            if clean is None:
                self._count("corrupt_frames")
                state.corrupt_in_row += 1
                log.warning("%s: corrupt/empty frame %d skipped", self.name, index)
                continue
            state.corrupt_in_row = 0
            self._put_newest(Frame(index, t, None, clean))
            return

    def _put_newest(self, frame: Frame) -> None:
        """1-slot queue: replace an unconsumed frame so the consumer always gets the latest."""
        while True:
            try:
                self._slot.put_nowait(frame)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._slot.get_nowait()
                    self._count("frames_dropped")

    # ------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stop the reader and release the capture; safe to call twice."""
        self._closed.set()
        with self._lock:
            self._gen += 1
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=1.0)  # a reader blocked in FFmpeg exits on its own later
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
