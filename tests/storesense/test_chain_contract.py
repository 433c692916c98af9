"""The chain's contract: what the config lets cross, the messages' limits, the central tree."""

from __future__ import annotations

import json
import time

import pytest

from storesense import chain_messages as cm
from storesense.config import ConfigError, parse_config
from storesense.messages import PayloadError
from storesense.topics import ChainTopics, Topics


def test_nothing_is_sent_by_default_and_only_named_items_can_be() -> None:
    assert parse_config("store_id: s1\n").chain.send == []
    cfg = parse_config("store_id: s1\nchain: {send: [claims, health]}\n")
    assert cfg.chain.sends("claims") and not cfg.chain.sends("alert_summaries")
    for bad, words in (
        ("[embeddings]", "chain.send.0"),  # there is no such item, so no setting sends faces
        ("[claims, claims]", "once"),
    ):
        with pytest.raises(ConfigError, match=words):
            parse_config(f"store_id: s1\nchain: {{send: {bad}}}\n")
    with pytest.raises(ConfigError, match="divide 86400"):
        parse_config("store_id: s1\nchain: {floor_interval_s: 700}\n")


def test_a_summary_has_no_room_for_the_customer() -> None:
    now = time.time()
    fields = dict(store_id="s1", alert_id="a1", seq=1, state="open", camera_id="door-1",
                  arrived_at=now, expires_at=now + 60)  # fmt: skip
    raw = json.loads(cm.AlertSummary(**fields).to_bytes())
    for extra in ({"customer_id": "c1"}, {"customer_name": "Ada"}, {"embedding": "AAAA"}):
        with pytest.raises(PayloadError, match="bad_schema"):
            cm.parse(json.dumps(raw | extra).encode())
    assert isinstance(cm.parse(json.dumps(raw).encode()), cm.AlertSummary)


def test_the_central_tree_names_store_and_kind_and_nothing_else() -> None:
    assert ChainTopics.parse(ChainTopics.of("s1", "claim")) == ("s1", "claim")
    for topic in ("chain/v1/s1", "chain/v1/s1/claim/x", "chain/v1//claim", "storesense/v1/s1/x"):
        assert ChainTopics.parse(topic) is None
    # what the bridge strips locally and puts in front remotely
    assert Topics("s1").chain("claim").removeprefix(Topics("s1").chain_prefix) == "claim"
    assert ChainTopics.store_prefix("s1") + "claim" == ChainTopics.of("s1", "claim")
