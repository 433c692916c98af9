"""``storesense central run|migrate|bridge-config`` as processes: a kill -9 of the ingest
mid-stream loses and doubles nothing (manual ack after commit, dedupe by id)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from central import db
from storesense import chain_messages as cm
from storesense.config import MqttConfig
from storesense.mqtt_client import connect, make_client
from storesense.topics import ChainTopics
from storesense_tools.chain_bridge import INGEST, ChainBundle, store_account, write_chain_bridge
from storesense_tools.cli import main
from storesense_tools.embedded_broker import free_port
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto
from tests.storesense.test_service_notify import receive_with_sender
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
MESSAGES = 1000  # ~3 s of ingest at the measured rate: the kill at >= 50 lands mid-stream


def _count(dsn: str, ids: list[str], table: str = "ingested") -> int:
    """Rows of ``table`` for the messages ``ids`` (the test's, not its probes)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT msg_id) FROM {table} WHERE msg_id = ANY(%s)",
            (ids,),
        ).fetchone()
        assert row is not None
        assert row[0] == row[1]
        return int(row[0])


def _run_central(conf: Path, home: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "storesense_tools.cli", "--home", str(home), "central", "run",
         "--central-config", str(conf)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_migrate_and_bridge_config_commands(pg_dsn: str, tmp_path: Path, capsys: object) -> None:
    assert main(["--home", str(tmp_path), "central", "migrate", "--database", pg_dsn]) == 0
    assert main(["--home", str(tmp_path), "central", "migrate", "--database", pg_dsn]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert f"central schema version {db.LATEST} (applied 1" in out
    assert "(nothing to apply)" in out
    bad = main(["--home", str(tmp_path), "central", "migrate", "--database",
                "host=127.0.0.1 port=1 user=postgres connect_timeout=2"])  # fmt: skip
    assert bad == 2  # one line, no traceback
    out_dir = tmp_path / "chain"
    argv = ["--home", str(tmp_path), "central", "bridge-config", "--store", "s1", "--store", "s2",
            "--out", str(out_dir), "--host", "hq.example"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in (out_dir / "bridges").iterdir()) == ["s1.conf", "s2.conf"]
    assert (out_dir / "bridges" / "s1.conf").stat().st_mode & 0o077 == 0  # holds a password
    assert main(argv) == 2  # not over an existing bundle without --force
    assert main([*argv[:-4], "--store", "bad id!", "--out", str(tmp_path / "x"),
                 "--host", "hq.example"]) == 2  # fmt: skip


def test_a_killed_ingest_restarts_and_applies_everything_exactly_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    bundle, port, broker, conf = central_office(pg_dsn, tmp_path, ["s1"])
    proc = _run_central(conf, tmp_path)
    store_cfg = _store_mqtt(bundle, port)
    store = make_client(store_account("s1"), store_cfg)
    try:
        # the ingest's persistent session exists once it has subscribed: then nothing is lost
        assert wait_for(lambda: _subscribed(bundle, port, pg_dsn), 30)
        connect(store, store_cfg)
        ids = []
        for i in range(MESSAGES):
            msg = cm.StoreHealth(store_id="s1", outbox_unsent=i)
            ids.append(msg.msg_id)
            store.publish(ChainTopics.of("s1", "store_health"), msg.to_bytes(), qos=1)
        assert wait_for(lambda: _count(pg_dsn, ids) >= 50, 30)
        proc.send_signal(signal.SIGKILL)  # mid-stream: some applied, some not, one maybe unacked
        proc.wait(10)
        killed_at = _count(pg_dsn, ids)
        assert killed_at < MESSAGES, "the kill came too late to prove anything"
        proc = _run_central(conf, tmp_path)
        assert wait_for(lambda: _count(pg_dsn, ids) == MESSAGES, 60), (
            killed_at,
            _count(pg_dsn, ids),
        )
        assert _count(pg_dsn, ids, "store_health") == MESSAGES
    finally:
        store.disconnect()
        store.loop_stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        broker.stop()


def central_office(
    dsn: str, tmp_path: Path, stores: list[str]
) -> tuple[ChainBundle, int, MosquittoProcess, Path]:
    """The central broker on its generated TLS config and ACL (started), ``central.yaml`` for
    the ingest account, and the schema migrated: (bundle, port, broker, config path)."""
    require_mosquitto()
    port = free_port()
    bundle = write_chain_bridge(stores, tmp_path / "central", central_host="127.0.0.1",
                                port=port, listen_host="127.0.0.1")  # fmt: skip
    broker = MosquittoProcess(bundle.conf, port).start()
    conf = tmp_path / "central.yaml"
    mqtt = {"host": "127.0.0.1", "port": port, "username": INGEST,
            "password": bundle.accounts[INGEST], "tls_ca": str(bundle.ca_cert)}  # fmt: skip
    conf.write_text(yaml.safe_dump({"database": dsn, "mqtt": mqtt}))
    assert main(["--home", str(tmp_path), "central", "migrate", "--central-config", str(conf)]) == 0
    return bundle, port, broker, conf


def _store_mqtt(bundle: ChainBundle, port: int) -> MqttConfig:
    user = store_account("s1")
    return MqttConfig(host="127.0.0.1", port=port, username=user,
                      password=bundle.accounts[user], tls_ca=bundle.ca_cert)  # fmt: skip


def _subscribed(bundle: ChainBundle, port: int, dsn: str) -> bool:
    """A probe message made it into PostgreSQL: the ingest is subscribed and applying."""
    cfg = _store_mqtt(bundle, port)
    probe = make_client("store-s1", cfg)
    connect(probe, cfg)
    msg = cm.StoreHealth(store_id="s1", outbox_unsent=0)
    probe.publish(ChainTopics.of("s1", "store_health"), msg.to_bytes(), qos=1).wait_for_publish(5)
    probe.disconnect()
    probe.loop_stop()
    return wait_for(lambda: _count(dsn, [msg.msg_id]) == 1, 2)


def test_central_run_says_ready_pings_the_watchdog_and_says_stopping(
    pg_dsn: str, tmp_path: Path
) -> None:
    """``storesense central run`` as storesense-central.service (Type=notify, WatchdogSec)
    starts it: READY once connected and subscribed, WATCHDOG pings from the ingest worker,
    STOPPING on SIGTERM, all from the main process (NotifyAccess=main)."""
    _, _, broker, conf = central_office(pg_dsn, tmp_path, ["s1"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    short = Path(tempfile.mkdtemp(prefix="sn-"))  # unix socket paths max out at 108 bytes
    sock_path = str(short / "notify.sock")
    sock.bind(sock_path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    env = {k: v for k, v in os.environ.items() if k != "WATCHDOG_PID"}
    env |= {"PYTHONPATH": str(REPO), "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "storesense_tools.cli", "--home", str(tmp_path), "central", "run",
         "--central-config", str(conf)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    got: list[tuple[bytes, int]] = []
    try:
        deadline = time.monotonic() + 60  # a cold start imports paho, psycopg, pydantic…
        while time.monotonic() < deadline and not (
            (b"READY=1", proc.pid) in got and got.count((b"WATCHDOG=1", proc.pid)) >= 3
        ):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            item = receive_with_sender(sock, 1.0)
            if item is not None:
                got.append(item)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        while (item := receive_with_sender(sock, 0.3)) is not None:
            got.append(item)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        shutil.rmtree(short, ignore_errors=True)
        broker.stop()
    messages = [data for data, _ in got]
    assert messages.count(b"READY=1") == 1, messages
    assert messages.count(b"WATCHDOG=1") >= 3, messages
    assert b"STOPPING=1" in messages[messages.index(b"READY=1") :], messages
    assert {pid for _, pid in got} == {proc.pid}
