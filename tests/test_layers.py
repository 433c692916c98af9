"""The layering of the code base, checked from the source (every import, function-local and
``TYPE_CHECKING`` ones included).

Layers, top to bottom (docs/architecture.md):

* ``storesense_tools`` — the composition root (CLI, demo, evaluation tools). Nothing imports it.
* ``hub``, ``edge`` and ``central`` (the chain's office) — independent of each other.
* ``storesense`` — the contract (config models, wire schemas, topics, MQTT set-up, paths,
  systemd notify). It imports neither side.

Inside ``hub``, the web process is a stateless gateway (it holds no database, no template key,
no hub credentials), so ``hub.web`` imports only itself and the contract; and ``hub.store`` (the
connection, the schema, the migrations) imports no other room. On top of the layers there is no
import cycle between any two modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("storesense", "storesense_tools", "hub", "edge", "central")

# module prefix -> the first-party prefixes it may import besides its own; the longest prefix
# that names a module decides.
ALLOWED: dict[str, tuple[str, ...]] = {
    "storesense_tools": ("storesense", "hub", "edge", "central"),
    # the chain's central office: talks to the stores only through the contract's messages
    "central": ("storesense",),
    "hub": ("storesense",),
    "hub.web": ("storesense",),
    "hub.store": ("storesense",),
    "edge": ("storesense",),
    "storesense": (),
}
# inside its own prefix, a module may not reach into these (the web app is another process)
FORBIDDEN_INSIDE: dict[str, tuple[str, ...]] = {"hub": ("hub.web",)}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The first-party module a dotted import name lands in (longest known prefix)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in MODULES:
            return cand
    return None


def _package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported first-party module, line) for every import statement anywhere in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module).split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:
                target = _resolve(f"{mod}.{alias.name}") or _resolve(mod)
                if target:
                    yield target, node.lineno


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _allowed(module: str, target: str) -> bool:
    own = max((p for p in ALLOWED if _within(module, p)), key=len)
    if any(_within(target, f) for f in FORBIDDEN_INSIDE.get(own, ())):
        return False
    return _within(target, own) or any(_within(target, a) for a in ALLOWED[own])


def layer_violations() -> list[str]:
    bad: list[str] = []
    for module, path in MODULES.items():
        for target, line in imports_of(module):
            if not _allowed(module, target):
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                bad.append(f"{where}:{line}: {module} imports {target}")
    return list(dict.fromkeys(bad))


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph = {m: sorted({t for t, _ in imports_of(m) if t != m}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(graph[node]):
                work.append((node, i + 1))
                nxt = graph[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def test_the_check_sees_every_package() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "hub.service" in MODULES and "edge.camera_agent" in MODULES


def test_no_import_crosses_the_layers() -> None:
    bad = layer_violations()
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "source", "expect"),
    [
        ("edge.camera_agent", "def f():\n    from hub.store import db\n", "hub.store.db"),
        ("storesense.messages", "from edge import outbox\n", "edge.outbox"),
        ("hub.service", "import storesense_tools.cli\n", "storesense_tools.cli"),
    ],
)
def test_the_check_fails_on_a_planted_violation(
    module: str, source: str, expect: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A check that cannot fail is no check: plant one bad import and see it named."""
    planted = tmp_path / "planted.py"
    planted.write_text(MODULES[module].read_text() + "\n" + source)
    monkeypatch.setitem(MODULES, module, planted)
    assert any(f"{module} imports {expect}" in v for v in layer_violations())


def test_the_check_finds_a_planted_cycle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(MODULES["storesense.topics"].read_text() + "\nimport storesense.messages\n")
    monkeypatch.setitem(MODULES, "storesense.topics", planted)
    messages = tmp_path / "messages.py"
    messages.write_text(MODULES["storesense.messages"].read_text() + "\nimport storesense.topics\n")
    monkeypatch.setitem(MODULES, "storesense.messages", messages)
    assert any({"storesense.messages", "storesense.topics"} <= set(c) for c in import_cycles())
