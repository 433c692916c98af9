"""One room per table: every SQL string in hub/ that names a table is in the table's room.

The owners are written down in ``hub.store.tables.OWNERS``; this reads every string constant
of every hub module (docstrings aside) for INSERT/REPLACE/UPDATE/DELETE (writes) and for
FROM/JOIN (reads: a query, a join, a sub-select, the source of an INSERT … SELECT) and checks
the room (``hub.<room>.…``) against it. Another room's table is reached through that room's
functions (``hub.faces.profiles.customer_names``, ``hub.shop.pos_store.customer_data``, …) or a
callable the daemon injects (``record_match(..., tier=...)``). Migrations and the connection
(``hub/store``) define and read every table and are exempt. SQL is matched in capitals, as
the code base writes it; a table named by an f-string field reads as ``{}``, which has no owner.
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
# FROM/JOIN and what follows: one table, or a comma list of them (``FROM a x, b y``); the DELETE
# group tells a write's ``DELETE FROM`` (checked above) from a read. An alias is any word but a
# keyword that can follow a table (else ``FROM a JOIN b`` would take JOIN for a's alias).
_KEYWORD = (
    r"(?:JOIN|LEFT|RIGHT|FULL|INNER|OUTER|CROSS|NATURAL|ON|USING|WHERE|GROUP|HAVING|ORDER"
    r"|LIMIT|UNION|EXCEPT|INTERSECT|WINDOW|RETURNING|SET|INDEXED|NOT)\b"
)
_ITEM = rf"[\w{{}}]+(?:\s+(?:AS\s+)?(?!{_KEYWORD})\w+)?"
READ = re.compile(rf"\b(DELETE\s+)?(?:FROM|JOIN)\s+({_ITEM}(?:\s*,\s*{_ITEM})*)")

# Foreign reads still to move to the owning room's functions, as (module under hub/, table),
# each with a comment saying which function it waits for. Empty: the last ones (hub/api's
# alert and manager reads of alerts, customers, false_matches) moved to hub.alerts.views and
# hub.faces.profiles.customer_names. A line goes when its read does (test_no_pending_read_is_
# stale says when). Pairs, not whole files: another foreign read in the module still fails.
READS_PENDING: frozenset[tuple[str, str]] = frozenset()


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


def reads(source: str) -> list[tuple[int, str]]:
    """(line, table) of every table a module's strings read (FROM, JOIN, sub-selects)."""
    out: list[tuple[int, str]] = []
    for line, text in _strings(source):
        for m in READ.finditer(text):
            if not m[1]:
                out += [(line, item.split()[0]) for item in m[2].split(",")]
    return out


def _rooms(root: Path) -> list[tuple[Path, str]]:
    """(module path relative to ``root``, its room) for every module outside ``hub/store``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        room = rel.parts[0].removesuffix(".py")
        if room != "store":
            out.append((rel, room))
    return out


def foreign_reads(root: Path = HUB) -> list[tuple[str, int, str, str | None]]:
    """(module, line, table, owner) of every read outside the owning room."""
    out = []
    for rel, room in _rooms(root):
        for line, table in reads((root / rel).read_text()):
            owner = OWNERS.get(table)
            if owner != room:
                out.append((rel.as_posix(), line, table, owner))
    return out


def read_violations(
    root: Path = HUB, pending: frozenset[tuple[str, str]] = READS_PENDING
) -> list[str]:
    bad: list[str] = []
    for module, line, table, owner in foreign_reads(root):
        if (module, table) in pending:
            continue
        if owner is None:
            bad.append(f"hub/{module}:{line}: reads {table!r}, a table with no owner")
        else:
            room = module.split("/")[0].removesuffix(".py")
            bad.append(f"hub/{module}:{line}: reads {table}, owned by {owner}, not {room}")
    return bad


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


def test_no_room_reads_a_table_it_does_not_own() -> None:
    bad = read_violations()
    assert not bad, (
        "reads outside the owning room (ask the owner's functions, or inject a callable):\n"
        + "\n".join(bad)
    )


def test_no_pending_read_is_stale() -> None:
    """An allow-list entry whose read is gone would let the next one in unnoticed."""
    found = {(module, table) for module, _, table, _ in foreign_reads()}
    stale = sorted(READS_PENDING - found)
    assert not stale, f"no longer read: remove from READS_PENDING: {stale}"


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


@pytest.mark.parametrize(
    ("room", "source", "expect"),
    [
        (
            "shop",
            'q = "SELECT name FROM customers WHERE customer_id = ?"\n',
            "customers, owned by faces",
        ),
        (
            "alerts",
            'q = ("SELECT a.*, c.name FROM alerts a "\n'
            '     "LEFT JOIN customers c USING (customer_id)")\n',
            "reads customers, owned by faces",
        ),
        ("privacy", 'q = "DELETE FROM audit WHERE at < (SELECT max(at) FROM visits)"\n', "visits"),
        (
            "floor",
            'q = "SELECT 1 FROM floor_grid g, nodes AS n WHERE g.a = n.a"\n',
            "nodes, owned by alerts",
        ),
        (
            "shop",
            'q = "INSERT INTO suggestions SELECT * FROM templates"\n',
            "templates, owned by faces",
        ),
        (
            "shop",
            'q = f"SELECT value FROM {name} WHERE x=1"\n',
            "reads '{}', a table with no owner",
        ),
        ("shop", 'q = "SELECT 1 FROM pos_lines JOIN customers USING (x)"\n', "customers"),
        ("shop", 'q = "SELECT 1 FROM pos_lines l, pos_invoices i NATURAL JOIN visits"\n', "visits"),
        ("shop", 'q = "SELECT 1 FROM pos_lines AS l, audit AS a WHERE 1"\n', "audit"),
        (
            "service",
            'q = "SELECT value FROM counters WHERE name = ?"\n',
            "counters, owned by store",
        ),
    ],
)
def test_the_check_fails_on_a_planted_read(
    room: str, source: str, expect: str, tmp_path: Path
) -> None:
    """Plant one foreign read (a query, a join, a sub-select, a comma join, an INSERT … SELECT,
    an f-string table) and see exactly it named."""
    (tmp_path / room).mkdir()
    (tmp_path / room / "planted.py").write_text(source)
    found = read_violations(tmp_path)
    assert len(found) == 1 and expect in found[0], found
    assert f"hub/{room}/planted.py:" in found[0]


def test_a_room_reads_its_own_tables_and_prose_is_no_read(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "own.py").write_text(
        '"""Reads SELECT x FROM customers in a docstring, which is prose."""\n'
        'q = "SELECT i.total FROM pos_invoices i JOIN pos_lines l USING (invoice_no)"\n'
        'd = "DELETE FROM suggestions WHERE customer_id = ?"\n'
        'msg = "camera_id differs from the topic"\n'
    )
    assert read_violations(tmp_path) == []
    assert reads((tmp_path / "shop" / "own.py").read_text()) == [
        (2, "pos_invoices"),
        (2, "pos_lines"),
    ]


def test_a_pending_read_is_excused_only_for_its_table(tmp_path: Path) -> None:
    """The allow-list names (module, table): the same module reading anything else fails."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "manager.py").write_text(
        'a = "SELECT f.at, c.name FROM false_matches f LEFT JOIN customers c USING (customer_id)"\n'
        'b = "SELECT total FROM pos_invoices WHERE customer_id = ?"\n'
    )
    pending = frozenset({("api/manager.py", "false_matches"), ("api/manager.py", "customers")})
    found = read_violations(tmp_path, pending)
    assert len(found) == 1 and "reads pos_invoices, owned by shop, not api" in found[0], found
    assert len(read_violations(tmp_path, pending=frozenset())) == 3
