"""The suite's tiers and its hygiene, as pytest hooks and fixtures (tests/conftest.py imports them).

`python -m pytest` runs the fast tier: everything in this process, no server but the fake. The
slower tiers carry a marker, and each of those markers makes a test `slow` too, which pyproject's
`addopts` deselects (`-m "not slow"`); `bash scripts/test.sh` runs every tier (`-m ""`):

- `e2e`: tests/e2e (the pipelines with PostgreSQL, tap-postgres and Meltano; the built wheel);
- `robustness`: tests/robustness (signals, crashes, faults over a full load, bad input);
- `subprocess`: a test that starts a process because the process boundary is under test
  (signals, stdin, exit codes, the demo script, the fake's command line);
- `postgres`: a test that needs the PostgreSQL server (it asks for `pg_server_url`,
  `pg_database_url` or `pg_server`, or takes the `postgresql` case of `ledger_url`).

The suite runs on every core (pytest-xdist, pyproject's `addopts`). The e2e tier and the
robustness tier are an xdist group each, so one worker runs each of them one test after
another, as they always ran: a pipeline never meets another pipeline (they share fixed database
names), nor a signal or crash test another of its kind.

Directories and fixtures are read here, at collection, so a test added to tests/e2e or
tests/robustness, or one that asks for the server, is in its tier without a marker of its own.
A test that starts a process is caught at run time instead: in the fast tier, `subprocess.Popen`
refuses with a message saying what to do, so the fast tier never quietly grows slow.

Hygiene: the target's constructor installs SIGTERM and SIGINT handlers (singer-sdk does, for
every plugin built in the main thread). Installed for real and left behind, they made the suite
swallow SIGTERM (`timeout 400 python -m pytest` ran on until SIGKILL). In every test, what code
installs for SIGTERM/SIGINT is kept from the OS (`KeptHandlers`) and dropped after the test, so
a signal always reaches the suite itself; the session fails if the OS's handlers differ at its
end from what it found (a session fixture or a hook that installs one for real).
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import typing as t

import pytest

DIRECTORY_TIERS = {"e2e": "e2e", "robustness": "robustness"}  # tests/<directory> -> its marker
POSTGRES_FIXTURES = frozenset({"pg_server_url", "pg_database_url", "pg_server"})
SLOW_TIERS = ("e2e", "robustness", "subprocess", "postgres")
# Tiers whose tests run one at a time on one xdist worker, as they always ran: e2e (fixed database names, heavy
# pipelines) and robustness (signals, crashes and timings). The two groups run beside each other and the rest.
SERIAL_GROUPS = frozenset({"e2e", "robustness"})
GUARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FAST_TIER_PROCESS = (
    "{test} started a process ({command}); the fast tier runs in this process. Check messages and exit codes "
    "in-process (tests.running.invoke_cli, click's CliRunner), or mark the test @pytest.mark.subprocess when the "
    "process boundary itself is under test"
)


def tiers_of(item: pytest.Item, tests_root: pathlib.Path) -> set[str]:
    """The slow tiers a collected test belongs to (empty: the fast tier)."""
    tiers = {marker.name for marker in item.iter_markers() if marker.name in SLOW_TIERS}
    try:
        parts = item.path.relative_to(tests_root).parts
    except ValueError:
        parts = ()
    if parts and parts[0] in DIRECTORY_TIERS:
        tiers.add(DIRECTORY_TIERS[parts[0]])
    if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
        tiers.add("postgres")
    return tiers


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tiers, and `slow` when it has any."""
    tests_root = config.rootpath / "tests"
    for item in items:
        tiers = tiers_of(item, tests_root)
        for tier in sorted(tiers - {marker.name for marker in item.iter_markers()}):
            item.add_marker(tier)
        if tiers and item.get_closest_marker("slow") is None:
            item.add_marker("slow")
        for group in SERIAL_GROUPS & tiers:  # with pytest-xdist, one worker runs its tests in turn (--dist loadgroup)
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tiers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the fast tier, starting a process fails the test, naming what to do instead."""
    if request.node.get_closest_marker("slow") is not None:
        return
    name = request.node.nodeid

    def refuse(self: subprocess.Popen[t.Any], args: t.Any, *rest: t.Any, **kwargs: t.Any) -> None:
        raise AssertionError(FAST_TIER_PROCESS.format(test=name, command=args))

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


OS_SIGNAL = signal.signal  # the real functions, before any test replaces them
OS_GETSIGNAL = signal.getsignal


def os_handlers() -> dict[int, t.Any]:
    """The SIGTERM and SIGINT handlers the operating system would run now."""
    return {int(signum): OS_GETSIGNAL(signum) for signum in GUARDED_SIGNALS}


class KeptHandlers:
    """SIGTERM and SIGINT as the code under test sees them: what it installs is kept here, never given to the OS.

    A target built in this process installs its handlers (singer-sdk does, in the main thread);
    installed for real, a SIGTERM during the test would go to that target (which drains, writes
    its summary and raises SystemExit inside the test), and the suite would run on. Kept here,
    `signal.getsignal` still answers what was installed (tests/test_sdk_overrides.py checks it),
    and a SIGTERM or Ctrl-C reaches the suite's own handler, whichever test is running.
    """

    def __init__(self) -> None:
        self._set, self._get = signal.signal, signal.getsignal  # (a pytester run inside a test nests)
        self.table: dict[int, t.Any] = {int(signum): self._get(signum) for signum in GUARDED_SIGNALS}

    def signal(self, signum: int, handler: t.Any) -> t.Any:
        if int(signum) not in self.table:
            return self._set(signum, handler)
        previous, self.table[int(signum)] = self.table[int(signum)], handler
        return previous

    def getsignal(self, signum: int) -> t.Any:
        return self.table[int(signum)] if int(signum) in self.table else self._get(signum)


@pytest.fixture(autouse=True)
def _signal_handlers_kept_from_the_os(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test installs for SIGTERM/SIGINT lives as long as the test, and never reaches the OS."""
    kept = KeptHandlers()
    monkeypatch.setattr(signal, "signal", kept.signal)
    monkeypatch.setattr(signal, "getsignal", kept.getsignal)


SESSION_START = pytest.StashKey[dict[int, t.Any]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note the handlers the suite found."""
    session.config.stash[SESSION_START] = os_handlers()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when it leaves SIGTERM/SIGINT handled differently from how it found them."""
    found = session.config.stash.get(SESSION_START, {})
    left = {signal.Signals(signum).name: handler for signum, handler in os_handlers().items()
            if handler is not found.get(signum)}
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the suite left signal handlers behind: {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
