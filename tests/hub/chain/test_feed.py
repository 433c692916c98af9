"""The store side of the chain: what ``chain.send`` allows goes into the outbox, once."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hub.chain.feed import ChainFeed
from storesense import chain_messages as cm
from storesense.topics import Topics
from tests.chain_store import ChainStore

# fields of the store's own messages that must never cross, and the test customer's and
# shoppers' identifiers as JSON values
PRIVATE_KEYS = {"customer_id", "customer_name", "greeting", "samples", "vector", "embedding",
                "template", "people", "track_id", "person_key", "x", "y"}  # fmt: skip
PRIVATE_VALUES = ('"c1"', "Ada", "Lovelace", '"p1"', '"p2"')


def test_nothing_crosses_by_default(tmp_path: Path) -> None:
    store = ChainStore(tmp_path, "s1", send="[]")
    now = time.time()
    store.serve_customer(now)
    assert store.feed.tick(now + 100) == 0
    assert store.chain_messages() == []


def test_alert_states_claims_zone_intervals_and_health_cross_once(tmp_path: Path) -> None:
    store = ChainStore(tmp_path, "s1")
    t0 = 1_800_000_000.0  # a minute boundary, so the first interval starts here
    store.feed.tick(t0)  # the floor cursor starts at the running interval; health goes out
    alert_id = store.serve_customer(t0 + 1)
    store.zone_visit("Shoes", t0 + 10, t0 + 40)
    store.zone_visit("Shoes", t0 + 20, t0 + 90, person="p2")  # dwell past the interval's end
    store.zone_visit("Back office", t0 + 5, t0 + 30)  # a staff zone: stays in the store
    store.feed.tick(t0 + 61)
    changes = store.conn.total_changes
    assert store.feed.tick(t0 + 62) == 0  # nothing new: nothing more, and no write at all
    assert store.conn.total_changes == changes
    msgs = store.chain_messages()
    kinds = [msg["kind"] for msg in msgs]
    # open/claimed/done happened between two ticks: the latest state crosses, and its claim
    assert kinds.count("alert_summary") == 1 and kinds.count("claim") == 1
    summary = next(msg for msg in msgs if msg["kind"] == "alert_summary")
    assert (summary["alert_id"], summary["state"], summary["claimed_by"]) == (
        alert_id,
        "done",
        "bob",
    )
    zones = {msg["zone"]: msg for msg in msgs if msg["kind"] == "zone_interval"}
    assert set(zones) == {"Shoes", "Till"}  # zeros too, so "nobody" differs from "no data"
    assert (zones["Shoes"]["visits"], zones["Shoes"]["dwell_s"]) == (2, 100.0)
    assert (zones["Till"]["visits"], zones["Till"]["interval_start"]) == (0, t0)
    assert kinds.count("store_health") == 2  # at t0 and t0 + 61 (every 5 s at most)
    for msg in msgs:
        assert msg["_topic"] == store.topics.chain(msg["kind"])
        raw = json.dumps({k: v for k, v in msg.items() if k != "_topic"})
        cm.decode_for("s1", msg["kind"], raw.encode())  # every one is a valid chain message
        assert not PRIVATE_KEYS & set(msg), raw
        assert not any(value in raw for value in PRIVATE_VALUES), raw
    assert len(store.chain_ids()) == len(msgs)


def test_a_second_feed_on_the_same_database_resumes_at_its_cursor(tmp_path: Path) -> None:
    """The cursors commit with the messages: a restarted hub sends nothing twice."""
    store = ChainStore(tmp_path, "s1", send="[alert_summaries, claims, floor_aggregates]")
    t0 = 1_800_000_000.0
    store.feed.tick(t0)
    store.serve_customer(t0 + 1)
    store.feed.tick(t0 + 61)
    before = len(store.chain_messages())
    restarted = ChainFeed(store.conn, store.cfg, store.topics)  # the hub started again
    assert restarted.tick(t0 + 62) == 0
    assert len(store.chain_messages()) == before
    # a long outage is caught up a few intervals per tick, each interval once
    ticks = [restarted.tick(t0 + 600) for _ in range(4)]
    assert ticks == [8, 8, 2, 0]  # 9 intervals x 2 zones, at most 4 intervals a tick
    starts = [m["interval_start"] for m in store.chain_messages() if m["kind"] == "zone_interval"]
    assert len(starts) == 20 and len(set(starts)) == 10  # 10 intervals, each zone once


def test_the_running_hub_publishes_what_its_config_sends(tmp_path: Path, broker_port: int) -> None:
    """Wired into the daemon's tick: a hub with ``chain.send: [health]`` publishes its health
    on its chain topic (QoS 1, through the outbox)."""
    import queue

    from storesense.config import MqttConfig
    from storesense.mqtt_client import connect, make_client
    from tests.hub.conftest import hub_config, running_hub

    cfg = hub_config(broker_port, "chain: {send: [health], health_interval_s: 5}\n")
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    sub = make_client(f"watch-{cfg.store_id}", MqttConfig(port=broker_port), persistent=False)
    sub.on_message = lambda c, u, msg: got.put((msg.topic, bytes(msg.payload)))
    connect(sub, MqttConfig(port=broker_port))
    sub.subscribe(f"{Topics(cfg.store_id).chain_prefix}#", qos=1)
    try:
        with running_hub(cfg, tmp_path):
            topic, payload = got.get(timeout=20)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert topic == Topics(cfg.store_id).chain("store_health")
    health = cm.decode_for(cfg.store_id, "store_health", payload)
    assert isinstance(health, cm.StoreHealth) and health.outbox_unsent >= 0


def test_a_settled_day_crosses_once_as_the_store_reports_it(tmp_path: Path) -> None:
    """``daily_summaries``: the day's footfall, sales, conversion and advice are the store
    report's own figures (``analyse``), with a small PNG, and nothing private."""
    import base64
    import datetime as dt

    from hub.floor.analysis import analyse
    from tests.chain_store import DAY_ZONES

    store = ChainStore(tmp_path, "s1", send="[daily_summaries]", zones=DAY_ZONES)
    day = dt.date(2026, 11, 2)
    midnight = time.mktime(day.timetuple())
    store.feed.tick(midnight + 9 * 3600)  # first time on: the cursor starts at that day
    store.store_day(day.isoformat(), midnight + 10 * 3600, people=40, shoppers=12,
                    sales=[30.0, 45.5, 20.0], cancelled=1)  # fmt: skip
    assert store.feed.tick(midnight + 86400 + 3599) == 0  # not settled yet
    assert store.feed.tick(midnight + 86400 + 3600) == 1
    assert store.feed.tick(midnight + 86400 + 3700) == 0  # once
    (msg,) = store.chain_messages()
    report = analyse(store.conn, store.cfg, day, day)
    assert msg["day"] == "2026-11-02" and msg["currency"] == "GBP"
    assert msg["footfall"] == report.kpis.footfall == 40
    assert msg["sales"] == report.kpis.sales == 85.5  # the cancellation nets -10
    assert msg["receipts"] == 3
    assert msg["conversion"] == report.kpis.conversion == round(85.5 / 12, 2)
    assert msg["selling_visits"] == 12
    assert [a["advice"] for a in msg["advice"]] == [
        i.advice for i in report.insights if i.rank == 1
    ][:4]
    assert msg["advice"], "the day has advice (its best display spot at least)"
    png = base64.b64decode(msg["heatmap_png"])
    width, height = cm.png_size(png)
    assert 0 < width <= 200 and 0 < height <= 400
    raw = json.dumps({k: v for k, v in msg.items() if k != "_topic"})
    assert len(raw) < 64 * 1024
    cm.decode_for("s1", "daily_summary", raw.encode())
    assert not PRIVATE_KEYS & set(msg), raw
    assert not any(value in raw for value in PRIVATE_VALUES), raw
    assert f"{day}-p" not in raw  # no person key of the day


def test_a_day_that_cannot_be_summed_up_is_retried_not_skipped(tmp_path: Path) -> None:
    """A broken analysis (here: the floor tables gone) is logged and retried after
    ``DAILY_RETRY_S``; the cursor stays, so the day is not lost, and the feed goes on."""
    import datetime as dt

    from hub.chain import feed as feed_mod
    from tests.chain_store import DAY_ZONES

    store = ChainStore(tmp_path, "s1", send="[daily_summaries]", zones=DAY_ZONES)
    midnight = time.mktime(dt.date(2026, 11, 2).timetuple())
    store.feed.tick(midnight + 3600)
    store.conn.execute("ALTER TABLE floor_days RENAME TO floor_days_away")
    settled = midnight + 86400 + 3600
    assert store.feed.tick(settled) == 0 and store.feed.daily_errors == 1
    store.conn.execute("ALTER TABLE floor_days_away RENAME TO floor_days")
    assert store.feed.tick(settled + 1) == 0  # not before the retry time
    assert store.feed.tick(settled + feed_mod.DAILY_RETRY_S) == 1
    (msg,) = store.chain_messages()
    assert msg["day"] == "2026-11-02"
