"""The suite's tiers and hygiene (tests/tiers.py), each shown on a small suite run by pytester in this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.running import REPO
from tests.tiers import OS_GETSIGNAL, OS_SIGNAL

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

    from tests.tiers import os_handlers

    def test_installs_a_handler():
        before = os_handlers()
        handler = lambda signum, frame: None
        signal.signal(signal.SIGTERM, handler)
        assert signal.getsignal(signal.SIGTERM) is handler  # what the code under test sees
        assert os_handlers() == before  # what a SIGTERM would run
"""


def test_a_handler_a_test_installs_never_reaches_the_os_and_ends_with_the_test(suite):
    before = signal.getsignal(signal.SIGTERM)
    suite.makepyfile(test_inner_handler=HANDLER_TEST)
    suite.runpytest_inprocess("-p", "tests.tiers", "test_inner_handler.py").assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_without_the_guard_the_handler_stays_behind(suite):
    """What the guard prevents (here the outer suite's own guard still keeps it from the OS, and drops it after)."""
    before = signal.getsignal(signal.SIGTERM)
    suite.makepyfile(test_inner_handler=HANDLER_TEST.replace("        assert os_handlers() == before\n", ""))
    suite.runpytest_inprocess("test_inner_handler.py").assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is not before


def test_a_session_that_leaves_a_handler_with_the_os_fails(suite):
    before = OS_GETSIGNAL(signal.SIGINT)
    suite.makeconftest("""
        import signal

        import pytest

        from tests.tiers import OS_SIGNAL

        @pytest.fixture(scope="session", autouse=True)
        def installs_for_the_session():
            OS_SIGNAL(signal.SIGINT, lambda signum, frame: None)  # past the guard: for real
    """)
    suite.makepyfile(test_inner_plain="def test_plain():\n    pass\n")
    try:
        result = suite.runpytest_inprocess("-p", "tests.tiers", "test_inner_plain.py")
    finally:
        OS_SIGNAL(signal.SIGINT, before)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["the suite left signal handlers behind: {'SIGINT': <function *"])


WAITING_TARGET = """
    import threading

    from target_chartmogul.target import TargetChartMogul

    def test_waits_with_a_targets_handlers_installed():
        TargetChartMogul(config={"api_key": "k"}, validate_config=True)  # installs SIGTERM and SIGINT handlers
        print("ready", flush=True)
        threading.Event().wait(120)
"""


@pytest.mark.subprocess  # a real SIGTERM to a pytest process
@pytest.mark.parametrize(("plugin", "ends"), [(["-p", "tests.tiers"], -signal.SIGTERM), ([], 1)],
                         ids=["guarded", "unguarded"])
def test_a_sigterm_stops_the_suite_while_a_test_holds_a_target(suite, plugin, ends):
    """`timeout 400 python -m pytest` ran on until SIGKILL: a target's handler took the signal (then its stop raised
    SystemExit inside the test, which failed, and the session went on)."""
    suite.makepyfile(test_inner_waiting=WAITING_TARGET)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen([sys.executable, "-m", "pytest", *plugin, "-s", "-q", "-p", "no:cacheprovider",
                           "test_inner_waiting.py"], cwd=suite.path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().endswith("ready\n")  # the test runs, the target's handlers are installed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == ends
