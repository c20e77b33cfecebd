"""The library has no import circles: every module of nnstudy can be read top to bottom knowing only
what it imports (imports inside functions count too: a lazy import hides a circle, it does not remove it).
And its layers hold: nnstudy.core, the bottom room, imports nothing of nnstudy from outside itself."""

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


def upward(graph: dict[str, set[str]], room: str = "nnstudy.core") -> dict[str, list[str]]:
    """Each module of `room` that imports a module of nnstudy outside it, and what it imports."""
    inside = (room, room + ".")
    found = {module: sorted(t for t in targets if not t.startswith(inside))
             for module, targets in graph.items() if module.startswith(inside)}
    return {module: targets for module, targets in found.items() if targets}


def test_the_library_has_no_import_circle():
    graph = import_graph()
    assert "nnstudy.core.transfer_params" in graph["nnstudy.core.params"]  # the graph sees real imports
    assert "nnstudy.training.resume" in graph["nnstudy.training.seeds"]     # ... lazy and TYPE_CHECKING ones too
    assert circles(graph) == []


def test_core_imports_no_room_above_it():
    graph = import_graph()
    assert "nnstudy.core.params" in graph["nnstudy.training.models"]  # rooms above do import core
    assert upward(graph) == {}


def test_an_upward_import_is_found():
    graph = {"nnstudy.core.params": {"nnstudy.core.checks", "nnstudy.transfer.params"}, "nnstudy.core.checks": set(),
             "nnstudy.transfer.params": {"nnstudy.core.checks"}}
    assert upward(graph) == {"nnstudy.core.params": ["nnstudy.transfer.params"]}
    assert upward({"nnstudy.core": {"nnstudy.core.paths"}, "nnstudy.core.paths": set()}) == {}


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) != []
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
