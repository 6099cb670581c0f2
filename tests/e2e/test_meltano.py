"""The repo's meltano.yml, run for real: `meltano install`, then `meltano run tap-postgres target-chartmogul`.

The project is copied into a temporary directory (its own .meltano/ system database and
state), with the loader's `pip_url: -e .` pointed at this repository. The tap reads a fresh
demo database, the target writes into a fake ChartMogul; both are configured the way users
do it, through environment variables.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import typing as t

import pytest
import yaml

from tests.e2e.compare import assert_fake_matches_db, assert_only_customer_written
from tests.e2e.meltano_project import MeltanoProject, meltano_env
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.running import REPO

STATE_ID = "dev:tap-postgres-to-target-chartmogul"
TIMEOUT = 600


def load_project() -> dict[str, t.Any]:
    return yaml.safe_load((REPO / "meltano.yml").read_text())


def plugin(project: dict[str, t.Any], kind: str, name: str) -> dict[str, t.Any]:
    return next(p for p in project["plugins"][kind] if p["name"] == name)


def test_loader_definition_declares_every_setting_of_the_target(target_command: list[str]) -> None:
    """meltano.yml's loader settings and capabilities match `target-chartmogul --about` exactly."""
    proc = subprocess.run([*target_command, "--about", "--format", "json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    about = json.loads(proc.stdout)
    loader = plugin(load_project(), "loaders", "target-chartmogul")
    declared = {s["name"]: s for s in loader["settings"]}
    assert sorted(declared) == sorted(about["settings"]["properties"])
    assert sorted(loader["capabilities"]) == sorted(about["capabilities"])
    assert declared["api_key"] == {**declared["api_key"], "kind": "string", "sensitive": True}
    assert declared["streams"]["kind"] == "object"
    assert loader["namespace"] == "target_chartmogul"
    assert loader["pip_url"] == "-e ."
    assert loader["executable"] == "target-chartmogul"


@pytest.mark.e2e
def test_meltano_run_full_then_incremental(
    billing_db: Database,
    fake: FakeChartMogul,
    ds: str,
    meltano_bin: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    meltano = MeltanoProject(meltano_bin, tmp_path / "project", meltano_env(billing_db, fake, ds, rejects))
    meltano("install", label="install")

    # 1. First run: no state yet, everything is synced; ChartMogul equals the database.
    meltano("run", "tap-postgres", "target-chartmogul", label="run 1")
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    assert_fake_matches_db(fake, ds, billing_db)
    state = json.loads(meltano("state", "get", STATE_ID, label="state get").stdout)
    bookmarks = state["singer_state"]["bookmarks"]
    assert set(bookmarks) == {"billing-plans", "billing-customers", "billing-invoices_with_lines", "billing-refunds"}
    first_customers_bookmark = bookmarks["billing-customers"]["replication_key_value"]

    # 2. One changed row; the second run starts from the stored state and sends only that change.
    billing_db.execute(
        "UPDATE billing.customers SET name = 'Initech Inc.', seats = 41, tags = '{Partner}', updated_at = now() "
        "WHERE external_id = 'cus_003'"
    )
    fake.clear_requests()
    meltano("run", "tap-postgres", "target-chartmogul", label="run 2")
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    assert_only_customer_written(fake, ds, "cus_003")
    assert_fake_matches_db(fake, ds, billing_db)
    held = fake.find_customers(ds, "cus_003")[0]
    assert held["name"] == "Initech Inc."
    assert held["attributes"]["custom"]["seats"] == 41

    state = json.loads(meltano("state", "get", STATE_ID, label="state get 2").stdout)
    # The bookmark is the changed row's updated_at, now(): only that it moved on is known.
    assert state["singer_state"]["bookmarks"]["billing-customers"]["replication_key_value"] > first_customers_bookmark
    print(f"meltano timings (s): {meltano.timings}")
