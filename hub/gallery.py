"""Customers and their face templates: consent-gated enrolment, erasure, and the search matrix.

Only the hub process and the ``storesense enroll/erase`` commands write here. Every change bumps
the ``gallery_version`` counter, which the live matcher polls to reload its in-memory matrix.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from hub import db
from hub.template_crypto import TemplateCipher


class EnrolmentRefused(ValueError):
    """Enrolment was refused for a reason the operator must fix (consent, photo quality…)."""


@dataclass(frozen=True)
class GalleryMatrix:
    """Row i of ``matrix`` belongs to ``customer_ids[labels[i]]``."""

    version: int
    labels: np.ndarray  # int64 (N,)
    matrix: np.ndarray  # float32 (N, 128)
    customer_ids: list[str]
    names: dict[str, str]


class Gallery:
    def __init__(self, conn: sqlite3.Connection, cipher: TemplateCipher) -> None:
        self.conn = conn
        self.cipher = cipher

    def version(self) -> int:
        row = self.conn.execute(
            "SELECT value FROM counters WHERE name='gallery_version'"
        ).fetchone()
        return int(row[0]) if row else 0

    def enrol(
        self,
        customer_id: str,
        name: str,
        consent_ref: str,
        templates: list[tuple[np.ndarray, float, str]],
        *,
        actor: str = "cli",
    ) -> int:
        """Store a customer's templates (vector, quality, source label); returns how many."""
        if not consent_ref or not consent_ref.strip():
            raise EnrolmentRefused("no consent reference: enrolment needs the customer's consent")
        if not templates:
            raise EnrolmentRefused("no usable face template to store")
        now = time.time()
        with db.write(self.conn) as c:
            c.execute(
                "INSERT INTO customers(customer_id, name, consent_ref, consent_at, created_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET name=excluded.name, "
                "consent_ref=excluded.consent_ref, consent_at=excluded.consent_at",
                (customer_id, name, consent_ref.strip(), now, now),
            )
            for vector, quality, source in templates:
                c.execute(
                    "INSERT INTO templates(customer_id, vector_enc, quality, source, created_at) "
                    "VALUES (?,?,?,?,?)",
                    (customer_id, self.cipher.encrypt(customer_id, vector), quality, source, now),
                )
            c.execute(
                "INSERT INTO audit(at, actor, action, customer_id, detail) VALUES (?,?,?,?,?)",
                (
                    now,
                    actor,
                    "enrol",
                    customer_id,
                    f"{len(templates)} templates; consent {consent_ref}",
                ),
            )
            db.next_counter(c, "gallery_version")
        return len(templates)

    def erase(
        self, customer_id: str, *, actor: str = "cli", reason: str = "erasure request"
    ) -> bool:
        """Right to erasure; see ``hub.erasure``. True if there was anything to erase."""
        from hub.erasure import erase_customer

        return erase_customer(self.conn, customer_id, actor=actor, reason=reason).anything

    def customer_name(self, customer_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT name FROM customers WHERE customer_id=?", (customer_id,)
        ).fetchone()
        return row["name"] if row else None

    def counts(self) -> tuple[int, int]:
        customers = self.conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        templates = self.conn.execute("SELECT count(*) FROM templates").fetchone()[0]
        return int(customers), int(templates)

    def load_matrix(self) -> GalleryMatrix:
        version = self.version()
        rows = self.conn.execute(
            "SELECT t.customer_id, t.vector_enc, c.name FROM templates t "
            "JOIN customers c USING (customer_id) ORDER BY t.customer_id, t.template_id"
        ).fetchall()
        customer_ids: list[str] = []
        index: dict[str, int] = {}
        names: dict[str, str] = {}
        labels = np.empty(len(rows), dtype=np.int64)
        matrix = np.empty((len(rows), 128), dtype=np.float32)
        for i, row in enumerate(rows):
            cid = row["customer_id"]
            if cid not in index:
                index[cid] = len(customer_ids)
                customer_ids.append(cid)
                names[cid] = row["name"]
            labels[i] = index[cid]
            matrix[i] = self.cipher.decrypt(cid, row["vector_enc"])
        return GalleryMatrix(version, labels, matrix, customer_ids, names)
