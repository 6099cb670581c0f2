"""The suite's tiers and hygiene (tests/tiers.py), each shown on a small suite run by pytester in this process."""

from __future__ import annotations

import signal
import textwrap

import pytest

pytest_plugins = ("pytester",)

INI = """
[pytest]
# tests.tiers is imported already (by our conftest), so this inner run cannot rewrite its asserts: it has none
filterwarnings = ignore:Module already imported so cannot be rewritten. tests.tiers:pytest.PytestAssertRewriteWarning
markers =
    slow: a slow tier
    e2e: tests/e2e
    robustness: tests/robustness
    subprocess: starts a process
    postgres: needs the server
"""

CONFTEST = """
import pytest

@pytest.fixture
def pg_server_url():
    return "postgresql://nowhere"

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request):
    return request.param
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite laid out as ours: tests/e2e, tests/robustness, and tests of each kind at the top."""
    pytester.makeini(INI)
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(CONFTEST)
    for directory in ("e2e", "robustness"):
        (tests / directory).mkdir()
        (tests / directory / f"test_inner_{directory}.py").write_text(f"def test_in_{directory}():\n    pass\n")
    (tests / "test_inner_top.py").write_text(textwrap.dedent("""
        import pytest

        def test_plain():
            pass

        def test_with_the_server(pg_server_url):
            pass

        def test_memory(ledger_url):
            pass

        @pytest.mark.subprocess
        def test_marked_by_hand():
            pass
    """))
    return pytester


def selected(result: pytest.RunResult) -> list[str]:
    return sorted(line.split("::", 1)[1] for line in result.outlines if "::" in line)


def test_the_fast_tier_is_what_no_slow_tier_claims(suite):
    result = suite.runpytest("-p", "tests.tiers", "-m", "not slow", "--collect-only", "-q")
    assert selected(result) == ["test_memory[sqlite]", "test_plain"]


@pytest.mark.parametrize(("tier", "tests"), [
    ("e2e", ["test_in_e2e"]),
    ("robustness", ["test_in_robustness"]),
    ("postgres", ["test_memory[postgresql]", "test_with_the_server"]),
    ("subprocess", ["test_marked_by_hand"]),
    ("slow", ["test_in_e2e", "test_in_robustness", "test_marked_by_hand", "test_memory[postgresql]",
              "test_with_the_server"]),
], ids=["e2e", "robustness", "postgres", "subprocess", "slow"])
def test_each_slow_tier_is_found_by_directory_fixture_or_marker(suite, tier, tests):
    result = suite.runpytest("-p", "tests.tiers", "-m", tier, "--collect-only", "-q")
    assert selected(result) == tests


def test_the_e2e_and_robustness_tiers_are_an_xdist_group_each_so_one_worker_runs_each_in_turn(suite):
    items, _ = suite.inline_genitems("-p", "tests.tiers")
    groups = {item.name: [mark.args for mark in item.iter_markers("xdist_group")] for item in items}
    assert groups == {"test_in_e2e": [("e2e",)], "test_in_robustness": [("robustness",)], "test_plain": [],
                      "test_with_the_server": [], "test_memory[sqlite]": [], "test_memory[postgresql]": [],
                      "test_marked_by_hand": []}


def test_the_fast_tier_refuses_a_process_naming_the_test_and_what_to_do(suite):
    suite.makepyfile(test_inner_process="""
        import subprocess

        def test_starts_a_process():
            subprocess.run(["not-a-command-that-runs"], check=False)
    """)
    result = suite.runpytest("-p", "tests.tiers", "-m", "not slow", "test_inner_process.py")
    result.assert_outcomes(failed=1)
    assert ("E       AssertionError: test_inner_process.py::test_starts_a_process started a process "
            "(['not-a-command-that-runs']); the fast tier runs in this process. Check messages and exit codes in-process "
            "(tests.running.invoke_cli, click's CliRunner), or mark the test @pytest.mark.subprocess when the process "
            "boundary itself is under test") in result.outlines


@pytest.mark.subprocess  # the inner test starts a real process, which only a slow tier may
def test_a_slow_tier_may_start_processes(suite):
    suite.makepyfile(test_inner_process="""
        import subprocess
        import sys

        import pytest

        @pytest.mark.subprocess
        def test_starts_a_process():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
    """)
    suite.runpytest("-p", "tests.tiers", "test_inner_process.py").assert_outcomes(passed=1)


HANDLER_TEST = """
    import signal

    def test_installs_a_handler():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
"""


def test_a_handler_a_test_installs_is_undone_after_it(suite):
    before = signal.getsignal(signal.SIGTERM)
    suite.makepyfile(test_inner_handler=HANDLER_TEST)
    suite.runpytest_inprocess("-p", "tests.tiers", "test_inner_handler.py").assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_without_the_guard_the_handler_stays_behind(suite):
    """What the guard prevents (the outer suite's own guard undoes it after this test)."""
    before = signal.getsignal(signal.SIGTERM)
    suite.makepyfile(test_inner_handler=HANDLER_TEST)
    suite.runpytest_inprocess("test_inner_handler.py").assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is not before


def test_a_session_that_leaves_a_handler_behind_fails(suite):
    before = signal.getsignal(signal.SIGINT)
    suite.makeconftest("""
        import signal

        import pytest

        @pytest.fixture(scope="session", autouse=True)
        def installs_for_the_session():
            signal.signal(signal.SIGINT, lambda signum, frame: None)
    """)
    suite.makepyfile(test_inner_plain="def test_plain():\n    pass\n")
    result = suite.runpytest_inprocess("-p", "tests.tiers", "test_inner_plain.py")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["the suite left signal handlers behind: {'SIGINT': <function *"])
    signal.signal(signal.SIGINT, before)
