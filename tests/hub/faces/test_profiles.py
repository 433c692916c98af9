"""The face room's read functions other rooms call instead of reading its tables, on a real
SQLite file with customers enrolled through the gallery."""

from __future__ import annotations

import json

from hub.faces import profiles
from hub.faces.gallery import Gallery
from hub.store import db
from tests.consent import consent
from tests.hub.conftest import unit


def _enrol(gallery: Gallery, cid: str, name: str, **kw: object) -> None:
    gallery.enrol(cid, name, consent(f"form-{cid}"), [(unit(len(cid)), 0.8, "t")], **kw)


def test_names_of_the_enrolled_only_across_chunks(gallery: Gallery) -> None:
    for cid, name in [("a0", "Ada"), ("b499", "Bob"), ("c500", "Cy"), ("d1100", "Di")]:
        _enrol(gallery, cid, name)
    # 1200 ids with the enrolled ones on both sides of each 500-id chunk boundary
    ids = [f"x{i}" for i in range(1200)]
    ids[0], ids[499], ids[500], ids[1100] = "a0", "b499", "c500", "d1100"
    names = profiles.customer_names(gallery.conn, [*ids, "a0"])  # a repeat is asked once
    assert names == {"a0": "Ada", "b499": "Bob", "c500": "Cy", "d1100": "Di"}
    assert profiles.customer_names(gallery.conn, []) == {}
    assert profiles.customer_name(gallery.conn, "c500") == "Cy"
    assert profiles.customer_name(gallery.conn, "x1") is None


def test_enrolled_ids_sorted_and_gone_after_erasure(gallery: Gallery) -> None:
    for cid in ("c2", "C10", "c1"):
        _enrol(gallery, cid, cid.upper())
    assert profiles.enrolled_ids(gallery.conn) == ["C10", "c1", "c2"]  # binary order
    with db.write(gallery.conn) as c:
        assert profiles.forget_customer(c, "c1")
    assert profiles.enrolled_ids(gallery.conn) == ["C10", "c2"]
    assert profiles.customer_name(gallery.conn, "c1") is None


def test_customer_data_has_the_profile_and_templates_but_no_vector(gallery: Gallery) -> None:
    _enrol(gallery, "c1", "Ada", photo=(b"\xff\xd8jpeg", "image/jpeg"))
    _enrol(gallery, "c2", "Bob")
    data = profiles.customer_data(gallery.conn, "c1")
    assert set(data) == {"profile", "face_templates", "enrolment_photo_kept", "consents"}
    assert [(c["reference"], c["staff_id"], c["superseded_at"]) for c in data["consents"]] == [
        ("form-c1", "tester", None)
    ]
    assert (data["profile"]["name"], data["profile"]["consent_ref"]) == ("Ada", "form-c1")
    assert data["profile"]["consent_staff"] == "tester"
    assert [(t["quality"], t["source"]) for t in data["face_templates"]] == [(0.8, "t")]
    assert data["enrolment_photo_kept"] is True
    assert "vector" not in json.dumps(data)
    assert profiles.customer_data(gallery.conn, "c2")["enrolment_photo_kept"] is False
    assert profiles.customer_data(gallery.conn, "nobody") == {
        "profile": None,
        "face_templates": [],
        "enrolment_photo_kept": False,
        "consents": [],
    }
