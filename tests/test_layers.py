"""The import graph has no circle at any level, function-local imports included.

``make lint`` runs import-linter's contracts (pyproject.toml); this is the same promise kept
without it, cheaply, in the test suite: every ``import`` statement of ``resmagic/`` read with
``ast`` (those inside functions too, the ones under ``if TYPE_CHECKING:`` left out), then
Tarjan's strongly connected components over modules, and over each package's children. A
circle hidden behind a late import (the issue-25 circle of 14 modules was closed by three)
fails here.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import resmagic

ROOT = pathlib.Path(resmagic.__file__).parent
Graph = dict[str, set[str]]


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("resmagic", *path.relative_to(ROOT).with_suffix("").parts))
        mods[name.removesuffix(".__init__")] = path
    return mods


def _owner(name: str, mods: dict[str, pathlib.Path]) -> str:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name


def _typing_only(tree: ast.Module) -> set[ast.AST]:
    blocks = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
    ]
    return {inner for block in blocks for stmt in block.body for inner in ast.walk(stmt)}


def _imported(
    node: ast.Import | ast.ImportFrom, package: str, mods: dict[str, pathlib.Path]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
    module = ".".join(x for x in (base, node.module) if x)
    return [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]


def import_graph() -> Graph:
    """Module -> the resmagic modules it imports anywhere in its code (not for typing only)."""
    mods = _modules()
    graph: Graph = defaultdict(set)
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _typing_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if node in skip or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node, package, mods):
                owner = _owner(target, mods)
                if owner.startswith("resmagic") and owner != name:
                    graph[name].add(owner)
    for name in mods:
        graph.setdefault(name, set())
    return dict(graph)


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def sibling_graphs(graph: Graph) -> dict[str, Graph]:
    """For each package, its children with an arrow where a descendant imports another's."""
    out: dict[str, Graph] = defaultdict(lambda: defaultdict(set))
    for importer, targets in graph.items():
        for target in targets:
            a, b = importer.split("."), target.split(".")
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            if common in (len(a), len(b)):
                continue  # a package and its own module: not siblings
            parent = ".".join(a[:common])
            out[parent][".".join(a[: common + 1])].add(".".join(b[: common + 1]))
    return {parent: dict(children) for parent, children in out.items()}


def test_no_module_imports_a_module_that_imports_it_back_even_inside_a_function() -> None:
    graph = {m: {t for t in ts if t != "resmagic"} for m, ts in import_graph().items()}
    assert circles(graph) == []


def test_no_package_imports_a_sibling_that_imports_it_back() -> None:
    graph = {m: {t for t in ts if t != "resmagic"} for m, ts in import_graph().items()}
    found = {p: c for p, g in sibling_graphs(graph).items() if (c := circles(g))}
    assert found == {}


def test_nothing_below_the_facade_imports_the_package_root() -> None:
    # The facade re-exports everything: a module importing it (for __version__, say) sits in
    # a circle with every module the facade imports.
    importers = sorted(m for m, targets in import_graph().items() if "resmagic" in targets)
    assert importers == []


def test_the_finder_sees_a_circle_closed_inside_a_function() -> None:
    # The finder itself: a circle of two closed by a late import is found.
    code = {"a": "import b\n", "b": "def f():\n    import a\n"}
    graph: Graph = {}
    for name, text in code.items():
        tree = ast.parse(text)
        graph[name] = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
    assert circles(graph) == [["a", "b"]]
