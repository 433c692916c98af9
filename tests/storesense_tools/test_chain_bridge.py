"""Two stores bridged to one central office, all real: Mosquitto x3, PostgreSQL, TLS.

Each store has its own Mosquitto as ``storesense broker-config`` makes it (TLS, accounts,
ACL) with the bridge section ``storesense central bridge-config`` generated appended; the
central Mosquitto runs the generated TLS config, passwords and ACL; the central service
ingests into a fresh PostgreSQL database. The stores' hub side is the real hub database,
alert room, chain feed and outbox (tests/chain_store.py), on the hub's account.

Exactly once is checked as set equality: the message ids PostgreSQL applied for a store are
the ids in that store's outbox on its chain topics, and every table has one row per fact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from central import db
from central.config import CentralConfig
from central.service import CentralService
from storesense import chain_messages as cm
from storesense.config import MqttConfig
from storesense.mqtt_client import MqttConnectError, connect, make_client
from storesense.topics import ChainTopics
from storesense_tools.broker_config import HUB, write_broker_config
from storesense_tools.chain_bridge import (
    INGEST,
    ChainBundle,
    render_bridge,
    store_account,
    write_chain_bridge,
)
from storesense_tools.embedded_broker import free_port
from tests.chain_store import ALL, ChainStore
from tests.link_proxy import LinkProxy
from tests.mosquitto_proc import MosquittoProcess, require_mosquitto
from tests.waiting import wait_for

STORES = ("s1", "s2")
WAIT_S = 40.0  # generous: a loaded 2-core machine; every wait ends as soon as its condition holds


@dataclass
class Chain:
    bundle: ChainBundle
    central_port: int
    central_broker: MosquittoProcess
    store_brokers: dict[str, StoreBroker]
    stores: dict[str, ChainStore]
    service: CentralService
    pg: psycopg.Connection
    links: dict[str, LinkProxy]  # the stores whose WAN link a test can cut

    def mqtt(self, user: str, password: str | None = None) -> MqttConfig:
        return MqttConfig(
            host="127.0.0.1", port=self.central_port, username=user,
            password=self.bundle.accounts[user] if password is None else password,
            tls_ca=self.bundle.ca_cert,
        )  # fmt: skip

    def applied_ids(self, store_id: str) -> set[str]:
        rows = self.pg.execute(
            "SELECT msg_id FROM ingested WHERE store_id=%s", (store_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def all_arrived(self) -> bool:
        return all(self.applied_ids(s) == st.chain_ids() for s, st in self.stores.items())

    def rows(self, table: str, store_id: str) -> int:
        row = self.pg.execute(f"SELECT count(*) FROM {table} WHERE store_id=%s", (store_id,))
        got = row.fetchone()
        assert got is not None
        return int(got[0])


@dataclass
class StoreBroker:
    proc: MosquittoProcess
    hub: MqttConfig  # the hub's account on it
    accounts: dict[str, str]  # every account's password (the gateway's, the cameras')


def _store_broker(home: Path, store: ChainStore, bridge: str) -> StoreBroker:
    """The store's broker as ``storesense broker-config`` makes it (TLS, accounts, ACL: the
    hub may write its chain topics), with the generated bridge section appended."""
    port = free_port()
    bundle = write_broker_config(store.cfg, home / f"broker-{store.cfg.store_id}",
                                 listen_host="127.0.0.1", tls_port=port)  # fmt: skip
    with bundle.conf.open("a") as fh:
        fh.write(bridge)
    hub = MqttConfig(host="127.0.0.1", port=port, username=HUB,
                     password=bundle.accounts[HUB], tls_ca=bundle.ca_cert)  # fmt: skip
    return StoreBroker(MosquittoProcess(bundle.conf, port).start(), hub, bundle.accounts)


@contextmanager
def _chain(
    tmp_path: Path,
    pg_dsn: str,
    store_ids: tuple[str, ...],
    proxied: tuple[str, ...] = (),
    send: str = ALL,
) -> Iterator[Chain]:
    """The stores, their brokers bridged to the central broker (the ``proxied`` ones through
    a ``LinkProxy``: their WAN link, which a test can cut), the central service."""
    require_mosquitto()
    port = free_port()
    bundle = write_chain_bridge(
        list(store_ids), tmp_path / "central", central_host="127.0.0.1", port=port,
        listen_host="127.0.0.1", restart_timeout=(1, 2),
    )  # fmt: skip
    central_broker = MosquittoProcess(bundle.conf, port).start()
    links = {s: LinkProxy(port) for s in proxied}
    stores = {s: ChainStore(tmp_path / s, s, send=send) for s in store_ids}
    brokers = {}
    for s in store_ids:
        bridge = bundle.bridges[s].read_text()
        if s in links:
            bridge = bridge.replace(f"address 127.0.0.1:{port}\n",
                                    f"address 127.0.0.1:{links[s].port}\n")  # fmt: skip
            assert f":{links[s].port}" in bridge
        brokers[s] = _store_broker(tmp_path, stores[s], bridge)
    conn = db.connect(pg_dsn)
    db.migrate(conn)
    for s, store in stores.items():
        store.connect(brokers[s].hub)
    cfg = CentralConfig(
        database=pg_dsn,
        mqtt=MqttConfig(host="127.0.0.1", port=port, username=INGEST,
                        password=bundle.accounts[INGEST], tls_ca=bundle.ca_cert),
    )  # fmt: skip
    service = CentralService(cfg).start()
    chain = Chain(bundle, port, central_broker, brokers, stores, service, conn, links)
    try:
        yield chain
    finally:
        chain.service.stop()  # the one running now (a test may have replaced it)
        for store in stores.values():
            store.close()
        for broker in [central_broker, *(b.proc for b in brokers.values())]:
            broker.stop()
        for link in links.values():
            link.close()
        conn.close()


@pytest.fixture
def chain(tmp_path: Path, pg_dsn: str) -> Iterator[Chain]:
    with _chain(tmp_path, pg_dsn, STORES) as c:
        yield c


def _trade(chain: Chain, t: float, customers: int) -> float:
    """A stretch of trading in both stores: customers served, shoppers in the zones, and the
    hub's chain tick + outbox flush after each minute. Returns the clock after it."""
    for _ in range(customers):
        for i, store in enumerate(chain.stores.values()):
            store.serve_customer(t, staff="bob" if i else "carol")
            store.zone_visit("Shoes", t + 3, t + 40, person=f"p{t}")
        t += 60
        for store in chain.stores.values():
            store.step(t)
    return t


def test_two_stores_reach_postgres_exactly_once_through_a_central_outage(chain: Chain) -> None:
    t = time.time() - 3600
    t -= t % 60  # a minute boundary: the chain's floor intervals are 60 s here
    for store in chain.stores.values():
        store.step(t)  # health, and the floor cursor starts
    t = _trade(chain, t, customers=4)
    assert wait_for(chain.all_arrived, WAIT_S), {
        s: len(st.chain_ids() - chain.applied_ids(s)) for s, st in chain.stores.items()
    }
    before = {s: len(chain.applied_ids(s)) for s in STORES}

    chain.central_broker.stop()  # the central office is away; the stores keep trading
    t = _trade(chain, t, customers=4)
    for store in chain.stores.values():
        # the store broker took them (PUBACK): they wait in its bridge's queue, not in the hub
        assert wait_for(lambda store=store: store.unsent() == 0, WAIT_S)
    assert {s: len(chain.applied_ids(s)) for s in STORES} == before
    chain.central_broker.start()

    assert wait_for(chain.all_arrived, WAIT_S), {
        s: len(st.chain_ids() - chain.applied_ids(s)) for s, st in chain.stores.items()
    }
    for s, store in chain.stores.items():
        kinds = [m["kind"] for m in store.chain_messages()]
        assert chain.rows("alert_summaries", s) == 8  # one row per alert, at its last state
        assert chain.rows("claims", s) == 8
        assert chain.rows("zone_intervals", s) == kinds.count("zone_interval") == 2 * 8
        assert chain.rows("store_health", s) == kinds.count("store_health")
        done = chain.pg.execute(
            "SELECT count(*) FROM alert_summaries WHERE store_id=%s AND state='done'", (s,)
        ).fetchone()
        assert done == (8,)
    shoes = chain.pg.execute(
        "SELECT store_id, sum(visits) FROM zone_intervals WHERE zone='Shoes' GROUP BY store_id"
    ).fetchall()
    assert dict(shoes) == {"s1": 8, "s2": 8}
    # every id was applied once; copies (redeliveries, a claim seen again) were dropped
    assert sum(chain.service.ingest.applied.values()) == sum(
        len(st.chain_ids()) for st in chain.stores.values()
    )
    assert not chain.service.ingest.rejected


def test_a_store_can_write_only_its_own_tree_and_only_with_its_password(chain: Chain) -> None:
    intruder = make_client("store-s1", chain.mqtt(store_account("s1")))
    connect(intruder, chain.mqtt(store_account("s1")))
    forged = cm.StoreHealth(store_id="s2", outbox_unsent=99)
    sentinel = cm.StoreHealth(store_id="s1", outbox_unsent=1)
    intruder.publish(
        ChainTopics.of("s2", "store_health"), forged.to_bytes(), qos=1
    ).wait_for_publish(5)
    intruder.publish(
        ChainTopics.of("s1", "store_health"), sentinel.to_bytes(), qos=1
    ).wait_for_publish(5)
    # MQTT keeps one publisher's order: once the sentinel is in, the forged one would be too
    assert wait_for(lambda: sentinel.msg_id in chain.applied_ids("s1"), WAIT_S)
    assert forged.msg_id not in chain.applied_ids("s2")
    assert chain.rows("store_health", "s2") == 0
    intruder.disconnect()
    intruder.loop_stop()
    wrong = make_client("store-s2", chain.mqtt(store_account("s2"), password="not-it"))
    with pytest.raises(MqttConnectError, match="refused"):
        connect(wrong, chain.mqtt(store_account("s2"), password="not-it"))
    acl = chain.bundle.acl.read_text()
    assert "user store-s1\ntopic write chain/v1/s1/+\ntopic read chain/v1/s1/down/+" in acl
    assert "user central-ingest\ntopic read chain/v1/+/+" in acl


def test_the_bridge_forwards_only_the_chain_tree_remapped_under_the_store() -> None:
    text = render_bridge("s9", central_host="hq.example", central_port=8883, password="pw",
                         cafile=Path("/etc/storesense/chain-ca.crt"))  # fmt: skip
    topics = [line for line in text.splitlines() if line.startswith("topic ")]
    assert topics == [
        "topic # out 1 storesense/v1/s9/chain/ chain/v1/s9/",
        # the office's messages for s9 only, mapped in where only its hub reads
        "topic + in 1 storesense/v1/s9/chain-down/ chain/v1/s9/down/",
    ]
    for line in (
        "cleansession false",
        "remote_username store-s9",
        "bridge_insecure false",
        "bridge_cafile /etc/storesense/chain-ca.crt",
        "address hq.example:8883",
    ):
        assert line in text.splitlines()  # fmt: skip


def test_a_crashed_central_broker_loses_nothing_once_the_stores_resend(chain: Chain) -> None:
    """SIGKILL: Mosquitto loses what it took since its last save (sessions, queued messages);
    ``storesense chain resend`` on each store publishes the window again and the central
    office keeps each message once, whatever the crash happened to lose."""
    from storesense_tools.cli import main

    t = time.time() - 3600
    t -= t % 60
    for store in chain.stores.values():
        store.step(t)
    t = _trade(chain, t, customers=2)
    assert wait_for(chain.all_arrived, WAIT_S)
    chain.service.stop()  # the ingest is away: the central broker queues for its session
    t = _trade(chain, t, customers=2)
    for store in chain.stores.values():
        assert wait_for(lambda store=store: store.unsent() == 0, WAIT_S)
    broker = chain.central_broker
    assert broker.proc is not None
    broker.proc.kill()  # no persistence save: what the broker had acknowledged may be gone
    broker.proc.wait(10)
    broker.proc = None
    broker.start()
    chain.service = CentralService(chain.service.cfg).start()
    assert chain.service.subscribed.wait(WAIT_S)
    for store in chain.stores.values():
        argv = ["--home", str(store.home), "--config", str(store.config_path),
                "chain", "resend", "--hours", "2"]  # fmt: skip
        assert main(argv) == 0
        store.step(t)  # the running hub's next flush publishes them again
    assert wait_for(chain.all_arrived, WAIT_S), {
        s: len(st.chain_ids() - chain.applied_ids(s)) for s, st in chain.stores.items()
    }
    for s in STORES:
        assert chain.rows("alert_summaries", s) == chain.rows("claims", s) == 4
    # the new ingest applied exactly what was missing and dropped the resend's other copies
    assert chain.service.ingest.duplicates > 0
    assert not chain.service.ingest.rejected


@pytest.fixture
def chain3(tmp_path: Path, pg_dsn: str) -> Iterator[Chain]:
    with _chain(tmp_path, pg_dsn, ("s1", "s2", "s3"), proxied=("s3",)) as c:
        yield c


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_trading_day_in_three_stores_through_an_hour_long_link_cut_and_an_ingest_outage(
    chain3: Chain,
) -> None:
    """Issue 16 part 6: three store brokers bridged to one central broker and PostgreSQL.

    An 8-hour trading day in store time (each store's hub clock; the brokers, bridges and
    PostgreSQL are real and run in real time): a customer served every 8 minutes and a zone
    visit every 4 in each store, the chain tick and outbox flush every minute. From 11:00 to
    12:00 store s3's WAN link is dead (its relay cut: the bridge's reconnects are refused);
    s3 keeps trading, its hub's outbox empties into its own broker, and the central office
    shows s1 and s2 growing while s3 stands still. From 14:00 to 14:30 the central ingest is
    down. At the end every message id of every store is applied exactly once."""
    chain = chain3
    day0 = time.time() - 9 * 3600
    day0 -= day0 % 3600  # store time: "09:00" = day0
    for store in chain.stores.values():
        store.step(day0)
    link = chain.links["s3"]
    cut_at, back_at = 2 * 60, 3 * 60  # minutes after opening: 11:00-12:00
    ingest_down, ingest_up = 5 * 60, 5 * 60 + 30  # 14:00-14:30
    during_cut: dict[str, int] = {}
    for minute in range(8 * 60):
        t = day0 + 60 * minute
        if minute == cut_at:
            assert wait_for(chain.all_arrived, WAIT_S)  # nothing in flight when the line dies
            link.cut()
            at_cut = {s: len(chain.applied_ids(s)) for s in chain.stores}
        if minute == back_at:
            for s, store in chain.stores.items():  # every hub's outbox is empty: brokers hold it
                assert wait_for(lambda store=store: store.unsent() == 0, WAIT_S), s
            assert wait_for(
                lambda: all(
                    chain.applied_ids(s) == chain.stores[s].chain_ids() for s in ("s1", "s2")
                ),
                WAIT_S,
            )
            during_cut = {s: len(chain.applied_ids(s)) - at_cut[s] for s in chain.stores}
            link.restore()
        if minute == ingest_down:
            chain.service.stop()
        if minute == ingest_up:
            chain.service = CentralService(chain.service.cfg).start()
            assert chain.service.subscribed.wait(WAIT_S)
        for i, store in enumerate(chain.stores.values()):
            if minute % 8 == i:
                store.serve_customer(t, staff=f"staff-{i}")
            if minute % 4 == i:
                store.zone_visit("Shoes", t + 1, t + 30, person=f"p{minute}-{i}")
            store.step(t + 60)
    t_end = time.monotonic()
    assert wait_for(chain.all_arrived, 4 * WAIT_S), {
        s: len(st.chain_ids() - chain.applied_ids(s)) for s, st in chain.stores.items()
    }
    caught_up_s = time.monotonic() - t_end

    # s3 stood still at the central office while its line was dead; s1 and s2 did not
    assert during_cut["s3"] == 0, during_cut
    assert during_cut["s1"] > 0 and during_cut["s2"] > 0, during_cut
    assert link.cuts == 1
    for s, store in chain.stores.items():
        kinds = [msg["kind"] for msg in store.chain_messages()]
        served = 60  # 480 minutes / 8
        assert chain.rows("alert_summaries", s) == served
        assert chain.rows("claims", s) == served
        assert chain.rows("zone_intervals", s) == kinds.count("zone_interval")
        assert chain.rows("store_health", s) == kinds.count("store_health")
        visits = chain.pg.execute(
            "SELECT sum(visits) FROM zone_intervals WHERE store_id=%s AND zone='Shoes'", (s,)
        ).fetchone()
        assert visits == (120,), (s, visits)  # 480 / 4 zone visits, none lost or doubled
    assert not chain.service.ingest.rejected
    total = sum(len(st.chain_ids()) for st in chain.stores.values())
    print(
        f"\n3 stores, 8 h of trading: {total} chain messages, each applied once; during s3's "
        f"cut the office applied s1 +{during_cut['s1']}, s2 +{during_cut['s2']}, s3 +0; "
        f"caught up {caught_up_s:.1f} s after the day's last flush"
    )
