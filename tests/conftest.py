"""Shared fixtures: the fake ChartMogul API and ways to run the target against it."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import subprocess
import sys
import typing as t
import uuid

import pytest
import sqlalchemy as sa

from target_chartmogul.target import TargetChartMogul
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import lines

API_KEY = "sk_test_0123456789abcdefSECRET"
REPO = pathlib.Path(__file__).resolve().parent.parent


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


@dataclasses.dataclass
class RunResult:
    """What one in-process run produced."""

    stdout: str
    target: TargetChartMogul | None
    error: BaseException | None
    rejects_path: pathlib.Path

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def rejects(self) -> list[dict[str, t.Any]]:
        if not self.rejects_path.exists():
            return []
        return [json.loads(line) for line in self.rejects_path.read_text().splitlines()]

    def counts(self, stream: str) -> dict[str, int]:
        assert self.target is not None
        return self.target.summary.as_dict().get(stream, {})


def run_target(config: dict[str, t.Any], messages: t.Iterable[t.Any], *, expect_error: bool = False) -> RunResult:
    """Run the target in this process on `messages`; fast, and the summary can be read."""
    out = io.StringIO()
    target: TargetChartMogul | None = None
    error: BaseException | None = None
    with contextlib.redirect_stdout(out):
        try:
            target = TargetChartMogul(config=config, validate_config=True)
            target.listen(io.StringIO(lines(messages)))
        except Exception as exc:
            error = exc
    if error is not None and not expect_error:
        raise error
    rejects = pathlib.Path(config.get("rejects_path", ".target-chartmogul/rejects.jsonl"))
    return RunResult(out.getvalue(), target, error, rejects)


@dataclasses.dataclass
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(config: dict[str, t.Any], messages: t.Iterable[t.Any] | str, tmp_path: pathlib.Path,
            *, extra_args: t.Sequence[str] = (), env: dict[str, str] | None = None,
            timeout: float = 120) -> ProcessResult:
    """Run `target-chartmogul` as users do: a subprocess reading stdin."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    text = messages if isinstance(messages, str) else lines(messages)
    proc = subprocess.run(
        [sys.executable, "-m", "target_chartmogul", "--config", str(config_path), *extra_args],
        input=text, capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
        env={**os.environ, **(env or {})}, check=False,
    )
    return ProcessResult(proc.returncode, proc.stdout, proc.stderr)


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
