"""Shared fixtures: the fake ChartMogul API, a data source, a base config, the sync memory's databases.

Helpers that test modules import live in helper modules (tests/running.py, tests/helpers.py,
tests/billing.py, tests/customer_rows.py, tests/singer_messages.py, tests/robustness/load.py),
never here and never in a test module (tests/test_suite_layout.py checks the latter).
"""

from __future__ import annotations

import os
import pathlib
import typing as t
import uuid

import pytest
import sqlalchemy as sa

from target_chartmogul.api import client as client_module
from target_chartmogul.bulk import imports as bulk_imports
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO, ProcessResult, RunResult, run_cli, run_target
from tests.tiers import (
    _processes_only_in_slow_tiers,
    _signal_handlers_kept_from_the_os,
    pytest_collection_modifyitems,
    pytest_sessionfinish,
    pytest_sessionstart,
)

# Test modules import these from tests.running; they stay importable from here too.
__all__ = ["API_KEY", "REPO", "ProcessResult", "RunResult", "run_cli", "run_target"]
# The suite's tiers and hygiene (tests/tiers.py), registered by being names of this conftest.
HOOKS = (pytest_collection_modifyitems, pytest_sessionstart, pytest_sessionfinish, _processes_only_in_slow_tiers,
         _signal_handlers_kept_from_the_os)
QUICK_BACKOFF_BASE = 0.001  # seconds: retries in this process wait milliseconds, not the default half second
DEFAULT_BACKOFF_BASE = client_module.BACKOFF_BASE  # the product's, before quick_retries lowers it
QUICK_POLL = 0.01  # seconds: the first poll of a bulk import, and the shortest interval between polls


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target run in this process retries after milliseconds (full jitter of 1, 2, 4 ms, ...), not seconds.

    What is retried, and how often, stays exact; tests/test_client.py checks the waits themselves
    on a clock that does not sleep. A run in a subprocess keeps the default policy.
    """
    monkeypatch.setattr(client_module, "BACKOFF_BASE", QUICK_BACKOFF_BASE)


@pytest.fixture
def default_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's retry policy, for a test of the policy itself (on a clock that does not sleep)."""
    monkeypatch.setattr(client_module, "BACKOFF_BASE", DEFAULT_BACKOFF_BASE)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk import the fake finished at once is polled after 10 ms, not 200 ms (then at a fifth of its age).

    The fake's imports take no time unless a test gives them some (`queue_delay`); what the lane
    does with each answer is under test, not ChartMogul's pace. A run in a subprocess keeps the
    real schedule.
    """
    monkeypatch.setattr(bulk_imports, "FIRST_POLL", QUICK_POLL)
    monkeypatch.setattr(bulk_imports, "MIN_POLL_INTERVAL", QUICK_POLL)


@pytest.fixture
def fake() -> t.Iterator[FakeChartMogul]:
    with FakeChartMogul(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def ds(fake: FakeChartMogul) -> str:
    return str(fake.add_data_source("warehouse")["uuid"])


@pytest.fixture
def base_config(fake: FakeChartMogul, ds: str, tmp_path: pathlib.Path) -> dict[str, t.Any]:
    return {
        "api_key": API_KEY,
        "api_url": fake.url,
        "data_source_uuid": ds,
        "rejects_path": str(tmp_path / "rejects.jsonl"),
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "request_timeout": 5,
        "max_retries": 6,
        # ChartMogul's pace (40/s) is under test in tests/test_pacing.py and tests/test_client.py; elsewhere
        # the fake answers as fast as it can and the pacer must not make the tests wait
        "max_requests_per_second": 1000,
    }


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server started by scripts/postgres.sh (TCM_PG_URL); required in CI."""
    url = os.environ.get("TCM_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("TCM_PG_URL is not set: .ci/run must start PostgreSQL (scripts/postgres.sh)")
        pytest.skip("no PostgreSQL server: run through scripts/test.sh, or source scripts/postgres.sh && postgres_start")
    return url


@pytest.fixture
def pg_database_url(pg_server_url: str) -> t.Iterator[str]:
    """A fresh, empty database on that server, dropped afterwards."""
    name = f"tcm_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = pg_server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The sync memory in SQLite, and again in the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_database_url"))

