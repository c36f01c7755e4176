"""The package's shape: a thin root, Dagster only in the Dagster layer, the spec a leaf, no import cycles.

Module-level imports are read from the source with ``ast`` (imports inside functions load lazily and
imports under ``if TYPE_CHECKING:`` never run, so neither can make a cycle at import time).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "i2v_dagster"
DAGSTER_LAYER = ("i2v_dagster.defs", "i2v_dagster.definitions")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING blocks)."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try | ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in top_level_imports(path) if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_root_imports_nothing_and_the_spec_is_a_leaf():
    graph = import_graph()
    assert graph["i2v_dagster"] == set()
    assert graph["i2v_dagster.spec"] == set()
    assert top_level_imports(PACKAGE / "__init__.py") == set()


def test_only_the_dagster_layer_imports_dagster():
    outside = [
        name
        for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
        if not name.startswith(DAGSTER_LAYER) and "dagster" in top_level_imports(path)
    ]
    assert outside == []


@pytest.mark.parametrize(
    "module", ["i2v_dagster", "i2v_dagster.spec", "i2v_dagster.specfile", "i2v_dagster.verify.clip"]
)
def test_plain_modules_import_without_dagster_or_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('dagster', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
