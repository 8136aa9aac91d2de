"""The package's layering, checked by reading its imports.

Layers run one way: ``cli -> tui -> client | node -> storage -> protocol``. Below the
client and the node sit the shared, I/O-free pieces they both use: ``api``
(the local API's codec and method table), ``paths`` (where the data dir and
the API socket are) and ``errors``. The root package (``p2psocial/__init__.py``
and ``__main__.py``) is the facade and may import anything.

Two rules are checked over every module of ``p2psocial/``:

* each import goes to a layer the importing layer may use (``ALLOWED``); the
  CLI may reach ``node`` only from inside a function (``daemon`` and ``init``
  run a node; every other command goes through the client);
* there is no import cycle between modules, counting imports made only for
  type checking (a cycle hidden under ``TYPE_CHECKING`` is still a cycle in
  the design).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import p2psocial

ROOT = Path(p2psocial.__file__).parent

#: layer -> the layers its modules may import (their own layer included).
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset({"protocol"}),
    "sim": frozenset({"sim", "protocol"}),
    "paths": frozenset({"paths"}),
    "errors": frozenset({"errors", "protocol"}),
    "storage": frozenset({"storage", "protocol", "errors"}),
    "api": frozenset({"api", "protocol", "errors"}),
    "node": frozenset({"node", "storage", "protocol", "api", "paths", "errors"}),
    "client": frozenset({"client", "api", "protocol", "paths", "errors"}),
    "cli": frozenset({"cli", "client", "api", "paths", "errors"}),
    # The terminal UI is a client of the daemon like any other program; from
    # api it takes only the sentences clients share (api/notes.py).
    "tui": frozenset({"tui", "client", "api", "protocol", "errors"}),
}

#: Layers the CLI may import lazily, inside a function body only: ``node``
#: (``daemon`` and ``init`` run one) and ``tui`` (Textual loads only for ``tui``).
CLI_LAZY = frozenset({"node", "tui"})

FACADE = {"p2psocial", "p2psocial.__main__"}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function body


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (ROOT.parent / name.replace(".", "/") / "__init__.py").exists()


def is_module(name: str) -> bool:
    return is_package(name) or (ROOT.parent / (name.replace(".", "/") + ".py")).exists()


def resolve(source: str, node: ast.ImportFrom) -> list[str]:
    """The p2psocial modules an ``from ... import ...`` statement loads."""
    if node.level:
        base = source.split(".")
        if not is_package(source):
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("p2psocial"):
        return []
    if target == "p2psocial" and [a.name for a in node.names] == ["__version__"]:
        return []  # the version string, not the facade (the root is loaded first anyway)
    # ``from pkg import submodule`` loads the submodule; ``from pkg import name``
    # loads only the package.
    subs = [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")]
    return subs or [target]


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("p2psocial"):
                        found.append(Import(source, alias.name, child.lineno, lazy))
            elif isinstance(child, ast.ImportFrom):
                for target in resolve(source, child):
                    found.append(Import(source, target, child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def layer_of(module: str) -> str | None:
    if module in FACADE:
        return None
    return module.split(".")[1]


ALL_IMPORTS = [imp for path in sorted(ROOT.rglob("*.py")) for imp in imports_of(path)]


def test_the_walk_sees_the_package() -> None:
    layers = {layer_of(module_name(p)) for p in ROOT.rglob("*.py")} - {None}
    assert layers == set(ALLOWED)
    assert len(ALL_IMPORTS) > 100


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer: str) -> None:
    wrong = []
    for imp in ALL_IMPORTS:
        if layer_of(imp.source) != layer:
            continue
        target = layer_of(imp.target)
        if target is None:
            wrong.append(imp)  # nothing below may import the facade
        elif target not in ALLOWED[layer] and not (
            layer == "cli" and imp.lazy and target in CLI_LAZY
        ):
            wrong.append(imp)
    assert not wrong, "\n".join(f"{i.source}:{i.line} imports {i.target}" for i in wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if imp.source in FACADE or imp.lazy or imp.source == imp.target:
            continue
        # A package's __init__ re-exporting its own submodules is not a cycle.
        if imp.target.startswith(imp.source + "."):
            continue
        graph.setdefault(imp.source, set()).add(imp.target)
    cycles = strongly_connected(graph)
    assert not cycles, "\n".join(" <-> ".join(sorted(c)) for c in cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_checks_can_fail() -> None:
    """The rules catch what they are for (on synthetic imports)."""
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]
    bad = Import("p2psocial.protocol.wire", "p2psocial.node.links", 1, False)
    assert layer_of(bad.target) not in ALLOWED[layer_of(bad.source) or ""]
