"""The library has no import circles: every module of nnstudy can be read top to bottom knowing only
what it imports (imports inside functions count too: a lazy import hides a circle, it does not remove it)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nnstudy"


def import_graph() -> dict[str, set[str]]:
    modules = {".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): f
               for f in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    state, found = {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [module, target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return found


def test_the_library_has_no_import_circle():
    graph = import_graph()
    assert "nnstudy.transfer.params" in graph["nnstudy.core.params"]  # the graph sees real imports
    assert circles(graph) == []


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) != []
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
