"""One store's hub side of the chain, on a real hub database, for the chain tests.

Alerts are opened, claimed and closed through the alert room (``hub.alerts.claims``), zone
visits are stored as the floor room stores them when a visit ends, the chain feed
(``hub.chain.feed``) turns them into chain messages in the outbox, and the hub's real
``Outbox`` publishes them QoS 1 to the store's broker. The clock is the caller's (``now``).
"""

from __future__ import annotations

import json
import queue
import sqlite3
from dataclasses import replace
from pathlib import Path

from hub.alerts import claims as alerts
from hub.bus.outbox import Outbox
from hub.chain.customers import ChainCustomers
from hub.chain.feed import ChainFeed
from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from hub.store import db
from storesense import messages as m
from storesense.config import MqttConfig, parse_config
from storesense.mqtt_client import connect, make_client
from storesense.topics import Topics
from tests.consent import consent
from tests.hub.conftest import unit

ALL = "[alert_summaries, claims, floor_aggregates, health]"
ZONES = """
floor: {width_m: 20, height_m: 15}
zones:
  - {name: Shoes, polygon: [[1, 1], [6, 1], [6, 6], [1, 6]]}
  - {name: Till, kind: till, polygon: [[10, 1], [14, 1], [14, 4], [10, 4]]}
  - {name: Back office, kind: staff, polygon: [[15, 10], [19, 10], [19, 14], [15, 14]]}
"""

# a store with a door (footfall) and a shoe zone holding the "shoes" category (sales), for
# the daily summaries
DAY_ZONES = """
floor: {width_m: 20, height_m: 15, cell_m: 0.5}
cameras: [{id: floor-1, role: floor, source: x}]
zones:
  - {name: Door, kind: entrance, polygon: [[8, 0], [12, 0], [12, 2], [8, 2]]}
  - {name: Shoes, polygon: [[1, 1], [6, 1], [6, 6], [1, 6]], categories: [shoes]}
  - {name: Till, kind: till, polygon: [[10, 4], [14, 4], [14, 7], [10, 7]]}
  - {name: Back office, kind: staff, polygon: [[15, 10], [19, 10], [19, 14], [15, 14]]}
"""


class ChainStore:
    def __init__(
        self, home: Path, store_id: str, *, send: str = ALL, interval_s: int = 60,
        zones: str = ZONES, currency: str = "GBP",
    ) -> None:  # fmt: skip
        home.mkdir(parents=True, exist_ok=True)
        self.conn = db.migrate_db(home / "hub.sqlite3")
        key = load_or_create_key(home / "secrets" / "template.key")
        Gallery(self.conn, TemplateCipher(key)).enrol(
            "c1", "Ada Lovelace", consent("ref-1"), [(unit(1), 0.9, "t")]
        )
        text = (
            f"store_id: {store_id}\n{zones}\nchain: {{send: {send}, "
            f"floor_interval_s: {interval_s}, floor_settle_s: 0, health_interval_s: 5, "
            f"daily_settle_s: 3600}}\nloyalty: {{currency: {currency}}}\n"
        )
        self.cfg = parse_config(text)
        self.config_path = home / "store.yaml"  # for the CLI (storesense chain resend)
        self.config_path.write_text(text)
        self.home = home
        self.topics = Topics(store_id)
        self.customers = (
            ChainCustomers(self.conn, self.cfg, self.topics, home)
            if self.cfg.chain.sends("customers") else None
        )  # fmt: skip
        self.feed = ChainFeed(self.conn, self.cfg, self.topics, customers=self.customers)
        self.outbox: Outbox | None = None
        # the central office's messages for this store, as the hub's route receives them
        self.downlink: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.down_log: list[tuple[str, bytes, str]] = []  # (topic, payload, outcome)

    def enrol(self, customer_id: str, name: str, face: object, *, chain: bool) -> None:
        """Enrol a customer here (the chain consent only where ``chain``)."""
        gallery = Gallery.open(self.conn, self.home / "secrets" / "template.key")
        gallery.enrol(
            customer_id, name, replace(consent(f"ref-{customer_id}"), chain=chain),
            [(face, 0.9, "t")],  # type: ignore[list-item]
        )  # fmt: skip

    # -- what happens in the store -----------------------------------------------------------
    def serve_customer(self, now: float, staff: str = "bob") -> str:
        """A door match, a salesperson's claim and 'done': three alert states, one claim."""
        with db.write(self.conn):
            out = alerts.record_match(
                self.conn, self.topics, customer_id="c1", camera_id="door-1",
                first_usable_at=now, now=now, cooldown_s=0, alert_ttl_s=120,
            )  # fmt: skip
        assert out.alert_id is not None
        for action, t in (("claim", now + 2), ("done", now + 60)):
            req = m.ClaimRequest(alert_id=out.alert_id, staff_id=staff, action=action)  # type: ignore[arg-type]
            assert alerts.handle_claim(self.conn, self.topics, req, t) is not None
        return out.alert_id

    def zone_visit(self, zone: str, enter_t: float, exit_t: float, person: str = "p1") -> None:
        """A finished zone visit, as ``hub.floor.ingest`` stores it when the visit ends."""
        with db.write(self.conn):
            self.conn.execute(
                "INSERT INTO floor_visits(person_key, zone, day, enter_t, exit_t) "
                "VALUES (?,?,?,?,?)",
                (person, zone, "2026-12-03", enter_t, exit_t),
            )

    def store_day(
        self, day: str, start: float, *, people: int, shoppers: int, sales: list[float],
        cancelled: int = 0,
    ) -> None:  # fmt: skip
        """A store-local day of floor data and tills, as the floor and POS rooms store them:
        ``people`` walk through the door, ``shoppers`` of them stop in Shoes for a minute (the
        occupancy grid gets their person-seconds there), and each of ``sales`` is a receipt
        of shoes (``cancelled`` more receipts are cancellations, which do not count)."""
        with db.write(self.conn):
            self.conn.execute(
                "INSERT INTO floor_days(day, observed_s) VALUES (?, ?)", (day, 8 * 3600.0)
            )
            for i in range(people):
                t = start + 60 * i
                self.conn.execute(
                    "INSERT INTO floor_visits(person_key, zone, day, enter_t, exit_t) "
                    "VALUES (?,?,?,?,?)", (f"{day}-p{i}", "Door", day, t, t + 3),
                )  # fmt: skip
                if i < shoppers:
                    self.conn.execute(
                        "INSERT INTO floor_visits(person_key, zone, day, enter_t, exit_t) "
                        "VALUES (?,?,?,?,?)", (f"{day}-p{i}", "Shoes", day, t + 10, t + 70),
                    )  # fmt: skip
            for ix in range(4, 10):
                for iy in range(4, 10):
                    self.conn.execute(
                        "INSERT INTO floor_grid(day, cell_mm, ix, iy, person_s) "
                        "VALUES (?, 500, ?, ?, ?)", (day, ix, iy, 30.0 * shoppers + ix),
                    )  # fmt: skip
            self.conn.execute(
                "INSERT OR IGNORE INTO pos_products VALUES ('SH1', 'Shoe', 'shoes', 0)"
            )
            for n, amount in enumerate([*sales, *([-10.0] * cancelled)]):
                no = f"{'C' if amount < 0 else ''}{day}-{n}"
                self.conn.execute(
                    "INSERT INTO pos_invoices(invoice_no, customer_id, invoiced_at, day, "
                    "cancellation, total, n_lines, content_hash, source, imported_at) "
                    "VALUES (?, 'c1', ?, ?, ?, ?, 1, 'h', 'test', 0)",
                    (no, f"{day} 12:00:00", day, int(amount < 0), amount),
                )
                self.conn.execute(
                    "INSERT INTO pos_lines VALUES (?, 1, 'SH1', 'Shoe', ?, ?)",
                    (no, -1 if amount < 0 else 1, abs(amount)),
                )

    # -- the chain ---------------------------------------------------------------------------
    def chain_messages(self) -> list[dict]:
        """Every chain message in the outbox, decoded as JSON."""
        rows = self.conn.execute(
            "SELECT topic, payload FROM outbox WHERE topic LIKE ? ORDER BY outbox_id",
            (self.topics.chain_prefix + "%",),
        ).fetchall()
        return [json.loads(bytes(r["payload"])) | {"_topic": r["topic"]} for r in rows]

    def chain_ids(self) -> set[str]:
        return {msg["msg_id"] for msg in self.chain_messages()}

    def connect(self, mqtt: MqttConfig) -> None:
        """The hub's MQTT client on the store broker (its account, where the broker has one)."""
        client = make_client(f"hub-{self.cfg.store_id}", mqtt)
        self.outbox = Outbox(self.conn, client)
        outbox = self.outbox
        client.on_publish = lambda c, u, mid, rc, p: outbox.on_publish(mid)
        if self.customers is not None:  # the hub's chain-down route (hub.service)
            down = self.topics.all_chain_down
            client.on_connect = lambda c, u, f, rc, p: c.subscribe(down, qos=1)
            client.on_message = lambda c, u, msg: self.downlink.put((msg.topic, bytes(msg.payload)))
        connect(client, mqtt)

    def step(self, now: float) -> None:
        """One turn of the hub worker's loop as far as the chain goes: the downlink messages
        received, then tick, then flush."""
        while self.customers is not None:
            try:
                topic, payload = self.downlink.get_nowait()
            except queue.Empty:
                break
            self.down_log.append((topic, payload, self.customers.apply(topic, payload, now)))
        self.feed.tick(now)
        assert self.outbox is not None
        self.outbox.flush()

    def unsent(self) -> int:
        assert self.outbox is not None
        self.outbox.flush()
        return self.outbox.unsent()

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.client.disconnect()
            self.outbox.client.loop_stop()
        self.conn.close()


def mentions(conn: sqlite3.Connection, text: str) -> dict[str, int]:
    """Per table, the rows whose any column holds ``text`` (raw bytes): where an erased
    customer's id or name is still to be found in a store's database."""
    out = {}
    for (table,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        cond = " OR ".join(f"instr(CAST({c} AS BLOB), CAST(? AS BLOB)) > 0" for c in cols)
        n = conn.execute(f"SELECT count(*) FROM {table} WHERE {cond}", [text] * len(cols))
        if got := n.fetchone()[0]:
            out[table] = got
    return out
