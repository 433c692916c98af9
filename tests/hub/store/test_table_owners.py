"""One writer per table: every SQL string in hub/ that changes a table is in the table's room.

The owners are written down in ``hub.store.tables.OWNERS``; this reads every string constant
of every hub module (docstrings aside) for INSERT/REPLACE/UPDATE/DELETE and checks the room
(``hub.<room>.…``) against it. Migrations (``hub/store``) define every table and are exempt.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hub.store import db
from hub.store.tables import META_KEYS, OWNERS

HUB = Path(__file__).resolve().parents[3] / "hub"
WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|DELETE\s+FROM)\s+([\w{}]+)"
    r"|(?<!DO )\bUPDATE(?:\s+OR\s+\w+)?\s+([\w{}]+)\s+SET\b"
)


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant; an f-string's fields read as ``{}``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out: list[tuple[int, str]] = []
    inside_fstring: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                inside_fstring.add(id(v))
                parts.append(v.value if isinstance(v, ast.Constant) else "{}")
            out.append((node.lineno, "".join(str(p) for p in parts)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and id(node) not in inside_fstring
        ):
            out.append((node.lineno, node.value))
    return out


def writes(source: str) -> list[tuple[int, str]]:
    """(line, table) of every write statement in a module's strings."""
    return [(line, m[1] or m[2]) for line, text in _strings(source) for m in WRITE.finditer(text)]


def violations(root: Path = HUB) -> list[str]:
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        room = rel.parts[0].removesuffix(".py")
        if room == "store":
            continue
        for line, table in writes(path.read_text()):
            owner = OWNERS.get(table)
            if owner is None:
                bad.append(f"hub/{rel}:{line}: writes {table!r}, a table with no owner")
            elif owner != room:
                bad.append(f"hub/{rel}:{line}: writes {table}, owned by {owner}, not {room}")
    return bad


def test_no_room_writes_a_table_it_does_not_own() -> None:
    bad = violations()
    assert not bad, "writes outside the owning room:\n" + "\n".join(bad)


def test_every_table_of_the_schema_has_one_owner(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if not r[0].startswith("sqlite_")
    }
    assert tables == set(OWNERS)
    assert set(OWNERS.values()) <= {p.name.removesuffix(".py") for p in HUB.iterdir()}
    assert set(META_KEYS) >= {r[0] for r in conn.execute("SELECT key FROM meta")}


@pytest.mark.parametrize(
    ("room", "source", "expect"),
    [
        ("alerts", 'X = "INSERT INTO outbox(topic) VALUES (?)"\n', "writes outbox, owned by bus"),
        ("privacy", 'c.execute("DELETE FROM templates WHERE x=?")\n', "owned by faces"),
        ("shop", 'q = f"UPDATE {table} SET a=1"\n', "a table with no owner"),
        ("service", 'q = ("INSERT OR IGNORE INTO " "unknown_visitors(a) VALUES (1)")\n', "faces"),
    ],
)
def test_the_check_fails_on_a_planted_write(
    room: str, source: str, expect: str, tmp_path: Path
) -> None:
    """A check that cannot fail is no check: plant one foreign write and see it named."""
    (tmp_path / room).mkdir()
    (tmp_path / room / "planted.py").write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and expect in found[0]


def test_upsert_and_prose_are_not_writes() -> None:
    src = (
        '"""Every transition is one conditional UPDATE inside a transaction."""\n'
        'q = "INSERT INTO nodes(a) VALUES (1) ON CONFLICT(a) DO UPDATE SET a=excluded.a"\n'
        'log = "UPDATEs in claims"\n'
    )
    assert writes(src) == [(2, "nodes")]
