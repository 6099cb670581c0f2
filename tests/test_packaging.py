"""pyproject.toml declares what the package imports, each with an upper bound (issue 14).

The wheel itself is installed into clean virtualenvs by tests/e2e/test_wheel.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

from tests.running import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: read the installed metadata instead (scripts/setup.sh reinstalls it)
    tomllib = None  # type: ignore[assignment]

PACKAGE = REPO / "target_chartmogul"


def pyproject() -> dict:
    if tomllib is not None:
        return tomllib.loads((REPO / "pyproject.toml").read_text())
    requires = importlib.metadata.requires("target-chartmogul") or []
    extra = re.compile(r";\s*extra\s*==\s*['\"]([\w-]+)['\"]")
    extras: dict[str, list[str]] = {}
    for requirement in requires:
        if (match := extra.search(requirement)) is not None:
            extras.setdefault(match.group(1), []).append(requirement[:match.start()])
    return {"project": {"dependencies": [r for r in requires if not extra.search(r)], "optional-dependencies": extras}}


def name_of(requirement: str) -> str:
    return re.split(r"[\s\[<>=~!;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under `if t.TYPE_CHECKING:` (annotations only: no runtime dependency)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {inner.lineno for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom))}
    return lines


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        skip = type_checking_only(tree)
        for node in ast.walk(tree):
            if node.lineno in skip if hasattr(node, "lineno") else False:
                continue
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - {"target_chartmogul", "__future__"} - set(sys.stdlib_module_names)


def distributions_of(module: str) -> list[str]:
    """The installed distributions that hold a top-level module.

    Python 3.10 maps a module to its distribution only through top_level.txt, which some wheels lack (singer-sdk,
    python-backoff 2.x): then the files each distribution installed tell, and failing that the module's own name
    stands for it.
    """
    found = importlib.metadata.packages_distributions().get(module)
    if found:
        return found
    owners = [dist.metadata["Name"] for dist in importlib.metadata.distributions()
              if any(file.parts[0] == module for file in dist.files or [])]
    return owners or [module]


def test_every_imported_distribution_is_declared():
    declared = {name_of(r) for r in pyproject()["project"]["dependencies"]}
    imported = {module: [name_of(d) for d in distributions_of(module)] for module in imported_top_level_modules()}
    undeclared = {module: dists for module, dists in imported.items() if not set(dists) & declared}
    assert undeclared == {}, "imported but not declared in [project] dependencies"
    assert {"sqlalchemy", "python-dotenv", "singer-sdk", "requests"} <= declared


def test_every_dependency_has_an_upper_bound_and_psycopg_is_an_extra():
    project = pyproject()["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        assert re.search(r"<|~=|==", requirement), f"{requirement}: no upper bound"
    assert "psycopg" not in {name_of(r) for r in project["dependencies"]}
    assert [name_of(r) for r in project["optional-dependencies"]["postgres"]] == ["psycopg"]
    assert "backoff" not in {name_of(r) for r in project["dependencies"]}  # the old distribution clashes (toolchain notes)
