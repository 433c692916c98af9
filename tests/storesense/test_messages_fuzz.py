"""Fuzz: every MQTT payload decoder (``messages.parse``/``decode``, ``rpc.decode_request``/
``decode_reply``) answers bad bytes with a ``PayloadError`` (a countable reason) or returns a
valid message; never another exception. Valid messages of every kind, broken in a few places,
plus raw bytes. Bounds: tests/fuzzing.py."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from storesense import messages as m
from storesense import rpc
from tests.fuzzing import FUZZ, mutated

_SAMPLE = m.EmbeddingSample(
    vector=np.ones(m.EMBEDDING_DIM, np.float32) / 11.3, quality=0.9, face_px=40, sharpness=80,
    frontalness=0.9, t=1.7e9,
)  # fmt: skip
VALID: list[Any] = [
    m.FaceTrack(camera_id="door-1", track_id="a" * 32, update=0, final=False,
                first_usable_at=1.7e9, samples=[_SAMPLE]),
    m.FloorPositions(camera_id="floor-1", seq=3, interval_start=1.7e9, interval_s=5,
                     samples=[m.FloorSample(t=1.7e9, people=[m.FloorPosition(
                         track_id=1, x=2.0, y=3.5, conf=0.8)])],
                     height_counts=[0] * len(m.FLOOR_HEIGHT_BANDS_PX)),
    m.EdgeStatus(camera_id="door-1", role="entrance", online=True, rejections={"blur": 2},
                 errors={"frame": 1}),
    m.Alert(alert_id="al-1", seq=4, state="open", customer_id="C1", customer_name="Ann",
            greeting="Hi", camera_id="door-1", arrived_at=1.7e9, expires_at=1.7e9 + 120),
    m.ClaimRequest(alert_id="al-1", staff_id="alice", deadline=1.7e9),
    m.ClaimResult(request_id="b" * 32, alert_id="al-1", staff_id="alice", outcome="won",
                  message="yours"),
    m.HubStatus(online=True, gallery_size=3, rejected={"bad_json": 1}, errors={"tick": 2}),
    m.NodeHealth(nodes={"door-1": "up"}),
]  # fmt: skip
VALID_RPC = [
    rpc.new_request("ping", {}),
    rpc.Reply(request_id="c" * 32, status=200, result={"ok": True}),
]
DOCS = [msg.model_dump(mode="json") for msg in VALID]


def _encoded(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity go out as the tokens json.loads accepts


def _parse_or_refuse(payload: bytes) -> None:
    try:
        msg = m.parse(payload)
    except m.PayloadError as exc:
        assert exc.reason in {"too_large", "bad_json", "bad_version", "bad_schema"}
        return
    assert m.parse(msg.to_bytes()).to_bytes() == msg.to_bytes()  # valid: it goes round again


@FUZZ
@given(st.sampled_from(DOCS).flatmap(mutated))
def test_broken_messages_are_refused_with_a_reason_or_valid(doc: Any) -> None:
    _parse_or_refuse(_encoded(doc))
    for expected in (m.FaceTrack, m.Alert, m.HubStatus):
        with contextlib.suppress(m.PayloadError):
            assert isinstance(m.decode(_encoded(doc), expected), expected)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_raw_bytes_are_refused_with_a_reason_or_valid(payload: bytes) -> None:
    _parse_or_refuse(payload)


@FUZZ
@given(st.sampled_from([r.model_dump(mode="json") for r in VALID_RPC]).flatmap(mutated))
def test_broken_rpc_envelopes_are_refused_with_a_reason_or_valid(doc: Any) -> None:
    for decode in (rpc.decode_request, rpc.decode_reply):
        try:
            decode(_encoded(doc))
        except m.PayloadError as exc:
            assert exc.reason in {"too_large", "bad_json", "bad_version", "bad_schema"}
