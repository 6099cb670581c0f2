"""`meltano run reconcile` (meltano.yml's job): the same tap sending full-table versions into the loader with
`reconcile: true`, after a sync, on the demo database (issue 23).

The job reads the database and ChartMogul and writes nothing: ChartMogul is told apart from the
database by the report, and the sync's Meltano state stays as the sync left it.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from tests.e2e.meltano_project import TIMEOUT, MeltanoProject, meltano_env
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.helpers import FakeApi, write_calls
from tests.running import API_KEY

STATE_ID = "dev:tap-postgres-to-target-chartmogul"


def run_job(meltano: MeltanoProject, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`meltano run reconcile` (or `args`), whatever it exits with (Meltano reports the loader's exit 3 as a failure)."""
    return subprocess.run([str(meltano.meltano), "run", *(args or ("reconcile",))], capture_output=True, text=True,
                          cwd=meltano.root, env={**meltano.env, **(env or {})}, timeout=TIMEOUT, check=False)


@pytest.mark.e2e
def test_meltano_job_reconciles_without_writing(
    billing_db: Database, fake: FakeChartMogul, ds: str, meltano_bin: pathlib.Path, tmp_path: pathlib.Path,
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    report = tmp_path / "reconcile.jsonl"  # the default: beside the rejects file
    meltano = MeltanoProject(meltano_bin, tmp_path / "project", meltano_env(billing_db, fake, ds, rejects))
    meltano("install", label="install")
    meltano("run", "tap-postgres", "target-chartmogul", label="sync")
    state = meltano("state", "get", STATE_ID, label="state get").stdout

    fake.clear_requests()
    agree = run_job(meltano)
    assert agree.returncode == 0, (agree.stdout + agree.stderr)[-4000:]
    assert report.read_text(encoding="utf-8") == ""
    assert write_calls(fake) == []

    billing_db.execute("UPDATE billing.customers SET name = 'Acme AG', updated_at = now() WHERE external_id = 'cus_001'")
    extra = FakeApi(fake, API_KEY).ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "cus_900",
                                                             "name": "Nur in ChartMogul"}, status=201)
    fake.clear_requests()
    differ = run_job(meltano)

    assert differ.returncode != 0
    assert "target-chartmogul reconcile: 2 difference(s): 1 different, 1 extra" in differ.stdout + differ.stderr
    assert [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()] == [
        {"object": "customers", "key": "cus_001", "kind": "different", "field": "name", "source": "Acme AG",
         "chartmogul": "Acme GmbH"},
        {"object": "customers", "key": "cus_900", "kind": "extra", "field": None, "source": None,
         "chartmogul": {"uuid": extra["uuid"], "external_id": "cus_900", "name": "Nur in ChartMogul"}},
    ]
    assert write_calls(fake) == []
    assert meltano("state", "get", STATE_ID, label="state get 2").stdout == state
    assert report.with_suffix(".html").is_file()

    # The README's one-off check through the usual pipeline: every row, bookmarks untouched; incremental streams, so
    # the customer only ChartMogul holds is no extra.
    one_off = run_job(meltano, "--full-refresh", "--no-state-update", "tap-postgres", "target-chartmogul",
                      env={"TARGET_CHARTMOGUL_RECONCILE": "true"})
    assert one_off.returncode != 0
    assert [json.loads(line)["kind"] for line in report.read_text(encoding="utf-8").splitlines()] == ["different"]
    assert write_calls(fake) == []
    assert meltano("state", "get", STATE_ID, label="state get 3").stdout == state
