"""Chain-wide customers at the store, through the real central ingest on PostgreSQL.

Three real hub databases (``tests/chain_store.py``) and the office's real ``Ingest``: each
store's chain messages go from its outbox into ``Ingest.handle`` as the central broker would
deliver them, and the office's ``downlink`` rows go to the stores' ``ChainCustomers.apply`` as
their bridges would. No broker here (tests/storesense_tools/test_chain_customers.py runs the
same over real Mosquittos): this file covers the rules, including every downlink rejection.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from hub.chain import customers as customers_mod
from hub.chain import seal
from hub.faces.gallery import Gallery
from hub.privacy import audit
from hub.privacy.erasure import erase_customer
from storesense import chain_messages as cm
from storesense.topics import ChainTopics
from storesense_tools.cli import main
from tests.chain_office import Office
from tests.chain_store import ChainStore, mentions
from tests.hub.conftest import unit

SEND = "[customers]"
ANN, ANN_NAME = "ann-0017", "Ann Example"  # chain consent at s1
LOU, LOU_NAME = "lou-0042", "Lou Local"  # no chain consent: stays at s1
# fields and values that may never cross in the clear
PRIVATE_KEYS = {"customer_id", "name", "customer_name", "vector", "embedding", "template"}


@pytest.fixture
def chain(tmp_path: Path, pg_dsn: str) -> Iterator[Office]:
    stores = {s: ChainStore(tmp_path / s, s, send=SEND) for s in ("s1", "s2", "s3")}
    office = Office(pg_dsn, stores)
    try:
        yield office
    finally:
        office.pg.close()
        for store in stores.values():
            store.close()


def _gallery(store: ChainStore) -> Gallery:
    return Gallery.open(store.conn, store.home / "secrets" / "template.key")


def _ids(store: ChainStore) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT customer_id FROM customers")}


def test_a_chain_customer_reaches_the_other_stores_and_a_local_one_stays(chain: Office) -> None:
    s1, s2, s3 = (chain.stores[s] for s in ("s1", "s2", "s3"))
    chain.settle()  # keys registered, directories back
    assert chain.count("store_keys") == 3
    for store in chain.stores.values():
        peers = store.conn.execute("SELECT count(*) FROM chain_peers").fetchone()[0]
        assert peers == 3
    ann, lou = unit(17), unit(42)
    s1.enrol(ANN, ANN_NAME, ann, chain=True)
    s1.enrol(LOU, LOU_NAME, lou, chain=False)
    chain.settle()

    for store in (s2, s3):
        assert _ids(store) == {"c1", ANN}  # Ann arrived, Lou did not; c1 is each store's own
        got = _gallery(store).customer_templates(ANN, store.cfg.recognition.model)
        assert len(got) == 1 and np.allclose(got[0][0], ann)  # the same vector, decrypted
        assert _gallery(store).customer_name(ANN) == ANN_NAME
        # encrypted at rest under THIS store's key: the raw row is not s1's ciphertext
        raw = store.conn.execute("SELECT vector_enc FROM templates WHERE customer_id=?", (ANN,))
        assert (
            raw.fetchone()[0]
            != s1.conn.execute(
                "SELECT vector_enc FROM templates WHERE customer_id=?", (ANN,)
            ).fetchone()[0]
        )
        actions = [
            r[0]
            for r in store.conn.execute(
                "SELECT action FROM audit WHERE customer_id=? ORDER BY audit_id", (ANN,)
            )
        ]
        assert actions == ["enrol", "chain_template_received"]
    assert _ids(s1) == {"c1", ANN, LOU}

    # the office holds two sealed templates (for s2 and s3): no name, no vector; Ann's id only
    # where a store said it holds her (chain_members: her purchases are sent there)
    assert chain.count("chain_templates") == 2 and chain.count("chain_customers") == 1
    members = chain.pg.execute("SELECT store_id, customer_id FROM chain_members ORDER BY 1")
    assert members.fetchall() == [("s1", ANN), ("s2", ANN), ("s3", ANN)]
    for table in ("chain_customers", "chain_templates", "store_keys", "ingested"):
        text = json.dumps([list(map(str, r)) for r in chain.pg.execute(f"SELECT * FROM {table}")])
        assert ANN not in text and ANN_NAME not in text and LOU not in text, table
    for table in ("chain_members", "downlink"):
        text = json.dumps([list(map(str, r)) for r in chain.pg.execute(f"SELECT * FROM {table}")])
        assert ANN_NAME not in text and LOU not in text, table
    sealed = chain.pg.execute("SELECT sealed FROM chain_templates").fetchall()
    for (blob,) in sealed:
        assert np.asarray(ann, "<f4").tobytes()[:16] not in bytes(blob)

    # every chain message any store produced: no private field, no name in the clear, Lou
    # (no chain consent) nowhere; Ann's id only in ``chain_member`` (her loyalty id, which the
    # chain consent lets the office keep), never beside her templates
    for store in chain.stores.values():
        for msg in store.chain_messages():
            raw = json.dumps(msg)
            body = json.dumps({k: v for k, v in msg.items() if k != "_topic"}).encode()
            cm.decode_for(store.cfg.store_id, msg["kind"], body)  # a valid chain message
            if msg["kind"] == "chain_member":
                assert set(msg) - {"_topic"} == {"v", "msg_id", "sent_at", "store_id", "kind",
                                                 "chain_ref", "customer_id"}  # fmt: skip
                assert msg["customer_id"] == ANN
                continue
            assert not PRIVATE_KEYS & set(msg), raw
            # the ciphertext is random bytes (base64 of it may spell "Ada" by chance): its
            # decoded bytes are checked for the id and name, the rest of the message as text
            sealed = base64.b64decode(msg.pop("sealed", ""))
            assert ANN.encode() not in sealed and ANN_NAME.encode() not in sealed
            raw = json.dumps(msg)
            for value in (ANN, ANN_NAME, LOU, LOU_NAME, "Ada", '"c1"'):
                assert value not in raw, (value, raw)
    kinds = [m["kind"] for m in s1.chain_messages()]
    assert kinds.count("chain_template") == 2  # Ann for s2 and s3; nothing for Lou
    assert kinds.count("chain_member") == 1
    # s2 re-seals nobody: it says it holds Ann, nothing more
    assert [m["kind"] for m in s2.chain_messages()] == ["store_key", "chain_member"]


def test_erasure_anywhere_erases_everywhere(chain: Office) -> None:
    s1, s2, s3 = (chain.stores[s] for s in ("s1", "s2", "s3"))
    chain.settle()
    s1.enrol(ANN, ANN_NAME, unit(17), chain=True)
    chain.settle()
    assert all(ANN in _ids(st) for st in (s1, s2, s3))
    ref = s1.conn.execute("SELECT chain_ref FROM chain_customers").fetchone()[0]
    late = next(m for m in s1.chain_messages() if m["kind"] == "chain_template")

    erase_customer(s2.conn, ANN, actor="manager", reason="customer asked at s2")  # at s2
    chain.settle()

    for store in (s1, s2, s3):
        assert ANN not in _ids(store)
        tomb = store.conn.execute(
            "SELECT actor, detail FROM audit WHERE action='erase' AND customer_id=?", (ANN,)
        ).fetchall()
        assert len(tomb) == 1, store.cfg.store_id
        if store is s2:
            assert "chain customer: erasure requested in every store" in tomb[0][1]
        else:
            assert tomb[0][0] == "chain:s2" and "asked for at store s2" in tomb[0][1]
        assert audit.verify(store.conn).ok
        # her id is in the audit tombstone only; her name nowhere
        assert mentions(store.conn, ANN) == {"audit": 1}, store.cfg.store_id
        assert mentions(store.conn, ANN_NAME) == {}
        # her chain messages left every outbox with her (templates, membership); the random
        # reference stays in s2's erasure request and, where the office ordered the erasure,
        # in the tombstone (an auditor matches it to the office's); nothing links it to her
        held = mentions(store.conn, ref)
        assert held == ({"outbox": 1} if store is s2 else {"audit": 1}), store.cfg.store_id
    # the office: only the tombstone (and the orders it sent) hold the reference
    assert chain.count("chain_customers") == chain.count("chain_templates") == 0
    stones = chain.pg.execute(
        "SELECT chain_ref, origin_store, stores_ordered FROM chain_tombstones"
    )
    assert stones.fetchall() == [(ref, "s2", ["s1", "s3"])]
    kinds = chain.pg.execute("SELECT kind FROM downlink WHERE chain_ref IS NOT NULL").fetchall()
    assert kinds == []  # the deliveries went with her

    # a late copy of her template (a store's queue) is refused by the tombstone
    payload = json.dumps({k: v for k, v in late.items() if k != "_topic"})
    payload = payload.replace(late["msg_id"], "f" * 32)  # not the copy's id: a new message
    assert chain.ingest.handle(ChainTopics.of("s1", "chain_template"), payload.encode(),
                               chain.now) == "rejected"  # fmt: skip
    assert chain.ingest.rejected["erased_customer"] == 1


def test_bad_downlink_messages_are_counted_rejections(chain: Office) -> None:
    s1, s2 = chain.stores["s1"], chain.stores["s2"]
    chain.settle()
    s1.enrol(ANN, ANN_NAME, unit(17), chain=True)
    s1.feed.tick(chain.now)
    chain.up()
    row = chain.pg.execute(
        "SELECT payload FROM downlink WHERE store_id='s2' AND kind='template_delivery'"
    ).fetchone()
    assert row is not None
    good = json.loads(bytes(row[0]))
    c2 = s2.customers
    assert c2 is not None
    topic = s2.topics.chain_down("template_delivery")

    def send(msg: dict, on: str = topic) -> str:
        return c2.apply(on, json.dumps(msg).encode(), chain.now)

    assert c2.apply(topic, b"{not json", chain.now) == "rejected"
    assert send(good | {"store_id": "s3"}) == "rejected"  # for another store
    assert send(good, s2.topics.chain_down("erasure_order")) == "rejected"  # wrong kind topic
    assert send(good | {"embedding": [0.1]}) == "rejected"  # unknown field
    assert c2.apply(s2.topics.chain_down_prefix + "a/b", b"{}", chain.now) == "rejected"
    # sealed for s2 but moved to another reference: the seal does not open
    other = good | {"chain_ref": "0" * 32, "msg_id": "1" * 32}
    assert send(other) == "rejected"
    # another face model: refused clearly, audited
    assert send(good | {"model": "sface-2021dec", "msg_id": "2" * 32}) == "rejected"
    assert c2.rejected == {"bad_json": 1, "wrong_store": 1, "topic_mismatch": 1,
                           "bad_schema": 1, "bad_topic": 1, "bad_seal": 1,
                           "model_mismatch": 1}  # fmt: skip
    refused = s2.conn.execute(
        "SELECT detail FROM audit WHERE action='chain_template_refused' ORDER BY audit_id"
    ).fetchall()
    assert len(refused) == 2 and "model_mismatch" in refused[1][0] and "sface" in refused[1][0]
    assert ANN not in _ids(s2)
    assert send(good) == "applied"
    assert send(good) == "duplicate"  # a replay: dropped by its id
    assert c2.duplicates == 1 and ANN in _ids(s2)


def test_a_store_that_joins_later_gets_the_customers_enrolled_before(
    tmp_path: Path, pg_dsn: str
) -> None:
    s1 = ChainStore(tmp_path / "s1", "s1", send=SEND)
    office = Office(pg_dsn, {"s1": s1})
    try:
        office.settle()
        s1.enrol(ANN, ANN_NAME, unit(17), chain=True)
        office.settle()
        assert not [m for m in s1.chain_messages() if m["kind"] == "chain_template"]
        s4 = ChainStore(tmp_path / "s4", "s4", send=SEND)
        office.stores["s4"] = s4
        office.settle()
        assert ANN in _ids(s4)
        s4.close()
    finally:
        office.pg.close()
        s1.close()


def test_seal_opens_only_for_its_store_reference_and_model(tmp_path: Path) -> None:
    mine, other = seal.load_or_create(tmp_path / "a.key"), seal.load_or_create(tmp_path / "b.key")
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
    v = unit(3)
    blob = seal.seal(
        seal.public_b64(mine), chain_ref="a" * 32, customer_id=ANN, origin="s1", target="s2",
        model="dlib-resnet-v1", name=ANN_NAME, consent_ref="r", notice_version="n",
        templates=[seal.SealedTemplate(v, 0.9, "t")],
    )  # fmt: skip
    assert ANN.encode() not in base64.b64decode(blob)
    ok = {"chain_ref": "a" * 32, "origin": "s1", "target": "s2", "model": "dlib-resnet-v1"}
    opened = seal.open_sealed(mine, blob, **ok)
    assert opened.customer_id == ANN and np.allclose(opened.templates[0].vector, v)
    for bad in ({"chain_ref": "b" * 32}, {"target": "s3"}, {"model": "sface-2021dec"},
                {"origin": "s9"}):  # fmt: skip
        with pytest.raises(seal.SealError):
            seal.open_sealed(mine, blob, **(ok | bad))
    with pytest.raises(seal.SealError):
        seal.open_sealed(other, blob, **ok)


def test_the_office_refuses_what_its_state_does_not_allow(chain: Office) -> None:
    chain.settle()
    msg = cm.ChainTemplate(
        store_id="s1", chain_ref="c" * 32, target_store="s9", model="dlib-resnet-v1",
        revision=1.0, sealed=base64.b64encode(b"x" * 64).decode(), sent_at=chain.now,
    )  # fmt: skip
    topic = ChainTopics.of("s1", "chain_template")
    assert chain.ingest.handle(topic, msg.to_bytes(), chain.now) == "rejected"
    assert chain.ingest.rejected["unknown_store"] == 1
    rows = chain.pg.execute("SELECT count(*) FROM ingested WHERE msg_id=%s", (msg.msg_id,))
    assert rows.fetchone() == (0,)  # rolled back: a later good copy is not a "duplicate"
    # s2 claiming s1's chain customer (a reference s1 made) is refused and changes nothing
    s1 = chain.stores["s1"]
    s1.enrol(ANN, ANN_NAME, unit(17), chain=True)
    chain.settle()
    ref = s1.conn.execute("SELECT chain_ref FROM chain_customers").fetchone()[0]
    forged = msg.model_copy(update={"store_id": "s2", "chain_ref": ref, "target_store": "s3",
                                    "msg_id": "d" * 32})  # fmt: skip
    assert chain.ingest.handle(ChainTopics.of("s2", "chain_template"), forged.to_bytes(),
                               chain.now) == "rejected"  # fmt: skip
    assert chain.ingest.rejected["origin_conflict"] == 1
    origin = chain.pg.execute("SELECT origin_store FROM chain_customers WHERE chain_ref=%s",
                              (ref,)).fetchone()  # fmt: skip
    assert origin == ("s1",)
    # a sealed blob that is not base64: refused by the model before the office looks
    bad = msg.to_bytes().replace(msg.sealed.encode(), b"not base64!")
    assert chain.ingest.handle(topic, bad, chain.now) == "rejected"
    assert chain.ingest.rejected["bad_schema"] == 1
    # after her erasure, a store saying it holds her is refused by the tombstone
    erase_customer(s1.conn, ANN, actor="manager", reason="asked")
    chain.settle()
    late = cm.ChainMember(store_id="s3", chain_ref=ref, customer_id=ANN, sent_at=chain.now)
    assert chain.ingest.handle(ChainTopics.of("s3", "chain_member"), late.to_bytes(),
                               chain.now) == "rejected"  # fmt: skip
    assert chain.ingest.rejected["erased_customer"] == 1
    assert chain.count("chain_members") == 0
    assert isinstance(chain.pg, psycopg.Connection)


def test_a_known_stores_key_is_pinned_and_another_one_from_the_office_is_held(
    chain: Office, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trust on first use: an office (or anyone on its side) that sends another key for a
    known store gets nothing sealed for it until a person accepts the key, audited."""
    s1, s2 = chain.stores["s1"], chain.stores["s2"]
    chain.settle()
    c1 = s1.customers
    assert c1 is not None
    real_s2 = s1.conn.execute("SELECT public_key FROM chain_peers WHERE store_id='s2'").fetchone()
    forged = seal.public_b64(seal.load_or_create(tmp_path / "office-made.key"))
    rows = s1.conn.execute("SELECT store_id, public_key FROM chain_peers")
    keys = {str(r[0]): str(r[1]) for r in rows}
    swap = cm.KeyDirectory(store_id="s1", keys=keys | {"s2": forged})
    topic = s1.topics.chain_down("key_directory")
    assert c1.apply(topic, swap.to_bytes(), chain.now) == "applied"
    assert c1.rejected["peer_key_changed"] == 1
    row = s1.conn.execute(
        "SELECT public_key, pending_key FROM chain_peers WHERE store_id='s2'"
    ).fetchone()
    assert (row[0], row[1]) == (real_s2[0], forged)  # the pinned key stays in use
    held = s1.conn.execute(
        "SELECT detail FROM audit WHERE action=?", (customers_mod.PEER_KEY_HELD,)
    ).fetchall()
    assert len(held) == 1 and seal.fingerprint(forged) in held[0][0]

    # dropped from the directory, then listed again with the forged key: still held, the pin
    # is not forgotten in between
    without = cm.KeyDirectory(store_id="s1", keys={k: v for k, v in keys.items() if k != "s2"})
    assert c1.apply(topic, without.to_bytes(), chain.now) == "applied"
    assert s1.conn.execute(
        "SELECT public_key, listed FROM chain_peers WHERE store_id='s2'"
    ).fetchone()[:] == (real_s2[0], 0)
    again = cm.KeyDirectory(store_id="s1", keys=keys | {"s2": forged}, msg_id="3" * 32)
    assert c1.apply(topic, again.to_bytes(), chain.now) == "applied"
    row = s1.conn.execute(
        "SELECT public_key, pending_key, listed FROM chain_peers WHERE store_id='s2'"
    ).fetchone()
    assert row[:] == (real_s2[0], forged, 1)

    # Ann enrolled now is sealed for the pinned key: s2 opens it, the forged key would not
    s1.enrol(ANN, ANN_NAME, unit(17), chain=True)
    chain.settle()
    assert ANN in _ids(s2)

    # `storesense chain peers` shows the held key; a wrong fingerprint changes nothing
    home = ["--home", str(s1.home), "--config", str(s1.config_path)]
    assert main([*home, "chain", "peers"]) == 0
    out = capsys.readouterr().out
    assert f"HELD: another key {seal.fingerprint(forged)}" in out
    assert main([*home, "chain", "peers", "--accept", "s2", "--fingerprint", "0000"]) == 2
    assert (
        s1.conn.execute("SELECT public_key FROM chain_peers WHERE store_id='s2'").fetchone()[0]
        == real_s2[0]
    )
    assert main([*home, "chain", "peers", "--accept", "s2",
                 "--fingerprint", seal.fingerprint(forged)]) == 0  # fmt: skip
    row = s1.conn.execute(
        "SELECT public_key, pending_key FROM chain_peers WHERE store_id='s2'"
    ).fetchone()
    assert (row[0], row[1]) == (forged, None)
    assert (
        s1.conn.execute(
            "SELECT count(*) FROM audit WHERE action=?", (customers_mod.PEER_KEY_ACCEPTED,)
        ).fetchone()[0]
        == 1
    )
    assert audit.verify(s1.conn).ok
