"""No two project modules import each other, directly or round a longer loop. Every import counts,
including those inside functions (which hide a cycle from Python at start-up but not from a
reader), so the layering in DESIGN.md stays a fact: app → (index, adapters) → domain."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "adapters", "index", "domain")


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in its body (``from a import b`` counts as
    ``a`` and, when ``a.b`` is a module, as ``a.b``)."""
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_loop_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_project_module_imports_itself_round_a_loop() -> None:
    files = module_files()
    assert len(files) > 50  # the walk sees the project
    assert cycles(import_graph(files)) == []


def test_index_and_adapters_never_import_each_other_and_domain_imports_neither() -> None:
    graph = import_graph(module_files())
    for module, targets in graph.items():
        top = module.split(".")[0]
        others = {t.split(".")[0] for t in targets}
        if top == "domain":
            assert others <= {"domain"}, (module, targets)
        if top in ("index", "adapters"):
            assert others <= {top, "domain"}, (module, targets)


COMPOSITION_ROOT = ROOT / "app" / "wiring"
BUILDERS = ("adapters", "index")  # the packages whose real objects only the composition root builds


def runtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in ``tree``, inside functions too, except those under
    ``if TYPE_CHECKING:``: an annotation may name a heavy type without importing it at run time."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_import_walk_sees_imports_in_functions_but_not_type_checking_ones() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from index.hybrid import HybridRetriever\n"
        "def f():\n    if True:\n        from adapters.registry import activate\n"
        "class C:\n    def g(self):\n        import index.store\n"
    )
    assert runtime_imports(tree) == [(1, "typing"), (6, "adapters.registry"), (9, "index.store")]


def test_only_the_composition_root_imports_adapters_or_index() -> None:
    """Pages (with their helpers and backends), commands, evaluation and the entry points ask
    ``app.wiring`` for real objects; only ``app/wiring`` imports ``adapters`` or ``index``, at run
    time. Imports under ``if TYPE_CHECKING:`` are allowed: they name types for annotations only."""
    outside = [p for p in (ROOT / "app").rglob("*.py") if not p.is_relative_to(COMPOSITION_ROOT)]
    assert len(outside) > 30  # the walk sees pages and commands
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(outside)
        for line, module in runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        if module.split(".")[0] in BUILDERS
    ]
    assert offenders == []
