import base64
import json

import numpy as np
import pytest

from storesense import messages as m


def _face_track(**overrides) -> dict:
    vec = np.linspace(-0.2, 0.2, 128, dtype=np.float32)
    sample = {
        "vector": base64.b64encode(vec.astype("<f4").tobytes()).decode(),
        "quality": 0.9,
        "face_px": 40.0,
        "sharpness": 120.0,
        "frontalness": 0.95,
        "t": 1.0,
    }
    msg = {
        "v": 1,
        "kind": "face_track",
        "msg_id": "a" * 32,
        "sent_at": 1.0,
        "camera_id": "door-1",
        "track_id": "b" * 32,
        "update": 0,
        "final": False,
        "first_usable_at": 1.0,
        "samples": [sample],
    }
    msg.update(overrides)
    return msg


def test_round_trip_keeps_the_embedding_exactly() -> None:
    vec = np.random.default_rng(1).normal(size=128).astype(np.float32)
    sample = m.EmbeddingSample(
        vector=vec, quality=0.8, face_px=30, sharpness=90, frontalness=0.9, t=2
    )
    msg = m.FaceTrack(
        camera_id="door-1",
        track_id="c" * 32,
        update=0,
        final=False,
        first_usable_at=2.0,
        samples=[sample],
    )
    back = m.decode(msg.to_bytes(), m.FaceTrack)
    assert back.msg_id == msg.msg_id
    np.testing.assert_array_equal(back.samples[0].vector, vec)
    assert len(msg.to_bytes()) < 1500  # 128 floats travel as base64, not as a JSON float list


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_schema"),
        (json.dumps(_face_track(v=2)).encode(), "bad_version"),
        (json.dumps({**_face_track(), "kind": "nope"}).encode(), "bad_schema"),
        (json.dumps({**_face_track(), "extra": 1}).encode(), "bad_schema"),
        (b"x" * (m.MAX_PAYLOAD_BYTES + 1), "too_large"),
    ],
)
def test_malformed_payloads_get_a_countable_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(m.PayloadError) as err:
        m.decode(payload, m.FaceTrack)
    assert err.value.reason == reason


def test_wrong_vector_length_and_nan_are_refused() -> None:
    short = _face_track()
    short["samples"][0]["vector"] = base64.b64encode(np.zeros(127, "<f4").tobytes()).decode()
    with pytest.raises(m.PayloadError, match="127 floats"):
        m.decode(json.dumps(short).encode(), m.FaceTrack)
    nan = _face_track()
    vec = np.zeros(128, "<f4")
    vec[5] = np.nan
    nan["samples"][0]["vector"] = base64.b64encode(vec.tobytes()).decode()
    with pytest.raises(m.PayloadError, match="NaN"):
        m.decode(json.dumps(nan).encode(), m.FaceTrack)


def test_a_message_of_another_kind_is_refused_on_a_typed_topic() -> None:
    claim = m.ClaimRequest(alert_id="a1", staff_id="alice").to_bytes()
    with pytest.raises(m.PayloadError, match="not allowed"):
        m.decode(claim, m.FaceTrack)
    assert m.decode(claim, m.ClaimRequest).staff_id == "alice"


def test_parse_picks_the_model_by_kind_for_every_message() -> None:
    """One discriminated union: each kind comes back as its own class, field for field."""
    sent = [
        m.FaceTrack.model_validate(_face_track()),
        m.FloorPositions(camera_id="f1", seq=0, interval_start=1.0, interval_s=2.0, samples=[]),
        m.SealedFaceTrack(camera_id="door-1", key_id="0" * 16, nonce="A" * 16, ciphertext="B" * 40),
        m.EdgeStatus(camera_id="door-1", role="entrance", online=True),
        m.Alert(
            alert_id="a1",
            seq=1,
            state="open",
            customer_id="c1",
            customer_name="Ann",
            greeting="Hi",
            camera_id="door-1",
            arrived_at=1.0,
            expires_at=2.0,
        ),
        m.ClaimRequest(alert_id="a1", staff_id="alice"),
        m.ClaimResult(
            request_id="d" * 32, alert_id="a1", staff_id="alice", outcome="won", message="yours"
        ),
        m.HubStatus(online=True),
        m.NodeHealth(nodes={"door-1": "up"}),
    ]
    assert {type(x) for x in sent} == set(m.Message.__args__)  # every kind is covered
    for msg in sent:
        back = m.parse(msg.to_bytes())
        assert type(back) is type(msg)
        assert back.model_dump_json() == msg.model_dump_json()  # numpy vectors: no ==


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"v": 1, "kind": "nope"}, "unknown kind 'nope'"),
        ({"v": 1}, "unknown kind None"),
        ({"v": 1, "kind": "claim_request", "staff_id": "alice"}, "alert_id: Field required"),
    ],
)
def test_parse_names_the_kind_or_the_field_that_is_wrong(data: dict, detail: str) -> None:
    with pytest.raises(m.PayloadError) as err:
        m.parse(json.dumps(data).encode())
    assert err.value.reason == "bad_schema"
    assert err.value.detail == detail


def _floor_payload(**overrides: object) -> dict:
    """A floor_positions message exactly as an agent from before coasting/height counts sent."""
    msg: dict = {
        "v": 1,
        "kind": "floor_positions",
        "msg_id": "c" * 32,
        "sent_at": 10.0,
        "camera_id": "floor-1",
        "run_id": "d" * 32,
        "seq": 0,
        "interval_start": 9.0,
        "interval_s": 1.0,
        "samples": [{"t": 9.5, "people": [{"track_id": 1, "x": 1.0, "y": 2.0, "conf": 0.8}]}],
    }
    msg.update(overrides)
    return msg


def test_floor_positions_from_an_older_agent_are_still_accepted() -> None:
    msg = m.decode(json.dumps(_floor_payload()).encode(), m.FloorPositions)
    assert msg.samples[0].people[0].coasted_s == 0.0  # seen, as everything was then
    assert msg.height_counts is None  # no self-check figures: the hub skips them


def test_coasted_time_and_height_counts_round_trip() -> None:
    counts = list(range(len(m.FLOOR_HEIGHT_BANDS_PX)))
    person = {"track_id": 1, "x": 1.0, "y": 2.0, "conf": 0.8, "coasted_s": 0.43}
    data = _floor_payload(samples=[{"t": 9.5, "people": [person]}], height_counts=counts)
    msg = m.decode(json.dumps(data).encode(), m.FloorPositions)
    again = m.decode(msg.to_bytes(), m.FloorPositions)
    assert again.samples[0].people[0].coasted_s == 0.43
    assert again.height_counts == counts


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"height_counts": [1, 2]}, "height counts, expected"),
        ({"height_counts": [-1] + [0] * (len(m.FLOOR_HEIGHT_BANDS_PX) - 1)}, "negative"),
        (
            {
                "samples": [
                    {
                        "t": 9.5,
                        "people": [{"track_id": 1, "x": 1, "y": 2, "conf": 0.8, "coasted_s": -0.1}],
                    }
                ]
            },
            "coasted_s",
        ),
        (
            {
                "samples": [
                    {
                        "t": 9.5,
                        "people": [{"track_id": 1, "x": 1, "y": 2, "conf": 0.8, "coasted_s": 61}],
                    }
                ]
            },
            "coasted_s",
        ),
    ],
)
def test_bad_coasting_or_height_counts_are_refused(change: dict, detail: str) -> None:
    with pytest.raises(m.PayloadError) as exc:
        m.decode(json.dumps(_floor_payload(**change)).encode(), m.FloorPositions)
    assert exc.value.reason == "bad_schema" and detail in exc.value.detail


def test_height_bands_cover_every_height_once() -> None:
    edges = m.FLOOR_HEIGHT_BANDS_PX
    assert list(edges) == sorted(edges) and edges[0] == 0
    assert m.height_band(0.0) == 0
    for i, lo in enumerate(edges):
        assert m.height_band(lo) == i  # a band's lower edge is inside it
        assert m.height_band(lo - 0.01) == max(i - 1, 0)
    assert m.height_band(10_000) == len(edges) - 1
