"""The default category rules: shipped as package data, and the editable copy in config/ agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.shop.categories import DEFAULT_RULES_PATH, NON_PRODUCT, OTHER, default_rules, load_rules

REPO = Path(__file__).resolve().parents[3]


def test_the_default_rules_are_package_data_not_a_source_tree_path() -> None:
    """Found inside the ``hub.shop`` package (so the wheel carries them), not under config/."""
    assert DEFAULT_RULES_PATH.is_file()
    assert DEFAULT_RULES_PATH.parent.parent == REPO / "hub" / "shop"
    rules = default_rules()
    assert rules("85123A", "CREAM HANGING HEART T-LIGHT HOLDER") == "lighting"
    assert rules("POST", "POSTAGE") == NON_PRODUCT
    assert rules("99999", "SOMETHING ELSE ENTIRELY") == OTHER


def test_the_config_copy_is_the_shipped_rules() -> None:
    """config/categories.yaml is the copy a store edits; out of step it would mislead."""
    example = load_rules(REPO / "config" / "categories.yaml")
    assert example.rules == default_rules().rules


def test_a_missing_rules_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="category rules file not found"):
        load_rules(tmp_path / "nope.yaml")
