"""Shared Hypothesis pieces for the parser fuzz tests (``test_*_fuzz.py``).

The property every parser must keep: bad input gets the module's own, typed refusal, or the
result is valid; never any other exception. Random bytes rarely get past a parser's first
check, so most cases here start from a *valid* document and break one or a few parts of it
(``mutated``): a value swapped for an extreme or wrongly typed one, a key dropped or added.

Bounded for CI (``FUZZ``: a fixed seed-free database-less profile, a few hundred examples per
parser, no deadline on a loaded 2-core machine); the whole fuzz group runs in well under a
minute. For a longer hand run: ``STORESENSE_PARSER_FUZZ=5000 pytest -k fuzz``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("STORESENSE_PARSER_FUZZ", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# values that have broken parsers before: huge, tiny, non-finite, wrong type, empty, odd text
nasty_numbers = st.sampled_from(
    [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 1e-320, 0.1,
     float("inf"), float("-inf"), float("nan"), True, False]
)  # fmt: skip
nasty_text = st.sampled_from(
    ["", " ", "0", "-0", "nan", "inf", "1e999", "null", "\x00", "é", "☃" * 300, "a" * 5000,
     "../../etc/passwd", "{", "[]", "-", "9" * 5000, "2010-12-01 08:26:00", "0001-01-01",
     "9999-12-31T23:59:59+14:00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")]
)  # fmt: skip
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), nasty_numbers,
    nasty_text,
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON-like document (the document itself included)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple, value: Any, *, drop: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        if drop and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(doc[head], rest, value, drop=drop)
        return copy
    copy_l = list(doc)
    if drop and not rest:
        del copy_l[head]
    else:
        copy_l[head] = _replace(doc[head], rest, value, drop=drop)
    return copy_l


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_changes: int = 3) -> Any:
    """``base`` (a valid JSON-like document) with 0..``max_changes`` parts replaced or dropped."""
    doc = base
    for _ in range(draw(st.integers(0, max_changes))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        drop = bool(path) and draw(st.booleans())
        doc = _replace(doc, path, draw(json_value), drop=drop)
    return doc
