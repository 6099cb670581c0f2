"""The test suite's own structure: shared builders and checks live in helper modules.

A test module (test_*.py) never imports another test module: what two of them share goes
into a helper module (tests/helpers.py, tests/running.py, tests/billing.py,
tests/customer_rows.py, tests/singer_messages.py, tests/robustness/load.py, ...), so a
test module can be changed or deleted without breaking another.
"""

from __future__ import annotations

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent


def imported_modules(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def imported_test_modules(path: pathlib.Path) -> list[str]:
    """The test modules (tests...test_*) that this file imports."""
    return sorted(m for m in imported_modules(path) if m.startswith("tests.") and m.rsplit(".", 1)[-1].startswith("test_"))


def test_no_module_imports_a_test_module():
    offenders = {str(path.relative_to(TESTS.parent)): imported_test_modules(path) for path in sorted(TESTS.rglob("*.py"))}
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_the_rule_sees_an_offender(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text("from tests.test_billing import PLANS\nfrom tests.robustness import test_signals\n"
                      "from tests.billing import PLANS as P\nimport tests.helpers\n")
    assert imported_test_modules(module) == ["tests.robustness.test_signals", "tests.test_billing"]
