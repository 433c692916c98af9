"""Which cameras are alive: heartbeats in, 'down' for the silent ones, a retained summary out.

A camera says goodbye (or its last will says it for it) with ``online=false``: that is
'offline'. A camera that simply stops talking — power cut, network gone — is 'down' after
``silent_after_s``; the hub logs it once and republishes the summary.
"""

from __future__ import annotations

import json
import logging
import sqlite3

from hub.bus import outbox
from hub.store import db
from storesense.messages import EdgeStatus, NodeHealth
from storesense.topics import Topics

log = logging.getLogger(__name__)

SILENT_AFTER_S = 20.0  # four missed 5-second heartbeats


def record_heartbeat(conn: sqlite3.Connection, topics: Topics, msg: EdgeStatus, now: float) -> None:
    state = "up" if msg.online else "offline"
    with db.write(conn):
        before = conn.execute(
            "SELECT state FROM nodes WHERE camera_id=?", (msg.camera_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO nodes(camera_id, role, state, fps, frames, queue_depth, reconnects, "
            "rejections, errors, last_heartbeat_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(camera_id) DO UPDATE SET role=excluded.role, state=excluded.state, "
            "fps=excluded.fps, frames=excluded.frames, queue_depth=excluded.queue_depth, "
            "reconnects=excluded.reconnects, rejections=excluded.rejections, "
            "errors=excluded.errors, "
            "last_heartbeat_at=excluded.last_heartbeat_at",
            (
                msg.camera_id,
                msg.role,
                state,
                msg.fps,
                msg.frames,
                msg.queue_depth,
                msg.reconnects,
                json.dumps(msg.rejections),
                json.dumps(msg.errors),
                now,
            ),
        )
        if before is None or before["state"] != state:
            log.info("camera %s is %s", msg.camera_id, state)
            _announce(conn, topics, now)


def mark_silent(
    conn: sqlite3.Connection, topics: Topics, now: float, silent_after_s: float = SILENT_AFTER_S
) -> list[str]:
    """Cameras 'up' with no heartbeat for ``silent_after_s`` become 'down'; returns their ids."""
    with db.write(conn):
        silent = [
            r[0]
            for r in conn.execute(
                "SELECT camera_id FROM nodes WHERE state='up' AND last_heartbeat_at < ?",
                (now - silent_after_s,),
            )
        ]
        for camera_id in silent:
            conn.execute("UPDATE nodes SET state='down' WHERE camera_id=?", (camera_id,))
            log.warning("camera %s is down: no heartbeat for %.0f s", camera_id, silent_after_s)
        if silent:
            _announce(conn, topics, now)
    return silent


def _announce(conn: sqlite3.Connection, topics: Topics, now: float) -> None:
    nodes = {r[0]: r[1] for r in conn.execute("SELECT camera_id, state FROM nodes")}
    outbox.enqueue(conn, topics.node_health, NodeHealth(nodes=nodes), True, now=now)


def node_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM nodes ORDER BY camera_id").fetchall()
