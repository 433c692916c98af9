"""Both camera roles driven through the one ``edge.role.Role`` interface, on the bundled clips.

The agent knows nothing but this interface, so whatever the agent relies on is checked here
for each role by the same driver: frames in, messages for the role's topic out, a final flush,
refusals as plain counts. Also the two trackers through ``edge.role.Tracker``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edge.entrance.face_tracker import FaceTracker
from edge.entrance.face_types import DetectedFace, FaceObservation, FaceQuality
from edge.floor.person_detect import Detections
from edge.floor.person_tracker import PersonTracker
from edge.role import Role, Tracker
from edge.roles import BUILDERS, make_role
from edge.video.source import VideoSource
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.topics import Topics

ASSETS = Path(__file__).resolve().parents[2] / "storesense_tools" / "demo_assets"
DOOR_CLIP = ASSETS / "face-demographics-walking-and-pause.gif"
AISLE_CLIP = ASSETS / "store-aisle-detection.gif"


@pytest.fixture(scope="module")
def cfg() -> StoreConfig:
    return parse_config(
        "store_id: s1\nfloor: {publish_interval_s: 0.5}\ncameras:\n"
        f"  - {{id: door-1, role: entrance, source: '{DOOR_CLIP}', fps: 12}}\n"
        f"  - {{id: aisle-1, role: floor, source: '{AISLE_CLIP}', fps: 5,"
        f" calibration: '{ASSETS / 'store-aisle-calibration.yaml'}'}}\n"
    )


def drive(role: Role, clip: Path, fps: float) -> tuple[list[m.FaceTrack | m.FloorPositions], int]:
    """What the camera agent does with a role, minus MQTT: every frame, then a final flush.

    Capture times are spaced as the camera would take them (1/fps apart on the monotonic
    clock), so intervals and track ages behave as live, without waiting in real time.
    """
    out: list[m.FaceTrack | m.FloorPositions] = []
    t0 = time.monotonic() - 60.0  # in the past, so wall times stay before "now"
    frames = 0
    with VideoSource(str(clip), fps=fps) as source:
        for frame in source:
            t = t0 + frames / fps
            frames += 1
            out += role.process(frame.image_bgr, t)
            out += role.flush(t)  # between frames the agent may flush by time alone
    out += role.flush(t0 + frames / fps, everything=True)
    return out, frames


@pytest.mark.parametrize(
    ("camera", "clip", "fps", "kind"),
    [("door-1", DOOR_CLIP, 12, m.FaceTrack), ("aisle-1", AISLE_CLIP, 5, m.FloorPositions)],
)
def test_each_role_turns_frames_into_messages_for_its_topic(
    cfg: StoreConfig, camera: str, clip: Path, fps: float, kind: type
) -> None:
    topics = Topics(cfg.store_id)
    role = make_role(cfg, cfg.camera(camera), topics)
    assert isinstance(role, Role)
    assert role.topic == (topics.faces(camera) if kind is m.FaceTrack else topics.floor(camera))
    out, frames = drive(role, clip, fps)
    assert frames > 10 and out
    for msg in out:  # exactly what goes on the wire, and what the hub will accept
        assert isinstance(msg, kind)
        assert msg.camera_id == camera
        assert m.decode(msg.to_bytes(), kind).to_bytes() == msg.to_bytes()
        assert len(msg.to_bytes()) < 16_384  # no images
    assert role.flush(time.monotonic(), everything=True) == []  # nothing left twice
    rejections = role.rejections()
    assert all(isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in rejections.items())
    if kind is m.FaceTrack:
        tracks = {x.track_id for x in out}
        assert len(tracks) >= 3  # three walkers
        assert all([x.final for x in out if x.track_id == t][-1] for t in tracks)
        assert role.counters["face_tracks_published"] == len(out)
    else:
        assert [x.seq for x in out] == list(range(len(out)))
        people = sum(len(s.people) for x in out for s in x.samples)
        assert people > 0 and role.counters["positions_sent"] == people
        assert sum(len(x.samples) for x in out) == frames  # every frame, flush included


def test_a_floor_role_only_flushes_its_partial_interval_at_the_end(cfg: StoreConfig) -> None:
    role = make_role(cfg, cfg.camera("aisle-1"), Topics(cfg.store_id))
    t = time.monotonic()
    frame = np.zeros((270, 480, 3), np.uint8)
    assert role.process(frame, t) == []  # the interval is still open
    assert role.flush(t + 0.1) == []  # time alone closes nothing: the next frame does
    (last,) = role.flush(t + 0.1, everything=True)
    assert isinstance(last, m.FloorPositions) and len(last.samples) == 1


def _face(x: float) -> FaceObservation:
    q = FaceQuality(score=0.8, face_px=30.0, sharpness=100.0, frontalness=0.9, passed=True)
    return FaceObservation(
        face=DetectedFace(box=(x, 100.0, x + 60.0, 160.0), score=0.9),
        landmarks=np.zeros((5, 2), np.float32),
        quality=q,
    )


def _person(x: float) -> Detections:
    return Detections(np.array([[x, 100.0, x + 30.0, 175.0]]), np.array([0.9]))


@pytest.mark.parametrize(
    ("tracker", "detection", "nothing"),
    [
        (FaceTracker(max_age_s=1.0), lambda x: [_face(x)], []),
        (PersonTracker(), _person, Detections(np.empty((0, 4)), np.empty(0))),
    ],
    ids=["faces", "people"],
)
def test_both_trackers_follow_a_walker_through_the_same_interface(
    tracker: Tracker, detection, nothing
) -> None:
    assert isinstance(tracker, Tracker)
    assert not tracker.active()
    for i in range(10):  # a walker at 10 fps, 4 px per frame
        tracker.update(i / 10, detection(100 + 4 * i))
    assert tracker.active()
    for i in range(10, 60):  # gone for 5 s: beyond both trackers' memory
        tracker.update(i / 10, nothing)
    if isinstance(tracker, FaceTracker):
        tracker.finished(6.0)  # face tracks end when the agent collects them for publication
    assert not tracker.active()


def test_every_configurable_role_has_a_builder() -> None:
    from typing import get_args

    from storesense.config import CameraConfig

    assert set(BUILDERS) == set(get_args(CameraConfig.model_fields["role"].annotation))


def test_a_calibration_that_gives_no_tile_plan_is_a_clear_start_up_error(tmp_path: Path) -> None:
    """The YAML loads (a valid homography) but no camera can produce it: the tiling detector's
    TilePlanError becomes the same one-line ConfigError as an unreadable calibration."""
    from storesense.config import ConfigError

    flat = tmp_path / "flat.yaml"  # an affine map: no perspective, so no person sizes
    flat.write_text(
        "version: 1\nimage_size: [480, 270]\nhomography: [[0.01, 0, 0], [0, 0.01, 0], [0, 0, 1]]\n"
    )
    cfg = parse_config(
        "store_id: s1\ncameras:\n"
        f"  - {{id: aisle-1, role: floor, source: '{AISLE_CLIP}', calibration: '{flat}'}}\n"
    )
    with pytest.raises(ConfigError, match=r"camera 'aisle-1': .*flat.yaml: .*straight down"):
        make_role(cfg, cfg.camera("aisle-1"), Topics("s1"))


def test_a_frame_of_another_view_is_counted_not_a_crash(cfg: StoreConfig) -> None:
    """Frames whose shape is not a scaled copy of the calibrated 480x270 view: the tile plan
    refuses them; the role counts and skips them and keeps taking the right ones."""
    role = make_role(cfg, cfg.camera("aisle-1"), Topics(cfg.store_id))
    t = time.monotonic()
    assert role.process(np.zeros((480, 480, 3), np.uint8), t) == []
    assert role.process(np.zeros((480, 480, 3), np.uint8), t + 0.1) == []
    assert role.rejections()["calibration_mismatch"] == 2
    role.process(np.zeros((270, 480, 3), np.uint8), t + 0.2)
    assert role.rejections()["calibration_mismatch"] == 2
