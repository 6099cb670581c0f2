"""The plain Singer pipe, as real processes: tap-postgres --catalog c.json | target-chartmogul.

The demo billing database (seed.sql) goes into a fake ChartMogul; afterwards the fake must hold
exactly what the database holds. Then one customer changes and an incremental run (with the
first run's STATE) must send that change and nothing else.
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest
import yaml

from tests.e2e.compare import assert_fake_matches_db, assert_only_customer_written
from tests.e2e.pipe import bookmark, discover, run_pipe, select_streams
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO

pytestmark = pytest.mark.e2e

SELECTED = ("billing-plans", "billing-customers", "billing-invoices_with_lines", "billing-refunds")


def loader_streams_config() -> dict[str, t.Any]:
    """The loader's `streams` setting from meltano.yml, so the pipe and Meltano use the same mapping."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-chartmogul")
    return loader["config"]["streams"]


def write_target_config(workdir: pathlib.Path, fake: FakeChartMogul, ds: str, memory: str) -> None:
    """config.json of the target: meltano.yml's streams, the sync memory in `memory` (a file in workdir)."""
    (workdir / "config.json").write_text(json.dumps({
        "api_key": API_KEY,
        "api_url": fake.url,
        "data_source_uuid": ds,
        "streams": loader_streams_config(),
        "rejects_path": str(workdir / "rejects.jsonl"),
        "ledger_url": f"sqlite:///{workdir / memory}",
        "request_timeout": 10,
    }))


def test_postgres_pipe_full_then_incremental(
    billing_db: Database,
    fake: FakeChartMogul,
    ds: str,
    tap_postgres_bin: pathlib.Path,
    target_command: list[str],
    tmp_path: pathlib.Path,
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    (tmp_path / "t.json").write_text(json.dumps(billing_db.tap_config()))
    write_target_config(tmp_path, fake, ds, "ledger.db")
    catalog = select_streams(discover(tap_postgres_bin, tmp_path / "t.json", tmp_path), SELECTED)
    (tmp_path / "c.json").write_text(json.dumps(catalog))

    # 1. Full first run: ChartMogul ends up holding exactly the database.
    first = run_pipe(tap_postgres_bin, target_command, tmp_path, "first")
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    assert_fake_matches_db(fake, ds, billing_db)
    state = first.final_state
    for stream in SELECTED:
        assert bookmark(state, stream), f"no bookmark for {stream} in {state}"

    # 2. One customer changes; an incremental run from the first run's STATE sends only that change.
    billing_db.execute(
        "UPDATE billing.customers SET city = 'Munich', seats = 15, segment = 'mid-market', "
        "tags = '{vip,eu,de}', updated_at = now() WHERE external_id = 'cus_001'"
    )
    with pytest.raises(AssertionError, match="cus_001"):  # the comparison sees the change not yet synced
        assert_fake_matches_db(fake, ds, billing_db)
    fake.clear_requests()
    second = run_pipe(tap_postgres_bin, target_command, tmp_path, "second", state=state)
    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject

    assert_only_customer_written(fake, ds, "cus_001")
    assert_fake_matches_db(fake, ds, billing_db)
    held = fake.find_customers(ds, "cus_001")[0]
    assert held["city"] == "Munich"
    assert held["attributes"]["custom"] == {"seats": 15, "segment": "mid-market"}
    assert sorted(tag.casefold() for tag in held["attributes"]["tags"]) == ["de", "eu", "vip"]  # EU was there

    # The customers bookmark moved on (to the row's new updated_at, now(): only its order is known);
    # the others stayed where they were.
    assert bookmark(second.final_state, "billing-customers") > bookmark(state, "billing-customers")
    for stream in ("billing-plans", "billing-invoices_with_lines", "billing-refunds"):
        assert bookmark(second.final_state, stream) == bookmark(state, stream)


def test_postgres_pipe_with_the_sync_memory_lost_writes_only_what_is_new(
    billing_db: Database,
    fake: FakeChartMogul,
    ds: str,
    tap_postgres_bin: pathlib.Path,
    target_command: list[str],
    tmp_path: pathlib.Path,
) -> None:
    """A new working directory (no sync memory): new refunds land, nothing else is written or doubled."""
    rejects = tmp_path / "rejects.jsonl"
    (tmp_path / "t.json").write_text(json.dumps(billing_db.tap_config()))

    def config(memory: str) -> None:
        write_target_config(tmp_path, fake, ds, memory)

    catalog = select_streams(discover(tap_postgres_bin, tmp_path / "t.json", tmp_path), SELECTED)
    (tmp_path / "c.json").write_text(json.dumps(catalog))
    config("first.db")
    first = run_pipe(tap_postgres_bin, target_command, tmp_path, "first")
    before = fake.dump_state()

    # 1. The same database again, from scratch, with the memory gone: no write at all.
    config("lost.db")
    fake.clear_requests()
    run_pipe(tap_postgres_bin, target_command, tmp_path, "again")
    assert [r for r in fake.requests if r.method != "GET"] == []
    assert fake.dump_state() == before

    # 2. New refunds of old invoices, incremental from the first STATE, with yet another empty memory.
    billing_db.execute(
        "INSERT INTO billing.refunds VALUES "
        "('ref_101', 'inv_002', 'refund', 'successful', date_trunc('second', now()), 100, now()), "
        "('ref_102', 'inv_003', 'refund', 'failed', date_trunc('second', now()), 250, now())"
    )
    config("lost-again.db")
    fake.clear_requests()
    run_pipe(tap_postgres_bin, target_command, tmp_path, "refunds", state=first.final_state)

    assert not rejects.exists(), f"rejected records:\n{rejects.read_text()}"  # created at the first reject
    posts = [r for r in fake.requests if r.method != "GET"]
    assert sorted(r.body["external_id"] for r in posts) == ["ref_101", "ref_102"]
    assert all(r.path.endswith("/transactions") and r.status == 201 for r in posts)
    assert_fake_matches_db(fake, ds, billing_db)
