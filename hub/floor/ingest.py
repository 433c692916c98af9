"""Floor positions in: decode → validate → dedupe → occupancy grid + zone journeys → SQLite.

Runs on the hub's worker thread (the network callback only queues). Each message is applied in
one transaction together with its ``msg_id`` in ``seen_messages``, so a QoS 1 re-delivery has no
second effect. What cannot be accepted raises ``PayloadError`` (the hub counts and logs it);
what is merely odd inside a good message (a point off the floor, a frame too late to fuse) is
dropped and counted in ``FloorStats``. ``floor_runs`` keeps, per camera run, how many messages
arrived and the highest ``seq``: ``max_seq + 1 - received`` is the number lost.

Crash safety (docs/floor-analytics.md): occupancy slots still open for late data are saved in
``floor_slots`` by the transaction that writes their grid delta, so person-seconds are exact
across a crash. The open tracks' zone machines, the person links and the per-camera maps are
saved in ``floor_state`` at most every ``floor.snapshot_s`` (hub clock or newest camera time),
again inside a message's transaction; a crash loses the zone-state changes since then.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field

import numpy as np

from hub.bus import seen
from hub.floor.occupancy import Frame, OccupancyGrid, local_day
from hub.floor.zones import Journey, Journeys, ZoneSet
from hub.store import db
from storesense import messages as m
from storesense.config import StoreConfig
from storesense.topics import Topics

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 300.0  # a camera clock this far ahead of the hub is wrong: reject, don't plot
TIME_SLACK_S = 1.0  # samples may sit this far outside their declared interval
COAST_SLACK_S = 0.05  # the camera rounds coasted_s to ms and frames are not exactly periodic
SILENT_S = 30.0  # a camera silent this long (hub clock) has ended all its tracks
STATE_VERSION = 1  # of the floor_state JSON; another version is discarded, never guessed at


@dataclass
class FloorStats:
    messages: int = 0
    duplicates: int = 0
    positions: int = 0
    off_floor: int = 0
    low_conf: int = 0
    staff_area: int = 0
    coasted: int = 0  # positions the camera predicted through a short miss (counted)
    over_coasted: int = 0  # …predicted for longer than floor.coast_s allows (dropped)
    restarts: int = 0
    journeys: int = 0
    staff_people: int = 0
    visits: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)


class FloorIngest:
    """Owns the in-memory floor state; every method runs on the one worker thread."""

    def __init__(self, conn: sqlite3.Connection, cfg: StoreConfig) -> None:
        self.conn = conn
        self.cfg = cfg
        self.floor = cfg.floor
        # a camera reports a person missed for up to coast_s (predicted) or, once seen again,
        # up to fill_gaps_s (on the line between the sightings); both are marked coasted
        self._coast_limit = max(cfg.floor.coast_s, cfg.floor.fill_gaps_s) + COAST_SLACK_S
        self.topics = Topics(cfg.store_id)
        self.stats = FloorStats()
        self.grid = OccupancyGrid(cfg.floor)
        self.zones = ZoneSet(list(cfg.zones), cfg.floor.zone_margin_m)
        self.journeys = Journeys(self.zones, cfg.floor)
        self._cam_tracks: dict[str, set[str]] = {}
        self._cam_time: dict[str, float] = {}  # newest frame time per camera
        self._cam_seen: dict[str, float] = {}  # hub clock of the last message per camera
        self._cam_run: dict[str, tuple[str, float]] = {}  # run_id, its newest interval_start
        self._saved = (-math.inf, -math.inf)  # hub clock, grid watermark of the last snapshot
        self.restore_problems: list[str] = []  # why saved state was dropped (also logged)
        self._restore()

    # -- the message path ----------------------------------------------------------------
    def decode(self, topic: str, payload: bytes, now: float) -> m.FloorPositions:
        """Schema, topic and time checks; ``PayloadError`` with a countable reason."""
        msg = m.decode(payload, m.FloorPositions)
        if msg.camera_id != self.topics.segment(topic, 1):
            raise m.PayloadError("topic_mismatch", "camera_id differs from the topic")
        if msg.interval_start > now + CLOCK_SKEW_S:
            raise m.PayloadError(
                "clock_skew", f"interval starts {msg.interval_start - now:.0f} s in the future"
            )
        lo, hi = msg.interval_start - TIME_SLACK_S, msg.interval_start + msg.interval_s
        for s in msg.samples:
            if not lo <= s.t <= hi + TIME_SLACK_S:
                raise m.PayloadError("bad_times", f"sample t={s.t} outside its interval")
            ids = [p.track_id for p in s.people]
            if len(set(ids)) != len(ids):
                raise m.PayloadError("duplicate_track", f"a track twice in the frame at {s.t}")
        return msg

    def handle(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Apply one message; False if it was a repeat. Raises ``PayloadError`` on bad input."""
        now = time.time() if now is None else now
        msg = self.decode(topic, payload, now)
        if seen.already_seen(self.conn, msg.msg_id):
            self.stats.duplicates += 1
            return False
        with db.write(self.conn):
            seen.remember(self.conn, msg.msg_id, now)
            self._record_run(msg, now)
            self._apply(msg)
            cam_t = self._cam_time.get(msg.camera_id, -math.inf)
            stale = [
                k
                for k in self._cam_tracks.get(msg.camera_id, ())
                if k not in self.journeys.tracks
                or self.journeys.tracks[k].last_t < cam_t - self.floor.track_gap_s
            ]
            self._finish(stale)
            self._cam_seen[msg.camera_id] = now
            self._snapshot(now)
        self.stats.messages += 1
        self.stats.per_camera[msg.camera_id] = self.stats.per_camera.get(msg.camera_id, 0) + 1
        return True

    def _record_run(self, msg: m.FloorPositions, now: float) -> None:
        self.conn.execute(
            "INSERT INTO floor_runs(camera_id, run_id, received, max_seq, first_at, last_at) "
            "VALUES (?,?,1,?,?,?) ON CONFLICT(camera_id, run_id) DO UPDATE SET "
            "received = received + 1, max_seq = max(max_seq, excluded.max_seq), "
            "last_at = excluded.last_at",
            (msg.camera_id, msg.run_id, msg.seq, now, now),
        )
        run = self._cam_run.get(msg.camera_id)
        if run is None or run[0] == msg.run_id:
            start = max(msg.interval_start, run[1] if run else -math.inf)
            self._cam_run[msg.camera_id] = (msg.run_id, start)
        elif msg.interval_start > run[1]:
            # The agent restarted: its tracker ids start again, so its old tracks are over.
            self.stats.restarts += 1
            log.info("floor camera %s restarted (run %s)", msg.camera_id, msg.run_id[:8])
            self._cam_run[msg.camera_id] = (msg.run_id, msg.interval_start)
            new = f"{msg.camera_id}/{msg.run_id[:8]}/"
            old = [k for k in self._cam_tracks.get(msg.camera_id, ()) if not k.startswith(new)]
            self._finish(old)

    def _apply(self, msg: m.FloorPositions) -> None:
        cam = msg.camera_id
        prefix = f"{cam}/{msg.run_id[:8]}/"
        tracks = self._cam_tracks.setdefault(cam, set())
        for sample in sorted(msg.samples, key=lambda s: s.t):
            people = sample.people
            n = len(people)
            self.stats.positions += n
            xy = np.array([(p.x, p.y) for p in people], dtype=np.float64).reshape(n, 2)
            conf = np.array([p.conf for p in people], dtype=np.float64)
            ok = (
                (xy[:, 0] >= 0)
                & (xy[:, 0] < self.floor.width_m)
                & (xy[:, 1] >= 0)
                & (xy[:, 1] < self.floor.height_m)
            )
            self.stats.off_floor += int(n - ok.sum())
            confident = conf >= self.floor.min_conf
            self.stats.low_conf += int((ok & ~confident).sum())
            ok &= confident
            # A coasted point is a person the camera missed for a moment, at its predicted
            # (or, seen again, interpolated) place: it counts in occupancy (people, not boxes)
            # but moves no zone journey (a prediction must not walk anyone into a zone), and
            # only up to floor.coast_s / fill_gaps_s.
            coasted_s = np.array([p.coasted_s for p in people], dtype=np.float64)
            coasted = coasted_s > 0
            too_long = ok & (coasted_s > self._coast_limit)
            self.stats.over_coasted += int(too_long.sum())
            ok &= ~too_long
            self.stats.coasted += int((ok & coasted).sum())
            idx = np.flatnonzero(ok)
            keys = [prefix + str(people[i].track_id) for i in idx]
            strict, loose = self.zones.inside(xy[idx, 0], xy[idx, 1])
            staff_area = self.zones.staff_area(strict)
            self.stats.staff_area += int(staff_area.sum())
            keep = ~staff_area
            self.grid.add_frame(
                Frame(
                    cam,
                    sample.t,
                    xy[idx][keep],
                    conf[idx][keep],
                    tuple(k for k, kp in zip(keys, keep, strict=True) if kp),
                )
            )
            for j, key in enumerate(keys):
                if not coasted[idx[j]]:
                    self.journeys.track(key).step(sample.t, strict[:, j], loose[:, j])
                    # where, for the hand-over between cameras (hub/floor/zones.py)
                    self.journeys.seen_at(key, sample.t, float(xy[idx[j], 0]), float(xy[idx[j], 1]))
                    tracks.add(key)
            if sample.t > self._cam_time.get(cam, -math.inf):
                self._cam_time[cam] = sample.t
        if msg.height_counts is not None and any(msg.height_counts):
            day = local_day(msg.interval_start)
            self.conn.executemany(
                "INSERT INTO floor_camera_heights(camera_id, day, band, n) VALUES (?,?,?,?) "
                "ON CONFLICT(camera_id, day, band) DO UPDATE SET n = n + excluded.n",
                [(cam, day, b, n) for b, n in enumerate(msg.height_counts) if n],
            )

    def _finish(self, ended: list[str]) -> None:
        """Fuse what changed, link fused tracks, drop staff, end tracks, store journeys."""
        for slot, group in self.grid.flush(self.conn):
            self.journeys.seen_together(slot, group)
        staff = self.journeys.staff_tracks()
        if staff:
            self.grid.mark_staff(staff)
            self.grid.flush(self.conn)
        for key in ended:
            self._cam_tracks.get(key.split("/", 1)[0], set()).discard(key)
        self._store(self.journeys.end_tracks(ended))

    def _store(self, journeys: list[Journey]) -> None:
        rows = []
        for j in journeys:
            self.stats.journeys += 1
            self.stats.staff_people += j.staff
            for v in j.visits:
                rows.append((j.person_key, v.zone, local_day(v.enter_t), v.enter_t, v.exit_t))
        if rows:
            self.conn.executemany(
                "INSERT OR IGNORE INTO floor_visits(person_key, zone, day, enter_t, exit_t) "
                "VALUES (?,?,?,?,?)",
                rows,
            )
            self.stats.visits += len(rows)

    # -- the clock path ------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """End the tracks of cameras that went silent (dead camera, network gone)."""
        silent = [
            k
            for cam, seen in self._cam_seen.items()
            if now - seen > max(SILENT_S, self.floor.track_gap_s)
            for k in self._cam_tracks.get(cam, ())
        ]
        if silent:
            with db.write(self.conn):
                self._finish(silent)
                self._snapshot(now, force=True)

    def close(self) -> None:
        """Hub stopping: end every open track so visits in progress are not lost."""
        open_tracks = [k for keys in self._cam_tracks.values() for k in keys]
        with db.write(self.conn):
            self._finish(open_tracks)
            self._snapshot(time.time(), force=True)

    # -- crash recovery ------------------------------------------------------------------
    def _config_key(self) -> dict:
        """What the saved zone state depends on: a change to any of it discards the state."""
        floor = self.floor.model_dump(
            mode="json",
            exclude={
                "plan_image",
                "plan_px_per_m",
                "plan",
                "publish_interval_s",
                "coast_s",
                "report_keep_days",  # the report's history, not the zone state
                "raw_keep_days",  # how long rows are kept, not the zone state
            },
        )
        floor.pop("snapshot_s", None)
        zones = [z.model_dump(mode="json", exclude={"categories"}) for z in self.cfg.zones]
        return {"floor": floor, "zones": zones}

    def _snapshot(self, now: float, force: bool = False) -> None:
        """Save the open state, inside the caller's transaction, at most every snapshot_s."""
        every = self.floor.snapshot_s
        hub_t, data_t = self._saved
        if not (force or now - hub_t >= every or self.grid.watermark - data_t >= every):
            return
        body = {
            "v": STATE_VERSION,
            "config": self._config_key(),
            "journeys": self.journeys.state(),
            "grid": self.grid.state(),
            "cam_tracks": {c: sorted(ks) for c, ks in self._cam_tracks.items()},
            "cam_time": self._cam_time,
            "cam_seen": self._cam_seen,
            "cam_run": self._cam_run,
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO floor_state(name, saved_at, body) VALUES ('snapshot',?,?)",
            (now, json.dumps(body)),
        )
        self._saved = (now, self.grid.watermark)

    def _restore(self) -> None:
        """Pick up where a crashed hub left off; anything unusable is logged and dropped."""
        problem = self.grid.restore(self.conn)
        if problem:
            self.restore_problems.append(problem)
        row = self.conn.execute("SELECT body FROM floor_state WHERE name='snapshot'").fetchone()
        if row is None:
            return
        try:
            body = json.loads(row[0])
            if body.get("v") != STATE_VERSION:
                raise ValueError(f"version {body.get('v')!r}, this hub reads {STATE_VERSION}")
            if body["config"] != self._config_key():
                old, new = body["config"], self._config_key()
                changed = [k for k in ("floor", "zones") if old.get(k) != new[k]]
                raise ValueError(f"saved under another configuration ({', '.join(changed)})")
            journeys = Journeys(self.zones, self.floor)
            journeys.load_state(body["journeys"])
            cam_tracks = {str(c): set(ks) for c, ks in body["cam_tracks"].items()}
            cam_time = {str(c): float(t) for c, t in body["cam_time"].items()}
            cam_seen = {str(c): float(t) for c, t in body["cam_seen"].items()}
            cam_run = {str(c): (str(r), float(t)) for c, (r, t) in body["cam_run"].items()}
            self.grid.load_state(body["grid"])
        except Exception as exc:  # whatever is wrong with the row, the hub must keep running
            problem = f"floor state dropped: {type(exc).__name__}: {exc}"
            log.warning("%s; open tracks start afresh", problem)
            self.restore_problems.append(problem)
        else:
            self.journeys = journeys
            self._cam_tracks, self._cam_time = cam_tracks, cam_time
            self._cam_seen, self._cam_run = cam_seen, cam_run
            log.info("floor: restored %d open tracks after a restart", len(journeys.tracks))
        if self.restore_problems:
            with db.write(self.conn):
                self._snapshot(time.time(), force=True)
