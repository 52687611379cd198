"""The shape of the code base: no import cycle inside ``a2a_cli``, no function over 100 lines.

Both are read from the source with :mod:`ast` (nothing is imported, so the test is
fast). Imports count wherever they are written, inside functions too: an import
moved into a function to dodge a cycle is still a cycle. Imports of other packages
(torch, sigpy, torchkbnufft, nibabel, pydicom, matplotlib, ismrmrd...) are no edge of
the graph, so delaying a heavy optional library inside a function is fine. Imports
under ``if TYPE_CHECKING:`` never run and do not count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "a2a_cli"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__.py``)."""
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree``, at any depth, except under ``if TYPE_CHECKING:``."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        todo.extend(children)
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The modules of the package that ``node`` (in ``module``) imports; ``from X import name`` is ``X.name`` when a module."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            here = module.split(".") if is_package else module.split(".")[:-1]
            base = here[:len(here) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names]
    out = set()
    for name in names:
        while name and name not in known:  # ``import a2a_cli.models.cost`` or an attribute of a module
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line of the first such import}}`` inside the package."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for node in _import_nodes(tree):
            for target in _targets(name, path.name == "__init__.py", node, known):
                edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, {}):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items()) if b in inside]
    return "cycle among " + ", ".join(component) + ": " + "; ".join(edges)


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``module.py:line name (N lines)`` for every function or method longer than ``limit`` lines."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({length} lines)")
    return out


# -- the checks themselves ------------------------------------------------------------------------


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    cycles = strongly_connected(graph)
    assert not cycles, "\n".join(_describe(c, graph) for c in cycles)


def test_no_function_is_longer_than_100_lines():
    too_long = long_functions()
    assert not too_long, "split these into named pieces:\n" + "\n".join(too_long)


# -- the checkers catch what they are for ---------------------------------------------------------


def test_the_graph_sees_relative_nested_and_submodule_imports():
    graph = import_graph()
    assert "a2a_cli.errors" in graph["a2a_cli.config"]  # from .errors import ... (top level)
    assert "a2a_cli.checks" in graph["a2a_cli.models.cost"]  # from ..checks import ... (two dots)
    assert "a2a_cli.models.registry" in graph["a2a_cli.models.cost"]  # imported inside a function
    assert "a2a_cli.models" in graph["a2a_cli.config"]  # from .models import MODELS, inside a function
    assert "torch" not in graph["a2a_cli.models.base"] and all(m.startswith(PACKAGE) for e in graph.values() for m in e)


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, []),
    ({"a": {"b": 1}, "b": {"a": 1}, "c": {"a": 1}}, [["a", "b"]]),
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"d": 1}}, [["a", "b", "c"], ["d"]]),
])
def test_cycle_finder(graph, expected):
    assert sorted(strongly_connected(graph)) == expected


def test_a_cycle_through_a_function_level_import_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "one.py").write_text("from .sub.two import f\n")
    (pkg / "sub" / "two.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..three import g\n"
                                        "def f():\n    from .. import one\n    import torch\n")
    (pkg / "three.py").write_text("from .sub import two\n")
    (pkg / "long.py").write_text("def f():\n" + "    x = 1\n" * 100)
    monkeypatch.setitem(globals(), "ROOT", pkg)
    graph = import_graph()
    assert graph[f"{PACKAGE}.sub.two"] == {f"{PACKAGE}.one": 5}  # the TYPE_CHECKING import does not count
    assert graph[f"{PACKAGE}.three"] == {f"{PACKAGE}.sub.two": 1}
    assert strongly_connected(graph) == [[f"{PACKAGE}.one", f"{PACKAGE}.sub.two"]]
    assert long_functions() == [f"{PACKAGE}/long.py:1 f (101 lines)"]
