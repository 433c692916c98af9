"""Chain-wide customers over the real chain: three store Mosquittos (TLS, accounts, ACL as
``broker-config`` makes them) bridged both ways to the central Mosquitto, ``central run`` on
PostgreSQL, each store's real hub database, chain feed, outbox and downlink route
(tests/chain_store.py). Store s3's WAN link runs through a relay the test cuts.

Ann enrols at s1 with the chain consent, Lou without: Ann's templates reach s2 and s3 sealed
for each, Lou's nothing. Ann asks for erasure at s2 while s3's link is down: s1 erases at
once, s3 when its link is back (the central broker queues for its bridge); every store's
audit records the chain erasure, and afterwards her id is nowhere but each store's tombstone.
Between the two, the office imports a till export (``storesense central pos import``) and
Ann's receipt reaches every store that holds her.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.privacy import audit
from hub.privacy.erasure import erase_customer
from storesense import chain_messages as cm
from storesense.config import MqttConfig
from storesense.mqtt_client import connect, make_client
from storesense_tools.broker_config import GATEWAY
from storesense_tools.cli import main
from tests.chain_store import ALL, ChainStore, mentions
from tests.hub.conftest import unit
from tests.storesense_tools.test_chain_bridge import WAIT_S, Chain, _chain
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)

SEND = ALL.replace("]", ", customers]")
ANN, ANN_NAME = "ann-0017", "Ann Example"
LOU, LOU_NAME = "lou-0042", "Lou Local"


@pytest.fixture
def chain(tmp_path: Path, pg_dsn: str) -> Iterator[Chain]:
    with _chain(tmp_path, pg_dsn, ("s1", "s2", "s3"), proxied=("s3",), send=SEND) as c:
        yield c


def _steps(chain: Chain, until: object) -> bool:
    """The hubs' worker turns (downlink, tick, flush) until ``until()`` holds."""

    def turn() -> bool:
        for store in chain.stores.values():
            store.step(time.time())
        return bool(until())  # type: ignore[operator]

    return wait_for(turn, WAIT_S)


def _ids(store: ChainStore) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT customer_id FROM customers")}


def _gateway(chain: Chain, store_id: str) -> MqttConfig:
    """The phone gateway's account on a store broker (it may not write the downlink)."""
    broker = chain.store_brokers[store_id]
    return broker.hub.model_copy(update={"username": GATEWAY, "password": broker.accounts[GATEWAY]})


def test_chain_customers_and_erasure_everywhere_over_real_brokers(chain: Chain) -> None:
    s1, s2, s3 = (chain.stores[s] for s in ("s1", "s2", "s3"))
    peers = "SELECT count(*) FROM chain_peers"
    assert _steps(chain, lambda: all(
        st.conn.execute(peers).fetchone()[0] == 3 for st in chain.stores.values()
    )), "the stores' keys did not go round"  # fmt: skip

    # a forged erasure order from the phone gateway's account on s2's broker: the ACL drops it
    forged = cm.ErasureOrder(store_id="s2", chain_ref="e" * 32, origin_store="s1", erased_at=1.0)
    gw = make_client("forger", _gateway(chain, "s2"), persistent=False)
    connect(gw, _gateway(chain, "s2"))
    gw.publish(s2.topics.chain_down("erasure_order"), forged.to_bytes(), qos=1).wait_for_publish(10)
    gw.disconnect()
    gw.loop_stop()

    ann = unit(17)
    s1.enrol(ANN, ANN_NAME, ann, chain=True)
    s1.enrol(LOU, LOU_NAME, unit(42), chain=False)
    assert _steps(chain, lambda: ANN in _ids(s2) and ANN in _ids(s3))
    assert LOU not in _ids(s2) | _ids(s3)
    assert forged.msg_id.encode() not in b"".join(p for _, p, _ in s2.down_log)
    row = chain.pg.execute("SELECT count(*) FROM chain_templates").fetchone()
    assert row == (2,)
    ref = s1.conn.execute("SELECT chain_ref FROM chain_customers").fetchone()[0]

    # the office's POS feed: s1's till export with a receipt of Ann and one of a stranger;
    # Ann's reaches every store that holds her, the stranger's none
    till = chain.bundle.out_dir.parent / "s1-till.csv"
    till.write_text(
        "invoice_no,sku,description,quantity,invoiced_at,unit_price,customer_id,country\n"
        f"A-1,SH1,RED SHOE,1,2026-12-01T10:00:00,49.5,{ANN},UK\n"
        f"A-1,SO2,SOCKS,2,2026-12-01T10:00:00,3.25,{ANN},UK\n"
        "A-2,SH1,RED SHOE,1,2026-12-01T11:00:00,49.5,zed-0099,UK\n"
    )
    assert main(["central", "pos", "import", str(till), "--store", "s1", "--format", "generic",
                 "--database", chain.service.cfg.database]) == 0  # fmt: skip
    receipts = "SELECT invoice_no, total FROM pos_invoices WHERE customer_id=?"
    assert _steps(chain, lambda: all(
        st.conn.execute(receipts, (ANN,)).fetchall() for st in (s2, s3)
    ))  # fmt: skip
    assert [tuple(r) for r in s2.conn.execute(receipts, (ANN,))] == [("s1/A-1", 56.0)]
    assert [tuple(r) for r in s1.conn.execute(receipts, (ANN,))] == [("A-1", 56.0)]
    assert not s2.conn.execute(receipts, ("zed-0099",)).fetchall()

    # (a row still in flight at the erasure is not deleted: hub/bus/chain_rows.py says why)
    assert _steps(chain, lambda: all(st.unsent() == 0 for st in chain.stores.values()))
    chain.links["s3"].cut()  # s3's WAN link is down when Ann asks s2 to erase her
    erase_customer(s2.conn, ANN, actor="manager", reason="asked at the s2 till")
    assert _steps(chain, lambda: ANN not in _ids(s1))
    assert ANN in _ids(s3)  # not yet: its order waits on the central broker
    chain.links["s3"].restore()
    assert _steps(chain, lambda: ANN not in _ids(s3)), "s3 never got the erasure order"

    for store in (s1, s2, s3):
        tomb = store.conn.execute(
            "SELECT actor, detail FROM audit WHERE action='erase' AND customer_id=?", (ANN,)
        ).fetchall()
        assert len(tomb) == 1
        if store is not s2:
            assert tomb[0][0] == "chain:s2" and "asked for at store s2" in tomb[0][1]
        assert audit.verify(store.conn).ok
        assert mentions(store.conn, ANN) == {"audit": 1}, store.cfg.store_id
        assert mentions(store.conn, ANN_NAME) == {}, store.cfg.store_id
        outcomes = [o for _, _, o in store.down_log]
        assert "rejected" not in outcomes, store.down_log
    assert chain.pg.execute("SELECT count(*) FROM chain_customers").fetchone() == (0,)
    assert chain.pg.execute("SELECT count(*) FROM chain_templates").fetchone() == (0,)
    stone = chain.pg.execute("SELECT chain_ref, origin_store, stores_ordered FROM chain_tombstones")
    assert stone.fetchall() == [(ref, "s2", ["s1", "s3"])]
    assert chain.service.ingest.rejected == {}
    # the office: her receipt unlinked (the sales stay), nothing left of her to send
    assert chain.pg.execute("SELECT count(*) FROM pos_invoices WHERE customer_id=%s",
                            (ANN,)).fetchone() == (0,)  # fmt: skip
    assert chain.pg.execute("SELECT count(*) FROM pos_invoices").fetchone() == (2,)
