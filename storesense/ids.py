"""The id rules, once: every path that accepts, stores, sends or shows an id checks it here.

Two kinds of id, each with one rule that every path uses (issue 13: a loyalty id ``R.4004``
could be enrolled and imported, but the alert schema refused it, so the customer walked in and
no phone rang):

- ``CustomerId`` — a customer's id, chosen outside the store software (the POS / loyalty
  system) and shared by enrolment, POS import and webhook, the customer card, the alert message
  and the web routes. It **allows ``.``**: loyalty and POS ids often have one (``R.4004``), and
  a customer id never becomes an MQTT topic level (alerts travel on ``alerts/<alert_id>``, a
  uuid; ``tests/storesense/test_ids.py`` checks every ``Topics`` method takes no customer
  id), nor a file name. It must start with a letter or digit, so ``.``/``..`` (path segments in
  a URL) and ``-x`` (an option on a command line) are impossible. ``+ # /`` (MQTT wildcards and
  the level separator), spaces and anything outside ASCII are refused.
- ``Ident`` — the ids the store itself names: cameras, staff accounts, alerts, the store, web
  instances. They ARE topic levels (``edge/<camera>/faces``, ``claims/<staff>``) and broker
  account names, so they keep the narrower set without ``.``; nothing outside asks for more.

Both are at most 64 characters. An id that breaks its rule is refused with a sentence saying
which rule (``InvalidId``), never silently dropped.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field

IDENT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
CUSTOMER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The same sets without anchors, for an HTML ``pattern`` attribute (anchored by the browser).
IDENT_HTML_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}"
CUSTOMER_ID_HTML_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"

IDENT_RE: Final = re.compile(IDENT_PATTERN)
CUSTOMER_ID_RE: Final = re.compile(CUSTOMER_ID_PATTERN)

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]

CUSTOMER_ID_RULE: Final = (
    "1-64 characters of letters, digits, '.', '-' and '_', starting with a letter or digit"
)
IDENT_RULE: Final = (
    "1-64 characters of letters, digits, '-' and '_', starting with a letter or digit"
)


class InvalidId(ValueError):
    """An id that breaks its rule; the message names the id and the rule."""


def is_customer_id(value: str) -> bool:
    return CUSTOMER_ID_RE.fullmatch(value) is not None


def is_ident(value: str) -> bool:
    return IDENT_RE.fullmatch(value) is not None


def validate_customer_id(value: str) -> str:
    """``value`` if it is a valid customer id; ``InvalidId`` saying why otherwise.

    No trimming or case folding: an id is compared byte for byte with the POS's, so the caller
    decides what to strip (the CSV import strips cell padding, the CLI does not).
    """
    if not isinstance(value, str) or not is_customer_id(value):
        raise InvalidId(f"invalid customer id {value!r}: {CUSTOMER_ID_RULE}")
    return value


def validate_ident(value: str, what: str = "id") -> str:
    """``value`` if it is a valid store-named id (camera, staff, alert); ``InvalidId`` else."""
    if not isinstance(value, str) or not is_ident(value):
        raise InvalidId(f"invalid {what} {value!r}: {IDENT_RULE}")
    return value
