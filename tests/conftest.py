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

from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO, ProcessResult, RunResult, run_cli, run_target

# Test modules import these from tests.running; they stay importable from here too.
__all__ = ["API_KEY", "REPO", "ProcessResult", "RunResult", "run_cli", "run_target"]


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


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The sync memory in SQLite, and again in the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_database_url"))
