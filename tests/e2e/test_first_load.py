"""A first load as a new user makes it: a real billing database, large enough for the bulk import, through
tap-postgres and Meltano, with a fresh sync memory (issue 21).

The database (sql/accounts.sql, 320 accounts, 1,017 invoices, 57 refunds) has customers with every
standard field (website_url and owner included, which the bulk body is not given today), custom
attributes of every type, tags, blanks and non-ASCII text. The first run must reject nothing and leave
ChartMogul holding exactly the database, through the bulk JSON import; an incremental run writes only
what changed; an unchanged rerun writes nothing at all.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.e2e.compare import assert_exact_first_load, assert_fake_matches_db, assert_no_rejects, described_writes
from tests.e2e.first_load import (
    CHANGE_WRITES,
    CHANGES,
    LAYOUT,
    TABLE_STREAMS,
    VIEW_STREAMS,
    assert_changes_apply,
    assert_shape,
    meltano_project,
    write_target_config,
)
from tests.e2e.meltano_project import MeltanoProject, meltano_env
from tests.e2e.pipe import bookmark, discover, run_pipe, select_streams
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul

pytestmark = pytest.mark.e2e

STATE_ID = "dev:tap-postgres-to-target-chartmogul"


def test_first_load_through_the_pipe_is_exact_then_only_changes_then_nothing(
    accounts_db: Database,
    fake: FakeChartMogul,
    ds: str,
    tap_postgres_bin: pathlib.Path,
    target_command: list[str],
    tmp_path: pathlib.Path,
) -> None:
    """`tap-postgres | target-chartmogul`, invoices from a view with nested lines and payments."""
    assert_shape(accounts_db)
    rejects = tmp_path / "rejects.jsonl"
    (tmp_path / "t.json").write_text(json.dumps(accounts_db.tap_config(("accounts",))))
    write_target_config(tmp_path, fake, ds, VIEW_STREAMS, "ledger.db")
    catalog = select_streams(discover(tap_postgres_bin, tmp_path / "t.json", tmp_path), VIEW_STREAMS)
    (tmp_path / "c.json").write_text(json.dumps(catalog))

    # 1. First run, fresh sync memory: through the bulk import, no reject, ChartMogul equals the database.
    first = run_pipe(tap_postgres_bin, target_command, tmp_path, "first")  # exit code 0, or it fails here
    assert_exact_first_load(fake, ds, accounts_db, rejects, LAYOUT)
    for stream in VIEW_STREAMS:
        assert bookmark(first.final_state, stream), f"no bookmark for {stream} in {first.final_state}"

    # 2. A customer renamed, an attribute and a tag changed, a new invoice, a new refund: an incremental
    #    run from the first run's STATE writes exactly those, and ChartMogul equals the database again.
    assert_changes_apply(accounts_db)
    accounts_db.execute(CHANGES)
    fake.clear_requests()
    second = run_pipe(tap_postgres_bin, target_command, tmp_path, "second", state=first.final_state)
    assert_no_rejects(rejects)
    assert described_writes(fake, ds) == CHANGE_WRITES
    assert_fake_matches_db(fake, ds, accounts_db, LAYOUT)

    # 3. Nothing changed: the rerun from the second STATE (the tap sends the rows at each bookmark again)
    #    writes nothing at all and rejects nothing.
    fake.clear_requests()
    run_pipe(tap_postgres_bin, target_command, tmp_path, "third", state=second.final_state)
    assert_no_rejects(rejects)
    assert described_writes(fake, ds) == []
    assert_fake_matches_db(fake, ds, accounts_db, LAYOUT)


def test_first_load_through_meltano_is_exact_then_an_unchanged_rerun_writes_nothing(
    accounts_db: Database,
    fake: FakeChartMogul,
    ds: str,
    meltano_bin: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    """`meltano run tap-postgres target-chartmogul`, invoices, lines and payments from three tables."""
    assert_shape(accounts_db)
    rejects = tmp_path / "rejects.jsonl"
    meltano = MeltanoProject(meltano_bin, tmp_path / "project", meltano_env(accounts_db, fake, ds, rejects),
                             project_yml=meltano_project())
    meltano("install", label="install")

    # 1. First run, no state: through the bulk import, no reject, ChartMogul equals the database.
    meltano("run", "tap-postgres", "target-chartmogul", label="run 1")  # exit code 0, or it fails here
    assert_exact_first_load(fake, ds, accounts_db, rejects, LAYOUT)
    state = json.loads(meltano("state", "get", STATE_ID, label="state get").stdout)
    assert set(state["singer_state"]["bookmarks"]) == set(TABLE_STREAMS)

    # 2. Nothing changed: the second run writes nothing at all and rejects nothing.
    fake.clear_requests()
    meltano("run", "tap-postgres", "target-chartmogul", label="run 2")
    assert_no_rejects(rejects)
    assert described_writes(fake, ds) == []
    assert_fake_matches_db(fake, ds, accounts_db, LAYOUT)
    print(f"meltano timings (s): {meltano.timings}")
