"""Fixtures for the end-to-end pipeline tests: PostgreSQL, the demo database, the pipeline tools.

Missing prerequisites (PostgreSQL, the .tools/ virtualenvs) skip these tests on a
developer machine and fail them when the `CI` environment variable is set.
"""

from __future__ import annotations

import os
import pathlib
import sys
import typing as t

import pytest

from tests.e2e.postgres import Database, PostgresUnavailable, Server, connect_or_start

REPO = pathlib.Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
ACCOUNTS_SQL = pathlib.Path(__file__).resolve().parent / "sql" / "accounts.sql"


def unavailable(reason: str) -> t.NoReturn:
    """Fail in CI (a missing prerequisite is a broken CI setup), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> t.Iterator[Server]:
    """The PostgreSQL server of scripts/postgres.sh (TCM_PG_*), or a private one for this session."""
    try:
        server = connect_or_start()
    except PostgresUnavailable as exc:
        unavailable(f"PostgreSQL is not available: {exc}")
    try:
        yield server
    finally:
        if server.stop is not None:
            server.stop()


@pytest.fixture
def billing_db(pg_server: Server) -> t.Iterator[Database]:
    """A fresh database holding the demo billing schema (tests/e2e/sql/seed.sql), dropped afterwards."""
    db = pg_server.create_database()
    try:
        db.load()
        yield db
    finally:
        db.drop()


@pytest.fixture
def accounts_db(pg_server: Server) -> t.Iterator[Database]:
    """A fresh database holding the first-load billing data (tests/e2e/sql/accounts.sql), dropped afterwards."""
    db = pg_server.create_database("tcm_accounts")
    try:
        db.load(ACCOUNTS_SQL)
        yield db
    finally:
        db.drop()


def _tool(venv: str, executable: str) -> pathlib.Path:
    path = TOOLS / venv / "bin" / executable
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"{path.relative_to(REPO)} is missing: run `bash scripts/pipeline-tools.sh`")
    return path


@pytest.fixture(scope="session")
def tap_postgres_bin() -> pathlib.Path:
    """meltanolabs-tap-postgres from its own virtualenv (.tools/tap-postgres)."""
    return _tool("tap-postgres", "tap-postgres")


@pytest.fixture(scope="session")
def meltano_bin() -> pathlib.Path:
    """Meltano from its own virtualenv (.tools/meltano)."""
    return _tool("meltano", "meltano")


@pytest.fixture(scope="session")
def target_command() -> list[str]:
    """How to start this repo's target as a subprocess, from the test interpreter's environment."""
    script = pathlib.Path(sys.executable).parent / "target-chartmogul"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "target_chartmogul"]
