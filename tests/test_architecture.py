"""The package's structure stays as docs/architecture.md describes it.

No import cycle, no sink that knows the target, no function that has outgrown one screen
without a reason written next to it, no module named in the architecture page that
does not exist, and no per-object table that disagrees with the object's one entry in
`target_chartmogul/objects.py` ("Adding an object").
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re

import pytest

from target_chartmogul import holdings, objects, ordering, settings, target
from target_chartmogul.bulk import lane
from target_chartmogul.sinks.base import ChartMogulSink
from tests.conftest import REPO

PACKAGE = REPO / "target_chartmogul"
MAX_LINES = 40
MAX_BRANCHES = 12
BRANCHES = (ast.If, ast.For, ast.While, ast.ExceptHandler, ast.IfExp, ast.Match)


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: pathlib.Path, known: set[str]) -> set[str]:
    """Modules of the package this file imports (TYPE_CHECKING imports included: they are still a dependency)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imports_of(path, known) - {name} for name, path in modules().items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_sinks_and_the_run_context_do_not_know_the_target():
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith(("target_chartmogul.sinks", "target_chartmogul.context", "target_chartmogul.ordering")):
            assert "target_chartmogul.target" not in imported, f"{name} imports the target"


def oversized_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            branches = sum(isinstance(n, BRANCHES) for n in ast.walk(node))
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            reason = any("# long:" in line for line in lines[max(first - 2, 0):node.lineno])
            if (length > MAX_LINES or branches > MAX_BRANCHES) and not reason:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines, {branches} branches)")
    return found


def test_no_function_outgrows_a_screen_without_a_reason_next_to_it():
    assert oversized_functions() == [], "split these, or write `# long: <reason>` just above the def"


def test_every_module_the_architecture_page_names_exists():
    page = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(target_chartmogul/[\w/]+\.py)`", page))
    assert len(named) >= 20, "docs/architecture.md should name the package's modules"
    missing = sorted(name for name in named if not (REPO / name).exists())
    assert missing == []
    unnamed = sorted(str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py" and str(p.relative_to(REPO)) not in named)
    assert unnamed == [], "docs/architecture.md does not mention these modules"


# The object registry: one entry per object, every per-object table derived from it ---------
def test_every_registry_sink_is_a_chartmogul_sink_of_that_object():
    for entry in objects.REGISTRY:
        sink = getattr(importlib.import_module(entry.sink_module), entry.sink_class)
        assert inspect.isclass(sink) and issubclass(sink, ChartMogulSink), entry.sink
        assert sink.object_name == entry.name, entry.sink
    assert {
        entry.name: getattr(importlib.import_module(entry.sink_module), entry.sink_class) for entry in objects.REGISTRY
    } == target.SINK_CLASSES
    assert list(target.SINK_CLASSES) == list(settings.OBJECTS)


def test_every_sink_that_writes_an_object_is_registered():
    """A sink added without its registry entry would never be routed to: a newcomer learns it here."""
    registered = {(entry.sink_module, entry.sink_class) for entry in objects.REGISTRY}
    for path in sorted((PACKAGE / "sinks").glob("*.py")):
        module = importlib.import_module(module_name(path))
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "object_name" in vars(cls) and cls.object_name:
                assert (module.__name__, name) in registered, f"{module.__name__}.{name} has no entry in REGISTRY"


def test_the_settings_tables_are_the_registry():
    names = tuple(entry.name for entry in objects.REGISTRY)
    assert len(set(names)) == len(names)
    assert names == settings.OBJECTS
    assert {entry.name: dict(entry.modes) for entry in objects.REGISTRY} == settings.MODES
    assert {entry.name: entry.default_mode for entry in objects.REGISTRY} == settings.DEFAULT_MODE
    assert {entry.name for entry in objects.REGISTRY if entry.deletable} == settings.DELETABLE
    assert all(modes and all(modes.values()) for modes in settings.MODES.values()), "every mode allows a match_by"


def test_the_write_order_is_the_order_of_the_registry():
    assert sorted(settings.OBJECTS, key=ordering.RANKS.__getitem__) == list(settings.OBJECTS)
    assert {entry.name: rank for rank, entry in enumerate(objects.REGISTRY)} == ordering.RANKS
    assert ordering.RANKS["plans"] < ordering.RANKS["customers"] < ordering.RANKS["invoices"] < ordering.RANKS["transactions"]


def test_the_listings_are_the_registry():
    listed = [entry for entry in objects.REGISTRY if entry.listing]
    assert {e.listing.kind: (e.listing.path, e.listing.root, e.name) for e in listed if e.listing} == holdings.LISTS
    assert len(holdings.LISTS) == len(listed), "two objects share a reference kind"
    assert {e.name: e.listing.kind for e in listed if e.listing} == lane.REFERENCE_KINDS


@pytest.mark.parametrize(("change", "message"), [
    ({"default_mode": "insert"}, "default mode 'insert' is not one of its modes"),
    ({"sink": "plans.PlansSink"}, "is not a module:Class path"),
])
def test_a_malformed_entry_fails_at_import(change, message):
    fields = {"name": "plans", "modes": {"upsert": ("external_id",)}, "default_mode": "upsert", "sink": "plans:PlansSink"}
    with pytest.raises(ValueError, match=message):
        objects.ObjectEntry(**{**fields, **change})
