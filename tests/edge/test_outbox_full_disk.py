"""The edge outbox on a disk that is full: counted and logged, no crash, nothing lost on the wire.

The real thing is a small tmpfs filled to the last byte (needs root and mount rights, as a CI
container usually has); where mounting is not allowed the same SQLITE_FULL path is reached with
``PRAGMA max_page_count``, which is how SQLite itself reports a full disk.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import EdgeOutbox
from storesense.config import MqttConfig
from storesense.mqtt_client import connect_in_background
from storesense_tools.embedded_broker import EmbeddedBroker, free_port
from tests.edge.test_outbox import _collector, _edge_client
from tests.waiting import wait_for as _wait


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size_kb: int = 512) -> Iterator[Path]:
    mnt = tmp_path / f"sd-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); see the PRAGMA variant")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write one file until the filesystem says ENOSPC; return it so the test can free space."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:  # unbuffered: ENOSPC surfaces here, not later at close()
            fh.write(b"\0" * 4096)
    return filler


def _deliver_all_after_full_disk(outbox: EdgeOutbox, client, cfg: MqttConfig, n: int) -> None:
    client.loop_stop()  # no reconnect (and flush) before the collector has subscribed
    with EmbeddedBroker(port=cfg.port):
        sub, got = _collector(cfg)
        client.loop_start()
        assert _wait(lambda: (outbox.pump(), len(got))[1] >= n, 20), (
            f"only {len(got)} of {n} arrived"
        )
        assert got[:n] == [f"m{i:03d}".encode() for i in range(n)]  # in order, none missing
        sub.disconnect()
        sub.loop_stop()
    client.loop_stop()


def test_outbox_on_a_real_full_tmpfs(tmp_path: Path) -> None:
    cfg = MqttConfig(port=free_port())
    with small_tmpfs(tmp_path) as sd:
        client, outbox = _edge_client(cfg, sd / "box.sqlite3")
        connect_in_background(client, cfg)  # broker down: everything waits
        for i in range(10):
            outbox.send("t/faces", f"m{i:03d}".encode())
        assert outbox.counters["disk_write_errors"] == 0
        filler = fill(sd)
        big = b"x" * 2000
        for i in range(10, 60):
            outbox.send("t/faces", f"m{i:03d}".encode() + b"|" + big)
        # the disk ran out part-way: counted, not raised
        assert outbox.counters["disk_write_errors"] > 0
        filler.unlink()  # the installer frees space: writes resume
        errors = outbox.counters["disk_write_errors"]
        outbox.send("t/faces", b"m060")
        assert outbox.counters["disk_write_errors"] == errors
        client.loop_stop()  # no reconnect (and flush) before the collector has subscribed
        with EmbeddedBroker(port=cfg.port):
            sub, got = _collector(cfg)
            client.loop_start()
            assert _wait(lambda: (outbox.pump(), len(got))[1] >= 61, 20), (
                f"only {len(got)} of 61 arrived"
            )
            assert [g.split(b"|")[0] for g in got[:61]] == [f"m{i:03d}".encode() for i in range(61)]
            sub.disconnect()
            sub.loop_stop()
        client.loop_stop()
        outbox.close()


def test_outbox_that_cannot_even_be_created_falls_back_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = MqttConfig(port=free_port())
    with small_tmpfs(tmp_path, size_kb=64) as sd:
        fill(sd)
        client, outbox = _edge_client(cfg, sd / "box.sqlite3")  # must not raise
        assert outbox.counters["disk_open_errors"] == 1
        assert "edge outbox open failed" in caplog.text
        connect_in_background(client, cfg)
        for i in range(5):
            outbox.send("t/faces", f"m{i:03d}".encode())
        assert outbox.depth() == 5  # bounded queue still works, in memory
        _deliver_all_after_full_disk(outbox, client, cfg, 5)
        outbox.close()


def test_sqlite_full_is_counted_and_messages_still_go_out(tmp_path: Path) -> None:
    """SQLITE_FULL without mount rights: cap the file at its current size."""
    cfg = MqttConfig(port=free_port())
    client, outbox = _edge_client(cfg, tmp_path / "box.sqlite3")
    connect_in_background(client, cfg)
    outbox.send("t/faces", b"m000")
    pages = outbox.conn.execute("PRAGMA page_count").fetchone()[0]
    outbox.conn.execute(f"PRAGMA max_page_count={pages}")
    for i in range(1, 30):
        outbox.send("t/faces", f"m{i:03d}".encode() + b"|" + b"y" * 3000)
    assert outbox.counters["disk_write_errors"] > 0
    client.loop_stop()  # no reconnect (and flush) before the collector has subscribed
    with EmbeddedBroker(port=cfg.port):
        sub, got = _collector(cfg)
        client.loop_start()
        assert _wait(lambda: (outbox.pump(), len(got))[1] >= 30, 20)
        assert [g.split(b"|")[0] for g in got[:30]] == [f"m{i:03d}".encode() for i in range(30)]
        sub.disconnect()
        sub.loop_stop()
    client.loop_stop()
    outbox.close()
