"""The built wheel, installed from PyPI into clean virtualenvs, with and without the `postgres` extra (issue 14).

Without the extra: every module imports (each import is declared), `pip check` is clean, a
real sync lands with the default SQLite sync memory, and a postgresql:// ledger_url fails with
one line naming the extra. With it: psycopg is there and the sync memory works on PostgreSQL.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO, last_line

pytestmark = pytest.mark.e2e
TIMEOUT = 600
PLANS = (REPO / "samples" / "plans.singer").read_text()


def run(*args: str | pathlib.Path, cwd: pathlib.Path | None = None, input_text: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, input=input_text, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", out, REPO)
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("target_chartmogul-*.whl"))


def venv_with(path: pathlib.Path, requirement: str) -> pathlib.Path:
    """A fresh virtualenv holding `requirement` and what it declares: nothing of this environment's."""
    created = run(sys.executable, "-m", "venv", path)
    assert created.returncode == 0, created.stderr
    installed = run(path / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement)
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = run(path / "bin" / "python", "-m", "pip", "check")
    assert checked.returncode == 0, checked.stdout
    return path / "bin"


def sync(bin_dir: pathlib.Path, work: pathlib.Path, config: dict) -> subprocess.CompletedProcess[str]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(json.dumps(config))
    return run(bin_dir / "target-chartmogul", "--config", "config.json", cwd=work, input_text=PLANS)


def test_without_the_postgres_extra(wheel: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bin_dir = venv_with(tmp_path / "venv", str(wheel))
    imports = run(bin_dir / "python", "-c",
                  "import importlib, pkgutil, target_chartmogul as p\n"
                  "for m in pkgutil.walk_packages(p.__path__, 'target_chartmogul.'):\n"
                  "    if not m.name.endswith('__main__'):  # that one runs the CLI\n"
                  "        importlib.import_module(m.name)\n"
                  "import importlib.util\nprint(importlib.util.find_spec('psycopg') is None)")
    assert imports.returncode == 0, imports.stderr[-3000:]  # every module's imports are installed
    assert imports.stdout.strip() == "True"

    with FakeChartMogul(api_key=API_KEY) as fake:
        ds = fake.add_data_source("wheel")["uuid"]
        config = {"api_key": API_KEY, "api_url": fake.url, "data_source_uuid": ds}
        landed = sync(bin_dir, tmp_path / "sqlite", config)
        assert landed.returncode == 0, landed.stderr[-3000:]
        assert last_line(landed.stderr) == "target-chartmogul finished: 2 written, 0 unchanged, 0 rejected"
        assert len(fake.plans) == 2
        refused = sync(bin_dir, tmp_path / "pg", {**config, "ledger_url": "postgresql://postgres@127.0.0.1:1/x"})
    assert refused.returncode == 1
    assert last_line(refused.stderr) == (
        "target-chartmogul failed: ledger_url is a postgresql:// URL, which needs the PostgreSQL driver: "
        "pip install 'target-chartmogul[postgres]' (or use the default sqlite:/// ledger_url)")


def test_with_the_postgres_extra(wheel: pathlib.Path, tmp_path: pathlib.Path, pg_database_url: str) -> None:
    bin_dir = venv_with(tmp_path / "venv", f"{wheel}[postgres]")
    with FakeChartMogul(api_key=API_KEY) as fake:
        ds = fake.add_data_source("wheel")["uuid"]
        config = {"api_key": API_KEY, "api_url": fake.url, "data_source_uuid": ds, "ledger_url": pg_database_url}
        first = sync(bin_dir, tmp_path / "work", config)
        assert first.returncode == 0, first.stderr[-3000:]
        assert last_line(first.stderr) == "target-chartmogul finished: 2 written, 0 unchanged, 0 rejected"
        second = sync(bin_dir, tmp_path / "elsewhere", config)  # another working directory: the memory is the database
    assert last_line(second.stderr) == "target-chartmogul finished: 0 written, 2 unchanged, 0 rejected"
