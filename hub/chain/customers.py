"""Chain-wide customers at the store (issue 16 part 3; docs/chain.md "Chain-wide customers").

Up (through the hub's outbox, in the transaction that decides it, like every chain item):

* ``store_key``: this store's X25519 public key, once per key (``meta`` ``chain_key_sent``);
* ``chain_template``: for each customer enrolled HERE with the separate chain consent, their
  id, name and templates sealed for each other store's key (``hub.chain.seal``), once per
  store and consent revision (``chain_sealed``): a store that joins later gets them too. The
  chain names the customer by a random ``chain_ref`` (``chain_customers``), never by id;
* ``chain_member``: this store holds a chain customer under this loyalty id (when one gives
  the chain consent here, and when one's templates arrive), so the office sends their
  purchases (part 4, ``central.pos``);
* ``chain_erasure``: a chain customer erased here (``hub.privacy.erasure`` queued its
  reference in ``chain_erasures`` in the erasure's own transaction).

Down (the central office's messages, ``…/<store>/chain-down/<kind>``), each applied exactly
once by ``msg_id`` (``seen_messages``, in the same transaction as its effect):

* ``key_directory`` updates ``chain_peers``, pinning each store's key when first seen: another
  key for a known store is held (``pending_key``, audited, counted ``peer_key_changed``) and
  not used until a person accepts it (``accept_peer_key``); a store gone from the directory
  is unlisted (nothing more is sealed for it) but its key stays pinned;
* ``template_delivery`` is opened with this store's private key, checked against the face
  model this hub runs (another model's vectors are refused, clearly: they cannot be
  compared), and enrolled into the gallery, encrypted there with this store's template key;
  the audit records the enrolment with the store it came from;
* ``erasure_order`` runs this store's own erasure (``hub.privacy.erasure``), whose audit
  tombstone names the store where it was asked for;
* ``purchase``: a chain customer's receipt from the office's POS feed, stored through the
  shop room's import path (``hub.shop.pos_import.store_invoices``), so the card shows it.

A bad downlink message (malformed, for another store, a seal that does not open, another
model, a replay) is a counted, logged rejection (``rejected``), never an exception.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections import Counter
from pathlib import Path
from typing import NoReturn

from hub.bus import outbox, seen
from hub.chain import members, seal
from hub.faces import profiles
from hub.faces.gallery import Consent, EnrolmentRefused, Gallery
from hub.privacy import audit
from hub.privacy.erasure import erase_customer
from hub.shop.categories import default_rules
from hub.shop.pos_import import ImportReport, store_invoices
from hub.shop.pos_store import Invoice, Line
from hub.store import db
from storesense import chain_messages as cm
from storesense.config import StoreConfig
from storesense.messages import PayloadError
from storesense.paths import chain_key_path, template_key_path
from storesense.topics import Topics

log = logging.getLogger(__name__)

KEY_SENT = "chain_key_sent"  # meta: the public key last put in the outbox
MAX_SEALS_PER_TICK = 20  # a store joining a chain of many customers is served over ticks
CHAIN_TEMPLATE_REFUSED = "chain_template_refused"  # audit actions
CHAIN_TEMPLATE_RECEIVED = "chain_template_received"
CHAIN_ERASE_NONE = "erase_chain_none"  # an erasure order for nobody held here
PEER_KEY_HELD = "chain_peer_key_held"  # the office sent another key for a pinned store
PEER_KEY_ACCEPTED = "chain_peer_key_accepted"


class ChainCustomers:
    """Owned by the hub worker (its connection), like ``ChainFeed``."""

    def __init__(
        self, conn: sqlite3.Connection, cfg: StoreConfig, topics: Topics, home: Path
    ) -> None:
        self.conn = conn
        self.cfg = cfg
        self.store_id = cfg.store_id
        self.topics = topics
        self.key = seal.load_or_create(chain_key_path(home))
        self.public_key = seal.public_b64(self.key)
        self.gallery = Gallery.open(conn, template_key_path(home))
        self.model = cfg.recognition.model
        self.categorize = default_rules()  # as the webhook and `pos import` without --categories
        self.applied: Counter[str] = Counter()
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self.cfg.chain.sends("customers")

    # -- up ----------------------------------------------------------------------------------
    def tick(self, now: float) -> int:
        """Enqueue what is due: the key, unsent seals, queued erasures. Returns how many."""
        if not self.enabled:
            return 0
        n = 0
        if db.get_meta(self.conn, KEY_SENT) != self.public_key:
            with db.write(self.conn) as c:
                msg = cm.StoreKey(
                    msg_id=cm.chain_msg_id(self.store_id, "store_key", self.public_key),
                    store_id=self.store_id, public_key=self.public_key, sent_at=now,
                )  # fmt: skip
                self._put(c, msg, now)
                db.put_meta(c, KEY_SENT, self.public_key)
            n += 1
        n += self._erasures(now)
        n += self._members(now)
        n += self._seal_due(now)
        return n

    def _member(self, c: sqlite3.Connection, ref: str, customer_id: str, now: float) -> None:
        msg = cm.ChainMember(
            msg_id=cm.chain_msg_id(self.store_id, "chain_member", ref, customer_id),
            store_id=self.store_id, chain_ref=ref, customer_id=customer_id, sent_at=now,
        )  # fmt: skip
        self._put(c, msg, now)

    def _members(self, now: float) -> int:
        """A customer who gave the chain consent here becomes a chain customer: a fresh random
        reference, and the office hears that this store holds them (for their purchases)."""
        known = {str(r[0]) for r in self.conn.execute("SELECT customer_id FROM chain_customers")}
        new = [c for c in profiles.chain_consented(self.conn) if c.customer_id not in known]
        if not new:
            return 0
        with db.write(self.conn) as c:
            for cust in new:
                ref = secrets.token_hex(16)
                c.execute(
                    "INSERT INTO chain_customers(customer_id, chain_ref, origin_store, revision, "
                    "received_at) VALUES (?,?,?,?,?)",
                    (cust.customer_id, ref, self.store_id, cust.chain_consent_at, now),
                )
                self._member(c, ref, cust.customer_id, now)
        return len(new)

    def _put(self, conn: sqlite3.Connection, msg: cm.ChainMessage, now: float) -> None:
        outbox.enqueue(conn, self.topics.chain(msg.kind), msg, False, now=now)

    def _erasures(self, now: float) -> int:
        rows = self.conn.execute("SELECT chain_ref, erased_at FROM chain_erasures").fetchall()
        if not rows:
            return 0
        with db.write(self.conn) as c:
            for ref, at in rows:
                msg = cm.ChainErasure(
                    msg_id=cm.chain_msg_id(self.store_id, "chain_erasure", ref, at),
                    store_id=self.store_id, chain_ref=ref, erased_at=at, sent_at=now,
                )  # fmt: skip
                self._put(c, msg, now)
                c.execute("DELETE FROM chain_erasures WHERE chain_ref=?", (ref,))
        return len(rows)

    def _seal_due(self, now: float) -> int:
        peers = {
            str(r[0]): str(r[1])
            for r in self.conn.execute(
                "SELECT store_id, public_key FROM chain_peers WHERE listed=1"
            )
            if r[0] != self.store_id
        }
        if not peers:
            return 0
        mine = {
            str(r[0]): (str(r[1]), str(r[2]))
            for r in self.conn.execute(
                "SELECT customer_id, chain_ref, origin_store FROM chain_customers"
            )
        }
        done = {
            (str(r[0]), str(r[1])): float(r[2])
            for r in self.conn.execute(
                "SELECT customer_id, target_store, revision FROM chain_sealed"
            )
        }
        due = [
            (c, target)
            for c in profiles.chain_consented(self.conn)
            # theirs to send: the store that enrolled them (a received one has another origin)
            if mine.get(c.customer_id, ("", self.store_id))[1] == self.store_id
            for target in sorted(peers)
            if done.get((c.customer_id, target)) != c.chain_consent_at
        ][:MAX_SEALS_PER_TICK]
        if not due:
            return 0
        refs = {cid: ref for cid, (ref, _) in mine.items()}
        out: list[tuple[str, cm.ChainTemplate]] = []
        for cust, target in due:
            templates = self.gallery.customer_templates(cust.customer_id, self.model)
            if not templates or cust.customer_id not in refs:
                continue  # another model's only (nothing to match), or made a member next tick
            ref = refs[cust.customer_id]
            sealed = seal.seal(
                peers[target], chain_ref=ref, customer_id=cust.customer_id,
                origin=self.store_id, target=target, model=self.model, name=cust.name,
                consent_ref=cust.consent_ref, notice_version=cust.notice_version,
                templates=[seal.SealedTemplate(v, q, s) for v, q, s in templates],
            )  # fmt: skip
            out.append((
                cust.customer_id,
                cm.ChainTemplate(
                    msg_id=cm.chain_msg_id(self.store_id, "chain_template", ref, target,
                                           cust.chain_consent_at),
                    store_id=self.store_id, chain_ref=ref, target_store=target,
                    model=self.model, revision=cust.chain_consent_at, sealed=sealed,
                    sent_at=now,
                ),
            ))  # fmt: skip
        with db.write(self.conn) as c:
            for cid, msg in out:
                self._put(c, msg, now)
                c.execute(
                    "INSERT INTO chain_sealed(customer_id, target_store, revision, sealed_at) "
                    "VALUES (?,?,?,?) ON CONFLICT(customer_id, target_store) DO UPDATE SET "
                    "revision=excluded.revision, sealed_at=excluded.sealed_at",
                    (cid, msg.target_store, msg.revision, now),
                )
                c.execute(
                    "UPDATE chain_customers SET revision=? WHERE customer_id=?",
                    (msg.revision, cid),
                )
        return len(out)

    # -- down --------------------------------------------------------------------------------
    def apply(self, topic: str, payload: bytes, now: float) -> str:
        """Apply one downlink message; ``applied``, ``duplicate`` or ``rejected`` (counted,
        logged). Database errors other than a refusal propagate (the hub retries)."""
        prefix = self.topics.chain_down_prefix
        kind = topic[len(prefix) :] if topic.startswith(prefix) else ""
        try:
            if not kind or "/" in kind:
                raise PayloadError("bad_topic", f"{topic!r} is not {prefix}<kind>")
            msg = cm.decode_down_for(self.store_id, kind, payload)
            if seen.already_seen(self.conn, msg.msg_id):
                self.duplicates += 1
                log.info("chain downlink: %s %s again (a replay), dropped", msg.kind, msg.msg_id)
                return "duplicate"
            if isinstance(msg, cm.KeyDirectory):
                self._directory(msg, now)
            elif isinstance(msg, cm.TemplateDelivery):
                self._delivery(msg, now)
            elif isinstance(msg, cm.Purchase):
                self._purchase(msg, now)
            else:
                self._erasure_order(msg, now)
        except PayloadError as exc:
            self.rejected[exc.reason] += 1
            log.warning("chain downlink rejected on %s (%s): %s", topic, exc.reason, exc.detail)
            return "rejected"
        self.applied[msg.kind] += 1
        return "applied"

    def _directory(self, msg: cm.KeyDirectory, now: float) -> None:
        """Trust on first use: the office relays keys but must not be able to change a known
        store's, or it could have this store's customers sealed for a key of its own."""
        held: list[str] = []
        with db.write(self.conn) as c:
            seen.remember(c, msg.msg_id, now)
            pinned = {
                str(r[0]): (str(r[1]), r[2])
                for r in c.execute("SELECT store_id, public_key, pending_key FROM chain_peers")
            }
            gone = [s for s in pinned if s not in msg.keys]
            # not deleted: a pin forgotten would let the next directory pin any key for it
            c.executemany("UPDATE chain_peers SET listed=0 WHERE store_id=?", [(s,) for s in gone])
            for store, key in msg.keys.items():
                if store not in pinned:
                    c.execute(
                        "INSERT INTO chain_peers(store_id, public_key, updated_at) VALUES (?,?,?)",
                        (store, key, now),
                    )
                elif pinned[store][0] == key:
                    c.execute(
                        "UPDATE chain_peers SET pending_key=NULL, pending_since=NULL, listed=1 "
                        "WHERE store_id=?",
                        (store,),
                    )
                elif pinned[store][1] == key:  # the same held key again: listed, still held
                    c.execute("UPDATE chain_peers SET listed=1 WHERE store_id=?", (store,))
                else:
                    c.execute(
                        "UPDATE chain_peers SET pending_key=?, pending_since=?, listed=1 "
                        "WHERE store_id=?",
                        (key, now, store),
                    )
                    audit.append(
                        c, actor="chain:office", action=PEER_KEY_HELD,
                        detail=f"the office sent another key for store {store} "
                        f"({seal.fingerprint(key)}; pinned {seal.fingerprint(pinned[store][0])}):"
                        " held, not used; compare it with that store's and accept it with "
                        "`storesense chain peers --accept`",
                    )  # fmt: skip
                    held.append(store)
        for store in held:
            self.rejected["peer_key_changed"] += 1
            log.warning("chain: the office sent another public key for store %s; the pinned "
                        "key stays in use until it is accepted (storesense chain peers)",
                        store)  # fmt: skip

    def _refuse(self, msg: cm.TemplateDelivery, reason: str, detail: str, now: float) -> NoReturn:
        """A delivery that cannot be enrolled: audited (the store can say why a chain
        customer is not recognised here), remembered (a replay is not tried again), raised.
        The audit row names the chain reference, not the customer (it may not have opened)."""
        with db.write(self.conn) as c:
            seen.remember(c, msg.msg_id, now)
            audit.append(
                c, actor=f"chain:{msg.origin_store}", action=CHAIN_TEMPLATE_REFUSED,
                detail=f"chain template {msg.chain_ref}: {reason}: {detail}",
            )  # fmt: skip
        raise PayloadError(reason, detail)

    def _delivery(self, msg: cm.TemplateDelivery, now: float) -> None:
        if msg.origin_store == self.store_id:
            raise PayloadError("own_template", "a template this store enrolled came back")
        if msg.model != self.model:
            why = (
                f"templates of {msg.model!r} from {msg.origin_store}; this hub runs "
                f"{self.model!r}: enrol the customer here to have them recognised"
            )
            self._refuse(msg, "model_mismatch", why, now)
        try:
            opened = seal.open_sealed(
                self.key, msg.sealed, chain_ref=msg.chain_ref, origin=msg.origin_store,
                target=self.store_id, model=msg.model,
            )  # fmt: skip
        except seal.SealError as exc:
            self._refuse(msg, "bad_seal", str(exc), now)
        cid = opened.customer_id
        entry = members.chain_entry(self.conn, cid)
        if entry is None and profiles.customer_name(self.conn, cid) is not None:
            self._refuse(msg, "local_id_taken", "the customer id is enrolled here already, "
                         "not from the chain (the two are not merged)", now)  # fmt: skip
        if entry is not None and entry != (msg.chain_ref, msg.origin_store):
            self._refuse(msg, "origin_conflict", f"the customer came from {entry[1]} under "
                         "another reference", now)  # fmt: skip
        consent = Consent(
            reference=opened.consent_ref or f"chain:{msg.origin_store}",
            staff_id=f"chain:{msg.origin_store}",  # taken at that store; its audit names whom
            notice_version=opened.notice_version or "chain", method="digital",
            given_at=msg.revision, chain=True,
        )  # fmt: skip

        def record(c: sqlite3.Connection) -> None:
            seen.remember(c, msg.msg_id, now)
            c.execute(
                "INSERT INTO chain_customers(customer_id, chain_ref, origin_store, revision, "
                "received_at) VALUES (?,?,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
                "revision=excluded.revision, received_at=excluded.received_at",
                (cid, msg.chain_ref, msg.origin_store, msg.revision, now),
            )
            self._member(c, msg.chain_ref, cid, now)  # the office sends this store her history
            audit.append(
                c, actor=f"chain:{msg.origin_store}", action=CHAIN_TEMPLATE_RECEIVED,
                customer_id=cid, detail=(
                    f"{len(opened.templates)} template(s) of {msg.model} from store "
                    f"{msg.origin_store} (chain consent), re-encrypted under this store's key"
                ),
            )  # fmt: skip

        try:
            self.gallery.enrol(
                cid, opened.name, consent,
                [(t.vector, t.quality, t.source) for t in opened.templates],
                actor=f"chain:{msg.origin_store}", model=msg.model,
                max_templates=self.cfg.privacy.max_templates_per_customer, also=record,
            )  # fmt: skip
        except EnrolmentRefused as exc:
            self._refuse(msg, "enrolment_refused", str(exc), now)
        log.info("chain: a customer's templates from %s enrolled here (ref %s)",
                 msg.origin_store, msg.chain_ref)  # fmt: skip

    def _purchase(self, msg: cm.Purchase, now: float) -> None:
        """A chain customer's receipt from the office's POS feed, into the shop room's tables
        through its own import path (same idempotency: a receipt stored with the same
        content is skipped), so the card shows it like the store's own till's. A receipt of
        another store is numbered ``<store>/<invoice>``; this store's keeps its number, so a
        local ``pos import`` of the same till export is a duplicate, not a second sale."""
        if members.customer_of(self.conn, msg.chain_ref) != msg.customer_id:
            with db.write(self.conn) as c:
                seen.remember(c, msg.msg_id, now)
            raise PayloadError("unknown_customer", f"chain customer {msg.chain_ref} is not "
                               "held here under that id (erased, or never enrolled)")  # fmt: skip
        number = (
            msg.invoice_no if msg.source_store == self.store_id
            else f"{msg.source_store}/{msg.invoice_no}"
        )  # fmt: skip
        inv = Invoice(number, msg.customer_id, msg.invoiced_at, msg.country, msg.cancellation,
                      [Line(ln.sku, ln.description, ln.quantity, ln.unit_price)
                       for ln in msg.lines])  # fmt: skip
        report = ImportReport(f"chain:{msg.source_store}", "chain")
        with db.write(self.conn) as c:
            seen.remember(c, msg.msg_id, now)
            store_invoices(c, [inv], self.categorize, f"chain:{msg.source_store}", report)
        if report.errors:
            raise PayloadError("invoice_conflict", report.errors[0][1])

    def _erasure_order(self, msg: cm.ErasureOrder, now: float) -> None:
        """This store's own erasure, its tombstone naming the store where it was asked; a
        reference that leads to nobody here (never held, or erased already) is recorded in
        the audit without a customer."""
        cid = members.customer_of(self.conn, msg.chain_ref)
        if cid is None:
            with db.write(self.conn) as c:
                seen.remember(c, msg.msg_id, now)
                audit.append(
                    c, actor=f"chain:{msg.origin_store}", action=CHAIN_ERASE_NONE,
                    detail=f"chain erasure {msg.chain_ref} from {msg.origin_store}: "
                    "no such customer here",
                )  # fmt: skip
            return
        report = erase_customer(
            self.conn, cid, actor=f"chain:{msg.origin_store}",
            reason=f"erasure of chain customer {msg.chain_ref}", chain_origin=msg.origin_store,
            also=lambda c: seen.remember(c, msg.msg_id, now),
        )  # fmt: skip
        log.info("chain: erased chain customer %s as asked at %s (profile here: %s)",
                 msg.chain_ref, msg.origin_store, report.profile)  # fmt: skip


def peer_keys(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """The pinned peers, for ``storesense chain peers``: store, fingerprint, held key's."""
    return [
        {
            "store_id": r[0],
            "fingerprint": seal.fingerprint(r[1]),
            "pending_fingerprint": seal.fingerprint(r[2]) if r[2] else None,
            "pending_since": r[3],
            "listed": bool(r[4]),
        }
        for r in conn.execute(
            "SELECT store_id, public_key, pending_key, pending_since, listed FROM chain_peers "
            "ORDER BY store_id"
        )
    ]


class PeerKeyError(ValueError):
    """No held key for that store, or the fingerprint typed is not the held key's."""


def accept_peer_key(
    conn: sqlite3.Connection, store_id: str, fingerprint: str, *, actor: str, now: float
) -> None:
    """Use the key the office sent for ``store_id`` since it was pinned, once a person has
    compared its fingerprint with the one that store shows (typed back here), audited. What
    was sealed for the old key stays sealed for it: re-enrol nothing, the store re-seals."""
    with db.write(conn) as c:
        row = c.execute(
            "SELECT pending_key FROM chain_peers WHERE store_id=?", (store_id,)
        ).fetchone()
        if row is None or row[0] is None:
            raise PeerKeyError(f"no held key for store {store_id!r}")
        if seal.fingerprint(row[0]) != fingerprint.strip().lower():
            raise PeerKeyError(
                f"the held key of {store_id!r} is {seal.fingerprint(row[0])}, not {fingerprint!r}"
            )
        c.execute(
            "UPDATE chain_peers SET public_key=pending_key, pending_key=NULL, pending_since=NULL,"
            " updated_at=? WHERE store_id=?",
            (now, store_id),
        )
        c.execute("DELETE FROM chain_sealed WHERE target_store=?", (store_id,))  # seal anew
        audit.append(
            c, actor=actor, action=PEER_KEY_ACCEPTED,
            detail=f"store {store_id}'s new chain key {seal.fingerprint(row[0])} accepted",
        )  # fmt: skip
