"""The door's publish policy on real frames with the real weights: the first usable face at once.

The Intel walking clip (``faces/walking``) through the real ``EntranceRole`` (BlazeFace, dlib
5-point alignment, the quality gate, the dlib ResNet): the first ``FaceTrack`` message leaves
on the frame of the track's first usable embedding and carries exactly that one embedding;
the old policy (``first_message_embeddings: 2``) on the same frames sends its first message
later, with two.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageSequence

from edge.entrance.role import EntranceRole
from storesense import messages as m
from storesense.config import parse_config
from storesense.face_models import DEFAULT_MODEL, DLIB_RESNET, SFACE
from storesense.topics import Topics

CLIP = "faces/walking/face-demographics-walking-and-pause.gif"
FPS = 12.0


def _frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [
            cv2.cvtColor(np.asarray(f.convert("RGB")), cv2.COLOR_RGB2BGR)
            for f in ImageSequence.Iterator(gif)
        ]


def _play(
    frames: list[np.ndarray], first: int, model: str = DEFAULT_MODEL
) -> tuple[list[tuple[int, m.FaceTrack]], int]:
    """Every message of one play of the clip as (frame index, message), plus the EOF flush;
    and the index of the first frame whose face was embedded (the first usable frame)."""
    cfg = parse_config(
        f"store_id: s1\nrecognition: {{model: {model}}}\n"
        "cameras: [{id: door-1, role: entrance, source: x.gif, "
        f"first_message_embeddings: {first}}}]\n"
    )
    role = EntranceRole(cfg, cfg.camera("door-1"), Topics("s1").faces("door-1"))
    out: list[tuple[int, m.FaceTrack]] = []
    first_usable = -1
    for i, frame in enumerate(frames):
        out += [(i, msg) for msg in role.process(frame, 1000.0 + i / FPS)]  # type: ignore[misc]
        if first_usable < 0 and role.counters["embeddings_computed"]:
            first_usable = i
    end = role.flush(1000.0 + len(frames) / FPS, everything=True)
    out += [(len(frames), msg) for msg in end]  # type: ignore[misc]
    return out, first_usable


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    return _frames(shared_data / CLIP)


def test_first_message_leaves_on_the_first_usable_frame_with_one_embedding(
    frames: list[np.ndarray],
) -> None:
    new, usable = _play(frames, first=1)
    assert new, "the clip's walker produced no face-track message"
    i, first = new[0]
    assert first.update == 0 and not first.final and len(first.samples) == 1
    # published on the very frame whose face was embedded: no wait for a second sample
    assert i == usable >= 0
    assert first.samples[0].t == pytest.approx(first.first_usable_at)
    track = [msg for _, msg in new if msg.track_id == first.track_id]
    assert [msg.update for msg in track] == list(range(len(track)))
    assert len(track) <= 4 and track[-1].final  # bounded: never one message per frame
    assert len(track[1].samples) >= 2  # the agreement message follows
    # a valid wire message both ways
    assert m.decode(first.to_bytes(), m.FaceTrack).samples[0].t == first.samples[0].t

    old, old_usable = _play(frames, first=2)
    assert old_usable == usable  # same frames, same first usable face
    j, old_first = old[0]
    assert len(old_first.samples) == 2 and old_first.update == 0
    assert j > i, "the old policy waits for the second usable frame"
    print(f"first message at frame {i} (new) vs {j} (old): {(j - i) / FPS * 1000:.0f} ms earlier")


def _tracks(frames: list[np.ndarray], model: str) -> int:
    """Tracks of the clip with >= 2 samples, the model's vectors named on every message."""
    out, _ = _play(frames, first=1, model=model)
    assert out and all(msg.model == model for _, msg in out)
    return len({msg.track_id for _, msg in out if len(msg.samples) >= 2})


def test_the_tracker_joins_sface_faces_as_it_joins_dlib_ones(frames: list[np.ndarray]) -> None:
    """Each model with its own "not the same person" radius links the clip's faces into the
    same tracks. (Consecutive frames of one face are close in both spaces: on this clip SFace
    links the same with dlib's 0.6; the radius is for a face re-found after a miss or a turn
    of the head, where distances grow, in the model's own scale.)"""
    assert _tracks(frames, SFACE) == _tracks(frames, DLIB_RESNET)
