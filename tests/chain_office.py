"""The chain's central office driven by hand, for tests of its rules without brokers.

The office's real ``Ingest`` on a fresh PostgreSQL database: each store's chain messages go
from its outbox into ``Ingest.handle`` as the central broker would deliver them (and the row
is marked sent, as the store broker's PUBACK has the hub's outbox do), and the office's
``downlink`` rows go to the stores' ``ChainCustomers.apply`` as their bridges would.
tests/storesense_tools/test_chain_customers.py runs the same over real Mosquittos.
"""

from __future__ import annotations

from central import db as central_db
from central.ingest import Ingest
from storesense.topics import ChainTopics
from tests.chain_store import ChainStore


class Office:
    """The central office's ingest and downlink, driven by hand (no broker)."""

    def __init__(self, dsn: str, stores: dict[str, ChainStore]) -> None:
        self.pg = central_db.connect(dsn)
        central_db.migrate(self.pg)
        self.ingest = Ingest(self.pg)
        self.stores = stores
        # the messages taken from each store's outbox (by id: an erasure deletes rows, and
        # SQLite may give a later row a deleted row's outbox_id)
        self.taken: set[bytes] = set()
        self.now = 1_800_000_000.0

    def up(self) -> int:
        """Every store's new chain messages into the office, as the bridge delivers them."""
        n = 0
        for s, store in self.stores.items():
            rows = store.conn.execute(
                "SELECT outbox_id, topic, payload FROM outbox WHERE topic LIKE ? "
                "ORDER BY outbox_id", (store.topics.chain_prefix + "%",),
            ).fetchall()  # fmt: skip
            for row in rows:
                payload = bytes(row["payload"])
                if payload in self.taken:
                    continue
                self.taken.add(payload)
                kind = row["topic"].rsplit("/", 1)[1]
                self.ingest.handle(ChainTopics.of(s, kind), payload, self.now)
                with store.conn:  # as the store broker's PUBACK has the hub's outbox do
                    store.conn.execute(
                        "UPDATE outbox SET sent_at=? WHERE outbox_id=?",
                        (self.now, row["outbox_id"]),
                    )
                n += 1
        return n

    def down(self) -> int:
        """The office's unsent downlink rows to their stores, as each bridge maps them in."""
        rows = self.pg.execute(
            "SELECT down_id, store_id, kind, payload FROM downlink WHERE sent_at IS NULL "
            "ORDER BY down_id"
        ).fetchall()
        for down_id, store_id, kind, payload in rows:
            store = self.stores[store_id]
            assert store.customers is not None
            store.customers.apply(store.topics.chain_down(kind), bytes(payload), self.now)
            self.pg.execute("UPDATE downlink SET sent_at=now() WHERE down_id=%s", (down_id,))
        return len(rows)

    def settle(self) -> None:
        """Ticks and relays until nothing moves."""
        for _ in range(20):
            self.now += 1
            moved = sum(st.feed.tick(self.now) for st in self.stores.values())
            moved += self.up() + self.down()
            if not moved:
                return
        raise AssertionError("the chain did not settle in 20 rounds")

    def count(self, table: str) -> int:
        got = self.pg.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert got is not None
        return int(got[0])
