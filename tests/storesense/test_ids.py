"""The one id rule (storesense/ids.py): every path that takes a customer id agrees with it.

Issue 13: ``R.4004`` could be enrolled and imported, but the alert schema refused it, so the
customer walked in and no phone rang. Here every path is asked about the same ids, the edge
characters included, and must give the same answer as the rule; and the regex must not be
copied anywhere again (a copy is how the paths drifted apart).
"""

from __future__ import annotations

import inspect
import re
import time
from pathlib import Path
from typing import Annotated, get_type_hints

import numpy as np
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from hub.api import dispatch
from hub.faces.gallery import Consent, Gallery
from hub.faces.template_crypto import TemplateCipher
from hub.shop import pos_import
from hub.shop.card import CustomerCard
from hub.shop.pos_webhook import PosTransaction
from hub.store import db
from hub.web.routers import customers, manager, privacy
from storesense import ids, rpc
from storesense import messages as m
from storesense.topics import Topics

REPO = Path(__file__).resolve().parents[2]

# (id, valid as a customer id, valid as an Ident)
CASES = [
    ("R.4004", True, False),  # the loyalty id of the issue
    ("a", True, True),
    ("9", True, True),
    ("a-b_c", True, True),
    ("x.y.z", True, False),
    ("A..B", True, False),
    ("ends.", True, False),
    ("ends-", True, True),
    ("C" * 64, True, True),
    ("C" * 65, False, False),
    (".lead", False, False),
    ("..", False, False),
    ("-opt", False, False),
    ("_lead", False, False),
    ("", False, False),
    ("a+b", False, False),  # MQTT single-level wildcard
    ("a#b", False, False),  # MQTT multi-level wildcard
    ("a/b", False, False),  # MQTT level separator, URL path separator
    ("a b", False, False),
    ("a\n", False, False),  # a trailing newline: `$` in Python's re.match would allow it
    ("é1", False, False),
    ("a:b", False, False),
]


@pytest.mark.parametrize(("value", "customer", "ident"), CASES)
def test_the_rule(value: str, customer: bool, ident: bool) -> None:
    assert ids.is_customer_id(value) is customer
    assert ids.is_ident(value) is ident
    if customer:
        assert ids.validate_customer_id(value) == value
    else:
        with pytest.raises(ids.InvalidId, match="invalid customer id"):
            ids.validate_customer_id(value)


def _alert(customer_id: str) -> m.Alert:
    now = time.time()
    return m.Alert(
        alert_id="a" * 32, seq=1, state="open", customer_id=customer_id, customer_name="N",
        greeting="hi", camera_id="door-1", arrived_at=now, expires_at=now + 60,
    )  # fmt: skip


def _accepts(build) -> bool:  # type: ignore[no-untyped-def]
    try:
        build()
    except (ValidationError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    path = tmp_path_factory.mktemp("ids") / "hub.sqlite3"
    return Gallery(db.migrate_db(path), TemplateCipher(b"k" * 32))


@pytest.mark.parametrize(("value", "customer", "_ident"), CASES)
def test_every_customer_id_path_gives_the_rules_answer(
    gallery: Gallery, value: str, customer: bool, _ident: bool
) -> None:
    """Enrolment, POS import and webhook, the card, the alert, the rpc args and answers, and
    the web routes' patterns: one answer per id, the rule's."""
    answers = {
        "alert message": _accepts(lambda: m.Alert.model_validate_json(_alert("x").to_bytes()
                                  .replace(b'"customer_id":"x"', _json_str(value)))),
        "alert model": _accepts(lambda: _alert(value)),
        "rpc claim answer": _accepts(lambda: rpc.ClaimAnswer(
            alert_id="a1", outcome="won", message="", claimed_by="bob", customer_id=value)),
        "rpc customer args": _accepts(
            lambda: dispatch.CustomerArgs(token="t", customer_id=value, alert_id="a1")),
        "rpc erase args": _accepts(
            lambda: dispatch.EraseArgs(token="t", customer_id=value, reason="asked")),
        "rpc withdraw args": _accepts(
            lambda: dispatch.WithdrawPhotoArgs(token="t", customer_id=value, reason="asked")),
        "card": _accepts(lambda: _field(CustomerCard, "customer_id").validate_python(value)),
        "enrolment (gallery)": _accepts(lambda: gallery.enrol(
            value, "N", Consent("f-1", "bob", "n-1"), [(np.ones(128, np.float32), 0.9, "t")])),
        "web /api/customers/{id}": _route_accepts(customers.CustomerId, value),
        "web /api/privacy/customers/{id}": _route_accepts(privacy.CustomerId, value),
        "web manager withdraw-photo": bool(re.fullmatch(ids.CUSTOMER_ID_PATTERN, value))
        and _route_pattern(manager.withdraw_photo, "customer_id") == ids.CUSTOMER_ID_PATTERN,
    }  # fmt: skip
    if value == value.strip() and value:  # the import and webhook strip padding first
        answers["pos import"] = _accepts(lambda: pos_import.normalise_customer(value, False))
        answers["pos webhook"] = _accepts(lambda: PosTransaction.model_validate({
            "invoice_no": "1", "customer_id": value, "invoiced_at": "2026-01-01T10:00:00",
            "lines": [{"sku": "A", "quantity": 1, "unit_price": 1.0}]}))  # fmt: skip
    assert answers == dict.fromkeys(answers, customer), value


def _json_str(value: str) -> bytes:
    import json

    return b'"customer_id":' + json.dumps(value).encode()


def _field(model: type[BaseModel], name: str) -> TypeAdapter[str]:
    """A validator for one field of ``model``, as the model validates it."""
    info = model.model_fields[name]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[misc]


def _route_pattern(endpoint, name: str) -> str:  # type: ignore[no-untyped-def]
    return _annotated_pattern(get_type_hints(endpoint, include_extras=True)[name])


def _annotated_pattern(annotation) -> str:  # type: ignore[no-untyped-def]
    for meta in getattr(annotation, "__metadata__", ()):
        if getattr(meta, "pattern", None):
            return str(meta.pattern)
        for sub in getattr(meta, "metadata", ()):
            if getattr(sub, "pattern", None):
                return str(sub.pattern)
    raise AssertionError(f"no pattern on {annotation}")


def _route_accepts(annotation, value: str) -> bool:  # type: ignore[no-untyped-def]
    pattern = _annotated_pattern(annotation)
    assert pattern == ids.CUSTOMER_ID_PATTERN
    return re.fullmatch(pattern, value) is not None and "\n" not in value


def test_no_copy_of_the_id_regex_outside_the_contract() -> None:
    """The rule's character classes appear in storesense/ids.py only (and the browser's
    pattern attributes, which cannot import Python): a copy is how the paths drifted."""
    needles = ("[A-Za-z0-9_-]{0,63}", "[A-Za-z0-9_.-]{0,63}")
    hits = [
        str(p.relative_to(REPO))
        for root in ("storesense", "hub", "edge", "storesense_tools")
        for p in (REPO / root).rglob("*.py")
        if p.name not in ("ids.py", "hub_schemas.py")  # hub_schemas: generated from the models
        and any(n in p.read_text(encoding="utf-8") for n in needles)
    ]
    assert hits == []


def test_the_browser_patterns_are_the_rules() -> None:
    page = (REPO / "hub" / "web" / "static" / "manager.html").read_text(encoding="utf-8")
    for input_id in ("withdraw-id", "forget-id"):
        tag = re.search(rf'<input id="{input_id}"[^>]*>', page)
        assert tag is not None and f'pattern="{ids.CUSTOMER_ID_HTML_PATTERN}"' in tag.group(0)
    tag = re.search(r'<input id="new-id"[^>]*>', page)
    assert tag is not None and f'pattern="{ids.IDENT_HTML_PATTERN}"' in tag.group(0)


def test_no_topic_embeds_a_customer_id() -> None:
    """``.`` is only safe for customer ids because none becomes a topic level: every
    ``Topics`` method takes a camera, alert, staff or web id (Ident) or a chain message kind
    (``storesense.chain_messages.ChainKind``), never a customer's."""
    params = {
        name
        for _, fn in inspect.getmembers(Topics, inspect.isfunction)
        if not fn.__name__.startswith("__")
        for name in inspect.signature(fn).parameters
        if name != "self"
    }
    assert params == {
        "camera_id", "alert_id", "staff_id", "web_id", "kind", "topic", "index_from_base"
    }  # fmt: skip


def test_the_alert_carries_a_dotted_customer_id_through_json() -> None:
    alert = _alert("R.4004")
    again = m.decode(alert.to_bytes(), m.Alert)
    assert again.customer_id == "R.4004"
