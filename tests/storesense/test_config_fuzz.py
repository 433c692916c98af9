"""Fuzz: the store YAML (``storesense.config.parse_config``, with its floor, zone, shop and
privacy sections) answers a broken file with a ``ConfigError`` naming where, or a valid
``StoreConfig``; never another exception. The shipped example, broken in a few places, and
raw text. Bounds: tests/fuzzing.py."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from storesense.config import ConfigError, StoreConfig, load_config, parse_config
from tests.fuzzing import FUZZ, mutated

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "store.example.yaml"
BASE = yaml.safe_load(EXAMPLE.read_text())


def _parse_or_refuse(text: str) -> None:
    try:
        cfg = parse_config(text, "store.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("store.yaml")  # it says which file (and line, where known)
        return
    assert isinstance(cfg, StoreConfig)


def test_the_example_is_valid() -> None:
    _parse_or_refuse(EXAMPLE.read_text())


@FUZZ
@given(mutated(BASE, max_changes=4))
def test_a_broken_store_yaml_is_refused_clearly_or_valid(doc: Any) -> None:
    _parse_or_refuse(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(
    st.sampled_from(["floor", "zones", "cameras", "loyalty", "privacy", "app"]).flatmap(
        lambda key: mutated({key: BASE.get(key, {})}, max_changes=3)
    )
)
def test_a_broken_section_is_refused_clearly_or_valid(section: Any) -> None:
    doc = {**BASE, **section} if isinstance(section, dict) else section
    _parse_or_refuse(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
def test_raw_text_is_refused_clearly_or_valid(text: str) -> None:
    _parse_or_refuse("store_id: s1\n" + text)
    _parse_or_refuse(text)


@FUZZ
@given(st.binary(max_size=200))
def test_a_file_of_raw_bytes_is_refused_clearly_or_valid(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".yaml") as fh:
        fh.write(b"store_id: s1\n" + data)
        fh.flush()
        try:
            assert isinstance(load_config(fh.name), StoreConfig)
        except ConfigError as exc:
            assert str(exc).startswith(fh.name)
