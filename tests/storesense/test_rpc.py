"""The web ⇄ hub request envelope (``storesense.rpc``): strict, bounded, deadline rule."""

from __future__ import annotations

import time

import pytest

from storesense import messages as m
from storesense import rpc


def test_round_trip_and_strictness() -> None:
    req = rpc.new_request("session", {"token": "t"}, timeout_s=2)
    back = rpc.decode_request(req.to_bytes())
    assert back == req and 1.5 < back.deadline - time.time() <= 2
    reply = rpc.Reply(request_id=req.request_id, status=401, detail="no")
    assert not rpc.decode_reply(reply.to_bytes()).ok
    for bad, reason in [
        (b"[]", "bad_version"),
        (b'{"v": 1, "kind": "rpc_request", "op": "drop", "deadline": 1}', "bad_schema"),
        (req.to_bytes()[:-1] + b', "x": 1}', "bad_schema"),
        (b" " * (rpc.MAX_REQUEST_BYTES + 1), "too_large"),
    ]:
        with pytest.raises(m.PayloadError) as exc:
            rpc.decode_request(bad)
        assert exc.value.reason == reason


def test_deadline_rule() -> None:
    assert not rpc.too_late(10.0, 10.0) and rpc.too_late(10.0, 10.001)
    assert rpc.beyond_horizon(100.0 + rpc.MAX_HORIZON_S + 1, 100.0)
