"""Product categories derived from POS descriptions by documented keyword rules.

The UCI Online Retail data (and many small-shop POS exports) carry no category, but the
customer card shows favourite categories and the floor analytics join sales to zones by
category. A shipped YAML of ordered keyword rules makes the derivation reproducible and editable
by the store without code; first match wins, nothing matched is ``other``, fees and postage are
``non-product``.

The default rules are package data (``hub/shop/data/categories.yaml``) read through
``importlib.resources``: a path computed from ``__file__`` pointed into the source tree and was
wrong in the non-editable install a hub runs from. ``config/categories.yaml`` is a copy for a
store to edit and pass with ``--categories``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NON_PRODUCT = "non-product"
OTHER = "other"
# A real file in every install the hub supports (wheel, editable, checkout): pip installs
# a wheel unpacked, so the resource is a path on disk and error messages can name it.
DEFAULT_RULES_PATH = Path(str(resources.files("hub.shop") / "data" / "categories.yaml"))


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    keywords: list[str] = Field(min_length=1)


class CategoryRulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    non_product_codes: list[str] = Field(default_factory=list)
    categories: list[CategoryRule]

    @field_validator("non_product_codes")
    @classmethod
    def _patterns_compile(cls, pats: list[str]) -> list[str]:
        for p in pats:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"bad regular expression {p!r}: {exc}") from None
        return pats

    @field_validator("categories")
    @classmethod
    def _unique_names(cls, rules: list[CategoryRule]) -> list[CategoryRule]:
        names = [r.name for r in rules]
        dup = {n for n in names if names.count(n) > 1} | ({OTHER, NON_PRODUCT} & set(names))
        if dup:
            raise ValueError(f"category names repeated or reserved: {sorted(dup)}")
        return rules


class Categorizer:
    """Maps (stock code, description) to a category name; cached per distinct pair."""

    def __init__(self, rules: CategoryRulesFile) -> None:
        self.rules = rules
        self.names = [r.name for r in rules.categories] + [OTHER, NON_PRODUCT]
        self._non_product = [re.compile(p) for p in rules.non_product_codes]
        # Keywords match as whole words: "RING" must not fire on "SPRING" or "EARRINGS".
        self._patterns = [
            (
                r.name,
                re.compile(
                    r"(?<![A-Z0-9])(?:"
                    + "|".join(re.escape(k.upper()) for k in sorted(r.keywords, key=len)[::-1])
                    + r")(?![A-Z0-9])"
                ),
            )
            for r in rules.categories
        ]
        self._cache: dict[tuple[str, str], str] = {}

    def is_product(self, stock_code: str) -> bool:
        return not any(p.search(stock_code) for p in self._non_product)

    def __call__(self, stock_code: str, description: str) -> str:
        key = (stock_code, description)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not self.is_product(stock_code):
            cat = NON_PRODUCT
        else:
            text = description.upper()
            cat = next((name for name, pat in self._patterns if pat.search(text)), OTHER)
        self._cache[key] = cat
        return cat


def load_rules(path: Path | str | None = None) -> Categorizer:
    """Read and validate a rules YAML (default: the shipped ``hub/shop/data/categories.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Categorizer(CategoryRulesFile.model_validate(raw))
    except FileNotFoundError:
        raise ValueError(f"category rules file not found: {path}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: invalid category rules: {exc}") from None


@lru_cache(maxsize=1)
def default_rules() -> Categorizer:
    """The shipped rules, loaded once per process."""
    return load_rules(DEFAULT_RULES_PATH)
