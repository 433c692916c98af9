"""docs/mqtt.md and docs/phone-app.md name every rpc op and every topic that exists.

The web ⇄ hub protocol grows with the phone app (an op per feature); a reader of the docs, or
an engineer writing a native client, must find each one. So an ``Op`` in ``storesense/rpc.py``
or a topic in ``storesense/topics.py`` that the docs do not mention fails here, not in review.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import pytest

from storesense import rpc
from storesense.topics import Topics

DOCS = Path(__file__).resolve().parents[3] / "docs"
MQTT_MD = (DOCS / "mqtt.md").read_text()
PHONE_MD = (DOCS / "phone-app.md").read_text()
OPS = typing.get_args(rpc.Op)


def _op_rows(text: str) -> set[str]:
    """Ops in a markdown table's first column: lines like ``| `name` | …``."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))


def test_every_rpc_op_has_a_row_in_mqtt_md() -> None:
    rows = _op_rows(MQTT_MD)
    assert not set(OPS) - rows, f"ops missing from docs/mqtt.md's op table: {set(OPS) - rows}"
    stale = {r for r in rows - set(OPS) if r in _op_table(MQTT_MD)}
    assert not stale, f"docs/mqtt.md documents ops that do not exist: {stale}"


def _op_table(text: str) -> set[str]:
    """Only the rows of the table under '| op | args | result |'."""
    start = text.index("| op | args | result |")
    table = text[start:].split("\n\n", 1)[0]
    return _op_rows(table)


def test_every_rpc_op_is_named_in_phone_app_md() -> None:
    missing = [op for op in OPS if f"`{op}`" not in PHONE_MD]
    assert not missing, f"docs/phone-app.md never names these ops: {missing}"


def _topic_patterns() -> dict[str, str]:
    """Every topic ``Topics`` builds, relative to ``storesense/v1/<store>/``, with its
    variable levels as a regex matching the docs' ``<placeholder>`` spelling."""
    topics = Topics("S")
    out: dict[str, str] = {}
    for name, member in inspect.getmembers(Topics):
        # prefixes and helpers, not topics (chain_prefix: what the chain's bridge forwards,
        # chain_down_prefix: what it brings in; their topics, chain_down/all_chain_down, are rows)
        skip = ("base", "chain_prefix", "chain_down_prefix", "segment", "alert_in_any_store",
                "store_id")  # fmt: skip
        if name.startswith("_") or name in skip:
            continue
        if isinstance(member, property):
            topic = getattr(topics, name)
        elif callable(member):
            params = list(inspect.signature(member).parameters)[1:]
            topic = getattr(topics, name)(*(["X"] * len(params)))
        else:
            continue
        rel = topic.removeprefix(topics.base + "/")
        out[name] = "`" + re.escape(rel).replace("X", "<[a-z_]+>").replace(r"\+", "<[a-z_]+>") + "`"
    return out


@pytest.mark.parametrize("name", sorted(_topic_patterns()))
def test_every_topic_is_in_the_mqtt_md_table(name: str) -> None:
    pattern = _topic_patterns()[name]
    assert re.search(r"^\| " + pattern + r" \|", MQTT_MD, flags=re.M), (
        f"Topics.{name} ({pattern}) has no row in docs/mqtt.md's topic table"
    )
