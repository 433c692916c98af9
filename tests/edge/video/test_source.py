"""VideoSource against the real shared clips and a local MJPEG server that misbehaves on purpose."""

from __future__ import annotations

import http.server
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.video.source import Frame, VideoSource, VideoSourceError

DATA = Path(
    os.environ.get("STORESENSE_SHARED_DATA")
    or Path(__file__).resolve().parents[3].parent / "shared" / "data"
)
GIF = DATA / "faces" / "walking" / "face-demographics-walking-and-pause.gif"
MP4 = DATA / "video" / "intel" / "one-by-one-person-detection.mp4"
GIF_FRAMES = 41
MP4_FRAMES = 1394  # 10 fps, 139.4 s


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared data missing: {path} (set STORESENSE_SHARED_DATA)")
    return path


def assert_bgr(frame: Frame, shape: tuple[int, int]) -> None:
    assert frame.image_bgr.dtype == np.uint8
    assert frame.image_bgr.shape == (*shape, 3)


# ------------------------------------------------------------------------- files
@pytest.mark.parametrize("backend", ["auto", "pillow"])
def test_gif_all_frames_both_backends(backend: str) -> None:
    with VideoSource(str(need(GIF)), backend=backend) as src:  # type: ignore[arg-type]
        frames = list(src)
    assert len(frames) == GIF_FRAMES
    assert [f.index for f in frames] == list(range(GIF_FRAMES))
    for f in frames:
        assert_bgr(f, (270, 480))
    pts = [f.pts_s for f in frames]
    assert pts[0] == pytest.approx(0.0)
    assert all(b > a for a, b in itertools.pairwise(pts))  # type: ignore[operator]
    assert pts[-1] == pytest.approx(3.33, abs=0.02)
    assert src.stats.frames_yielded == GIF_FRAMES
    assert src.stats.corrupt_frames == 0


def test_gif_backends_decode_identically() -> None:
    a = [f.image_bgr for f in VideoSource(str(need(GIF)))]
    b = [f.image_bgr for f in VideoSource(str(GIF), backend="pillow")]
    assert len(a) == len(b)
    assert max(float(np.abs(x.astype(int) - y).mean()) for x, y in zip(a, b, strict=True)) < 1.0


def test_mp4_reads_to_eof() -> None:
    t0 = time.monotonic()
    with VideoSource(str(need(MP4))) as src:
        n = 0
        for f in src:
            if n == 0:
                assert_bgr(f, (432, 768))
            n += 1
    assert n == MP4_FRAMES
    assert src.backend_name.startswith("opencv")
    assert time.monotonic() - t0 < 30  # no pacing on files unless realtime


@pytest.mark.parametrize(
    ("fps", "expected"), [(8.0, 27), (4.0, 14), (12.0, GIF_FRAMES), (100.0, GIF_FRAMES)]
)
def test_fps_throttling_drops_frames_on_media_time(fps: float, expected: int) -> None:
    with VideoSource(str(need(GIF)), fps=fps) as src:
        frames = list(src)
    # fps=12 on GIF frames of 80/90 ms must not drop every other frame (jitter vs period)
    assert abs(len(frames) - expected) <= 1
    assert src.stats.frames_dropped == GIF_FRAMES - len(frames)
    gaps = [b.pts_s - a.pts_s for a, b in itertools.pairwise(frames)]  # type: ignore[operator]
    # kept frames sit one per 1/fps slot: never closer than a period minus one source frame
    assert min(gaps) >= min(1 / fps, 0.08) - 0.011


def test_mp4_fps_throttled_rate() -> None:
    with VideoSource(str(need(MP4)), fps=2.5) as src:
        n = sum(1 for _ in src)
    assert abs(n - 139.4 * 2.5) <= 2


def test_truncated_mp4_reads_what_it_can(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = need(MP4).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 5])
    with caplog.at_level(logging.WARNING), VideoSource(str(cut)) as src:
        frames = list(src)
    assert 0 < len(frames) < MP4_FRAMES
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoSourceError, match="cannot open"):
        VideoSource(str(bad))


def test_nonexistent_file_raises_at_open(tmp_path: Path) -> None:
    with pytest.raises(VideoSourceError, match="not found"):
        VideoSource(str(tmp_path / "nope.mp4"))


def test_loop_restarts_file() -> None:
    with VideoSource(str(need(GIF)), loop=True) as src:
        frames = list(itertools.islice(src, GIF_FRAMES * 2 + 5))
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[GIF_FRAMES].pts_s == pytest.approx(0.0)  # second pass starts over
    assert np.array_equal(frames[GIF_FRAMES].image_bgr, frames[0].image_bgr)


def test_loop_with_fps_keeps_rate_across_the_seam() -> None:
    with VideoSource(str(need(GIF)), loop=True, fps=4.0) as src:
        frames = list(itertools.islice(src, 40))
    # 40 frames at 4 fps ≈ 10 s of media ≈ 3 passes; no burst at the loop point
    passes = 1 + sum(1 for a, b in itertools.pairwise(frames) if b.pts_s < a.pts_s)  # type: ignore[operator]
    assert passes == 3


def test_realtime_paces_at_media_speed() -> None:
    with VideoSource(str(need(GIF)), realtime=True) as src:
        t0 = time.monotonic()
        frames = list(itertools.islice(src, 13))
        elapsed = time.monotonic() - t0
    assert elapsed == pytest.approx(frames[-1].pts_s, abs=0.15)


class _FlakyCapture:
    """A decoder that returns None, empty and float frames between good ones."""

    def __init__(self) -> None:
        good = np.zeros((4, 6, 3), np.uint8)
        self.images = [good, None, np.zeros((0, 0, 3), np.uint8), good.astype(np.float32), good]
        self.i = -1

    def grab(self) -> bool:
        self.i += 1
        return self.i < len(self.images)

    def pts_s(self) -> float:
        return self.i * 0.1

    def retrieve(self) -> np.ndarray | None:
        return self.images[self.i]

    def release(self) -> None:
        pass


def test_corrupt_frames_counted_and_skipped() -> None:
    src = VideoSource(str(need(GIF)))
    src._cap = _FlakyCapture()
    frames = list(src)
    assert [f.index for f in frames] == [0, 4]
    assert src.stats.corrupt_frames == 3


# ------------------------------------------------------------------ live MJPEG
class _MjpegServer:
    """MJPEG over HTTP at ~50 fps. The first client gets ``stall_after`` frames and then silence
    (socket held open, like a hung RTSP server); for ``down_s`` after that, new connections are
    dropped (camera rebooting); afterwards it streams normally."""

    def __init__(self, stall_after: int | None = None, down_s: float = 0.0) -> None:
        self.stop = threading.Event()
        self.stall_started: float | None = None
        self.connections = 0
        jpgs = []
        for i in range(10):
            img = np.full((96, 128, 3), 20 * i, np.uint8)
            jpgs.append(cv2.imencode(".jpg", img)[1].tobytes())
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.connections += 1
                first = outer.connections == 1
                stalled = outer.stall_started
                if stalled is not None and time.monotonic() < stalled + down_s:
                    self.close_connection = True
                    return  # no response at all: the client's open fails
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for n in itertools.count():
                        if outer.stop.is_set():
                            return
                        if first and stall_after is not None and n == stall_after:
                            outer.stall_started = time.monotonic()
                            outer.stop.wait(3.0)  # hold the socket, send nothing
                            return
                        jpg = jpgs[n % len(jpgs)]
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        self.wfile.write(head % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(0.02)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg() -> Iterator[type[_MjpegServer]]:
    servers: list[_MjpegServer] = []

    class Factory(_MjpegServer):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            servers.append(self)

    yield Factory
    for s in servers:
        s.close()


def test_live_stream_stall_reconnects(
    mjpeg: type[_MjpegServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = mjpeg(stall_after=20, down_s=1.0)
    before, after = 0, 0
    src = VideoSource(server.url, read_timeout_s=0.5, initial_backoff_s=0.05, max_backoff_s=0.3)
    deadline = time.monotonic() + 20
    with caplog.at_level(logging.WARNING, logger="edge.video.source"), src:
        for frame in src:
            assert_bgr(frame, (96, 128))
            if src.stats.reconnects == 0:
                before += 1
            else:
                after += 1
            if after >= 10 or time.monotonic() > deadline:
                break
    assert before >= 10
    assert after >= 10, src.stats
    assert src.stats.stalls >= 1
    assert src.stats.reconnects >= 1
    assert src.stats.open_failures >= 1  # the server refused while "rebooting"
    msgs = [r.getMessage() for r in caplog.records]
    assert any("stalled" in m for m in msgs)
    assert any("reconnected" in m for m in msgs)
    assert "password" not in " ".join(msgs)


def test_live_source_down_at_start_keeps_retrying() -> None:
    # Nothing listens on this port yet: open fails, backs off, and does not raise.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = VideoSource(
        f"http://user:secret@127.0.0.1:{port}/x.mjpg",
        initial_backoff_s=0.05,
        max_backoff_s=0.1,
        read_timeout_s=0.5,
    )
    assert "secret" not in src.name
    got: list[Frame] = []
    t = threading.Thread(target=lambda: got.extend(itertools.islice(src, 1)), daemon=True)
    t.start()
    time.sleep(0.8)
    src.close()
    t.join(timeout=3)
    assert not t.is_alive()  # close() ends a live iteration
    assert got == []
    assert src.stats.open_failures >= 3


def test_live_fps_throttle_and_slow_consumer_gets_latest(mjpeg: type[_MjpegServer]) -> None:
    server = mjpeg()
    with VideoSource(server.url, fps=5.0, read_timeout_s=2.0) as src:
        frames = []
        t0 = time.monotonic()
        for f in src:
            frames.append(f)
            if f.t_capture - t0 > 2.0:
                break
    n = len([f for f in frames if f.t_capture - frames[0].t_capture <= 1.0])
    assert 4 <= n <= 7  # ~5 per second from a ~50 fps stream
    assert src.stats.frames_dropped > 30

    with VideoSource(server.url, read_timeout_s=2.0) as src:
        slow = []
        for f in itertools.islice(src, 4):
            slow.append(f)
            time.sleep(0.3)  # consumer much slower than the camera
    gaps = [b.index - a.index for a, b in itertools.pairwise(slow)]
    assert min(gaps) >= 5  # it skipped ahead instead of draining a backlog
    assert time.monotonic() - slow[-1].t_capture < 1.0


def test_reconnect_backoff_doubles_with_jitter_up_to_the_cap_and_close_cuts_it_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tenacity policy: attempt n waits initial x 2^(n-1) ±20 %, never above the cap, and
    the wait is on the close event, so stopping a camera never waits out a long back-off."""
    import re
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = VideoSource(
        f"http://127.0.0.1:{port}/x.mjpg",
        initial_backoff_s=0.02,
        max_backoff_s=0.16,
        read_timeout_s=0.5,
    )
    t = threading.Thread(target=lambda: list(itertools.islice(src, 1)), daemon=True)
    with caplog.at_level(logging.WARNING, logger="edge.video.source"):
        t.start()
        time.sleep(1.2)
        src.close()
        t.join(timeout=3)
    waits = [
        (int(m[1]), float(m[2]))
        for r in caplog.records
        if (m := re.search(r"cannot open \(attempt (\d+)\); retrying in ([\d.]+)s", r.getMessage()))
    ]
    assert len(waits) >= 5, waits
    assert [n for n, _ in waits] == list(range(1, len(waits) + 1))
    for n, delay in waits:
        nominal = min(0.16, 0.02 * 2 ** (n - 1))
        assert 0.8 * nominal - 0.01 <= delay <= min(0.16, 1.2 * nominal) + 0.01, (n, delay)
    assert max(d for _, d in waits) <= 0.16 + 0.01
    assert src.stats.open_failures == len(waits)

    slow = VideoSource(
        f"http://127.0.0.1:{port}/x.mjpg", initial_backoff_s=30.0, max_backoff_s=30.0
    )
    t2 = threading.Thread(target=lambda: list(itertools.islice(slow, 1)), daemon=True)
    t2.start()
    time.sleep(0.3)  # the first open failed: now inside a 24-36 s wait
    started = time.monotonic()
    slow.close()
    t2.join(timeout=3)
    assert not t2.is_alive() and time.monotonic() - started < 2.0
    reader = slow._reader  # the thread sleeping in the back-off, not just the consumer
    assert reader is not None and not reader.is_alive()
    assert slow.stats.open_failures == 1
