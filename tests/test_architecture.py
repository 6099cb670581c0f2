"""The package's structure stays as docs/architecture.md describes it.

No import cycle, no import that goes up the layers of "What may import what", no sink
that knows the target, no function that has outgrown one screen without a reason written
next to it, no module named in the architecture page that does not exist, and no
per-object table that disagrees with the object's one entry in
`target_chartmogul/config/registry.py` ("Adding an object").
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re

import pytest
import sqlalchemy as sa

from target_chartmogul import target
from target_chartmogul.bulk import lane
from target_chartmogul.config import registry, settings
from target_chartmogul.memory import holdings, migrations, schema
from target_chartmogul.run import ordering
from target_chartmogul.sinks.base import ChartMogulSink
from tests.conftest import REPO

PACKAGE = REPO / "target_chartmogul"
ARCHITECTURE = REPO / "docs" / "architecture.md"
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
        if name.startswith(("target_chartmogul.sinks", "target_chartmogul.run.context", "target_chartmogul.run.ordering")):
            assert "target_chartmogul.target" not in imported, f"{name} imports the target"


# What may import what: the layers of docs/architecture.md, lowest first ---------------------
def documented_layers() -> list[str]:
    """The layer list of the page's "What may import what" section, lowest first."""
    found = re.findall(r"^The packages are layers\. Lowest first: (.+)\.$", ARCHITECTURE.read_text(), re.M)
    assert len(found) == 1, "docs/architecture.md should state the layers once, on one line"
    layers = re.findall(r"`(\w+)`", found[0])
    assert " < ".join(f"`{name}`" for name in layers) == found[0], "write the layers as `a` < `b` < ..."
    return layers


def layer_of(module: str) -> str | None:
    """A module's layer: its package, or the top-level module itself; `__main__` is the target's.

    None for the root package, which holds only the version, imports nothing and may be read by every layer.
    """
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return "target" if parts[1] == "__main__" else parts[1]


def upward_imports(graph: dict[str, set[str]], layers: list[str]) -> list[str]:
    """Every import of a module of a higher layer (the root package counts as below every layer)."""
    height = {name: index for index, name in enumerate(layers)}

    def level(module: str) -> int:
        layer = layer_of(module)
        return -1 if layer is None else height[layer]

    return [
        f"{module} ({layer_of(module)}) imports {other} ({layer_of(other)})"
        for module, imported in sorted(graph.items())
        for other in sorted(imported)
        if level(other) > level(module)
    ]


def test_every_module_belongs_to_a_documented_layer():
    layers = documented_layers()
    assert len(set(layers)) == len(layers), "a layer is listed twice"
    assert layers[0] == "errors" and layers[-1] == "target"
    found = {layer_of(name) for name in modules()} - {None}
    assert sorted(found - set(layers)) == [], "packages or top-level modules missing from the layer list"
    assert sorted(set(layers) - found) == [], "layers listed that are neither a package nor a top-level module"


def test_no_module_imports_a_higher_layer():
    """TYPE_CHECKING imports included: the rule has no exception."""
    upward = upward_imports(import_graph(), documented_layers())
    assert upward == [], "imports that go up the layers of docs/architecture.md:\n" + "\n".join(upward)


def test_the_layer_checker_finds_an_upward_import(tmp_path):
    layers = documented_layers()
    graph = {
        "target_chartmogul.values.dates": {"target_chartmogul.errors", "target_chartmogul.api.client"},
        "target_chartmogul.api.client": {"target_chartmogul", "target_chartmogul.values.dates", "target_chartmogul.api.pacing"},
        "target_chartmogul.__main__": {"target_chartmogul.target"},
        "target_chartmogul": {"target_chartmogul.errors"},
    }
    assert upward_imports(graph, layers) == [
        "target_chartmogul (None) imports target_chartmogul.errors (errors)",
        "target_chartmogul.values.dates (values) imports target_chartmogul.api.client (api)",
    ]
    # an import only for annotations is still a dependency
    crafted = tmp_path / "crafted.py"
    crafted.write_text("import typing as t\nif t.TYPE_CHECKING:\n    from target_chartmogul.run.context import RunContext\n")
    imported = imports_of(crafted, set(modules()))
    assert imported == {"target_chartmogul.run.context"}
    assert upward_imports({"target_chartmogul.bulk.lane": imported}, layers) == [
        "target_chartmogul.bulk.lane (bulk) imports target_chartmogul.run.context (run)",
    ]


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
    for entry in registry.REGISTRY:
        sink = getattr(importlib.import_module(entry.sink_module), entry.sink_class)
        assert inspect.isclass(sink) and issubclass(sink, ChartMogulSink), entry.sink
        assert sink.object_name == entry.name, entry.sink
    assert {
        entry.name: getattr(importlib.import_module(entry.sink_module), entry.sink_class) for entry in registry.REGISTRY
    } == target.SINK_CLASSES
    assert list(target.SINK_CLASSES) == list(settings.OBJECTS)


def test_every_sink_that_writes_an_object_is_registered():
    """A sink added without its registry entry would never be routed to: a newcomer learns it here."""
    registered = {(entry.sink_module, entry.sink_class) for entry in registry.REGISTRY}
    for path in sorted((PACKAGE / "sinks").glob("*.py")):
        module = importlib.import_module(module_name(path))
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "object_name" in vars(cls) and cls.object_name:
                assert (module.__name__, name) in registered, f"{module.__name__}.{name} has no entry in REGISTRY"


def test_the_settings_tables_are_the_registry():
    names = tuple(entry.name for entry in registry.REGISTRY)
    assert len(set(names)) == len(names)
    assert names == settings.OBJECTS
    assert {entry.name: dict(entry.modes) for entry in registry.REGISTRY} == settings.MODES
    assert {entry.name: entry.default_mode for entry in registry.REGISTRY} == settings.DEFAULT_MODE
    assert {entry.name for entry in registry.REGISTRY if entry.deletable} == settings.DELETABLE
    assert all(modes and all(modes.values()) for modes in settings.MODES.values()), "every mode allows a match_by"


def test_the_write_order_is_the_order_of_the_registry():
    ranks = registry.RANKS
    assert sorted(settings.OBJECTS, key=ranks.__getitem__) == list(settings.OBJECTS)
    assert {entry.name: rank for rank, entry in enumerate(registry.REGISTRY)} == ranks
    assert ranks["plans"] < ranks["customers"] < ranks["invoices"] < ranks["transactions"]

    class Sink:
        object_name = "invoices"

    assert ordering.rank(Sink()) == registry.rank_of("invoices") == ranks["invoices"]
    assert registry.rank_of("not_an_object") == len(ranks)


def test_the_listings_are_the_registry():
    listed = [entry for entry in registry.REGISTRY if entry.listing]
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
        registry.ObjectEntry(**{**fields, **change})


# The sync memory: one module per concern, its tables and versions as the page lists them -----------------
MEMORY_RULE = re.compile(r"^Inside `memory`, each concern module \((.+)\) imports only (.+) of the package's modules; "
                         r"only `ledger` composes them\.$", re.M)


def memory_section(title: str) -> str:
    return ARCHITECTURE.read_text().split(title, 1)[1].split("\n## ", 1)[0]


def test_each_memory_concern_imports_only_what_the_page_allows():
    found = MEMORY_RULE.findall(ARCHITECTURE.read_text())
    assert len(found) == 1, "docs/architecture.md should state the memory package's rule once, on one line"
    concerns, allowed = (set(re.findall(r"`(\w+)`", part)) for part in found[0])
    memory = {name.rsplit(".", 1)[1] for name in modules() if name.startswith("target_chartmogul.memory.")}
    assert concerns <= memory and allowed <= memory
    graph = import_graph()
    crossing = {
        concern: sorted(other.rsplit(".", 1)[1] for other in graph[f"target_chartmogul.memory.{concern}"]
                        if other.startswith("target_chartmogul.memory.") and other.rsplit(".", 1)[1] not in allowed)
        for concern in sorted(concerns)
    }
    assert {concern: others for concern, others in crossing.items() if others} == {}
    composers = sorted(name for name, imported in graph.items()
                       if sum(f"target_chartmogul.memory.{c}" in imported for c in concerns - allowed) > 1)
    assert composers == ["target_chartmogul.memory.ledger"], "only the ledger composes the memory's concerns"


def test_the_memory_tables_and_versions_are_the_page_s():
    section = memory_section("## The sync memory: tables and migrations")
    rows = re.findall(r"^\| `(tcm_\w+)` \| `(\w+)` \|", section, re.M)
    assert sorted(table for table, _ in rows) == sorted(schema.metadata.tables)
    variable = {table.name: name for name, table in vars(schema).items() if isinstance(table, sa.Table)}
    for table, module in rows:  # the module named is the one that uses the table
        source = (PACKAGE / "memory" / f"{module}.py").read_text()
        assert re.search(rf"\b{variable[table]}\b", source), f"{table}: memory/{module}.py does not use it"
    versions = {int(n) for n in re.findall(r"\b(\d+) (?:is|adds)\b", section.split("Versions:", 1)[1].split("\n\n")[0])}
    assert versions == set(range(1, migrations.SCHEMA_VERSION + 1))
    assert set(migrations.MIGRATIONS) == set(range(2, migrations.SCHEMA_VERSION + 1)), "one step per version"
