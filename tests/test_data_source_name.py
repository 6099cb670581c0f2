"""`data_source_name` (issue 23): the data source of that name is found, or created once; both settings must agree.

A new user names the data source instead of copying a `ds_…` uuid from elsewhere. On a fresh
account the first run creates it (one POST, logged), the next finds it by name; the load is the
same as with `data_source_uuid`, through REST and through the bulk import. Two runs racing to
create it end with one (ChartMogul refuses the second name: "Has already been taken."). A dry
run creates nothing and says what a real run would do.
"""

from __future__ import annotations

import json
import logging
import typing as t

import pytest

from target_chartmogul.api.client import ChartMogulClient
from target_chartmogul.run.data_source import DataSource, resolve
from tests import first_load
from tests.cli_runner import cli
from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.helpers import write_calls
from tests.lanes import Run, assert_same_in_both_lanes, assert_same_snapshots, run_lane, snapshot
from tests.running import API_KEY, run_target
from tests.singer_messages import customers_stream, lines

NAME = "Billing DB"
STREAM = "customers"
ROWS = [{"external_id": f"c{i}", "name": f"Customer {i}"} for i in range(3)]
DS_WRITES = r"^/data_sources$"


def named_config(base_config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    """The tests' config naming the data source instead of giving its uuid."""
    config = {k: v for k, v in base_config.items() if k != "data_source_uuid"}
    return {**config, "data_source_name": NAME, **extra}


def sources_named(fake: FakeChartMogul, name: str) -> list[str]:
    with fake.lock:
        return [uuid for uuid, source in fake.data_sources.items() if source["name"] == name]


def target_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "target-chartmogul"]


def test_on_a_fresh_account_the_first_run_creates_it_and_the_next_finds_it(fake, base_config, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")
    config = named_config(base_config)

    first = run_target(config, customers_stream(STREAM, ROWS))

    [created] = sources_named(fake, NAME)
    assert f"Created the data source {NAME!r} ({created}): the account had no data source of that name" in \
        target_lines(caplog)
    assert [(r.method, r.path, r.body) for r in write_calls(fake) if r.path == "/data_sources"] == [
        ("POST", "/data_sources", {"name": NAME})]
    assert sorted(c["external_id"] for c in fake.customers.values() if c["data_source_uuid"] == created) == \
        ["c0", "c1", "c2"]
    assert first.counts(STREAM)["created"] == 3
    assert first.target is not None and first.target.context.data_source == DataSource(created, NAME, created=True)

    caplog.clear()
    fake.clear_requests()
    second = run_target(config, customers_stream(STREAM, ROWS))

    assert sources_named(fake, NAME) == [created]
    assert f"Data source {NAME!r}: {created}" in target_lines(caplog)
    assert write_calls(fake) == []  # found by name; every customer unchanged
    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("GET", "/ping", {}), ("GET", "/data_sources", {"name": NAME})]
    assert second.counts(STREAM)["unchanged"] == 3


def test_an_existing_data_source_is_found_by_name_and_records_go_there(fake, base_config):
    other = str(fake.add_data_source("Another source")["uuid"])
    wanted = str(fake.add_data_source(NAME)["uuid"])

    run_target(named_config(base_config), customers_stream(STREAM, ROWS))

    assert fake.count("POST", DS_WRITES) == 0
    assert {c["data_source_uuid"] for c in fake.customers.values()} == {wanted}
    assert other != wanted


def test_a_record_naming_its_own_data_source_keeps_it(fake, base_config):
    crm = str(fake.add_data_source("CRM")["uuid"])
    rows = [ROWS[0], {**ROWS[1], "data_source_uuid": crm}]

    run_target(named_config(base_config), customers_stream(STREAM, rows, {"data_source_uuid": {"type": ["string", "null"]}}))

    [created] = sources_named(fake, NAME)
    held = {c["external_id"]: c["data_source_uuid"] for c in fake.customers.values()}
    assert held == {"c0": created, "c1": crm}


def test_both_settings_naming_the_same_data_source_run(fake, ds, base_config):
    fake.data_sources[ds]["name"] = NAME

    result = run_target({**base_config, "data_source_name": NAME}, customers_stream(STREAM, ROWS))

    assert result.counts(STREAM)["created"] == 3
    assert fake.count("POST", DS_WRITES) == 0


@pytest.mark.parametrize(("setup", "reason"), [
    ("other-name", "data_source_uuid '{ds}' and data_source_name 'Billing DB' disagree: {ds} is the data source "
                   "'warehouse', and the data source 'Billing DB' is {named}; set one of them, or both naming the same "
                   "data source"),
    ("no-such-name", "data_source_uuid '{ds}' and data_source_name 'Billing DB' disagree: {ds} is the data source "
                     "'warehouse', and no data source is named 'Billing DB'; set one of them, or both naming the same "
                     "data source"),
    ("no-such-uuid", "data_source_uuid 'ds_gone' and data_source_name 'Billing DB' disagree: ds_gone is not a data "
                     "source of this ChartMogul account, and the data source 'Billing DB' is {named}; set one of them, "
                     "or both naming the same data source"),
])
def test_both_settings_disagreeing_stop_the_run_before_any_input_naming_both(fake, ds, base_config, tmp_path, setup,
                                                                            reason):
    named = str(fake.add_data_source(NAME)["uuid"]) if setup != "no-such-name" else ""
    config = {**base_config, "data_source_name": NAME, "summary_path": str(tmp_path / "summary.json")}
    if setup == "no-such-uuid":
        config["data_source_uuid"] = "ds_gone"
    (tmp_path / "config.json").write_text(json.dumps(config))

    # The input is never read: its bad line would otherwise be the error.
    result = cli(["--config", str(tmp_path / "config.json")], input_text=lines(customers_stream(STREAM, ROWS)) + "x\n")

    expected = reason.format(ds=ds, named=named)
    assert result.exit_code == 1
    assert result.errors == [f"target-chartmogul failed: {expected}"]
    assert write_calls(fake) == []
    assert fake.customers == {}
    assert json.loads((tmp_path / "summary.json").read_text())["reason"] == expected


def test_a_stream_entry_naming_a_data_source_is_refused_with_what_to_do(fake, base_config, tmp_path):
    config = {**base_config, "streams": {STREAM: {"object": "customers", "data_source_name": "CRM"}}}
    (tmp_path / "config.json").write_text(json.dumps(config))

    result = cli(["--config", str(tmp_path / "config.json")], input_text="")

    assert result.exit_code == 1
    assert result.errors == [
        f"target-chartmogul failed: `streams.{STREAM}.data_source_name` is not an option of a stream: a run has one "
        "default data source, set at the top level (data_source_name); a record's own data_source_uuid column "
        "overrides it (a stream map can add one to every record of a stream)"]
    assert fake.requests == []


class RacedClient(ChartMogulClient):
    """A client whose listing of data sources is followed, before its next call, by another run's create."""

    def __init__(self, fake: FakeChartMogul, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.fake = fake
        self.raced: str | None = None

    def get(self, path: str, params: dict[str, t.Any] | None = None) -> t.Any:
        answer = super().get(path, params)
        if path == "data_sources" and self.raced is None:
            self.raced = str(self.fake.add_data_source(NAME)["uuid"])  # the other run wins
        return answer


def test_two_runs_racing_to_create_it_end_with_one(fake, caplog):
    caplog.set_level(logging.INFO, logger="tests.race")
    client = RacedClient(fake, fake.url, API_KEY, max_retries=0)
    try:
        found = resolve(client, None, NAME, logging.getLogger("tests.race"), dry_run=False)
    finally:
        client.close()

    assert found == DataSource(client.raced, NAME)
    assert sources_named(fake, NAME) == [client.raced]
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("GET", "/data_sources", 200), ("POST", "/data_sources", 422), ("GET", "/data_sources", 200)]
    assert [r.getMessage() for r in caplog.records] == [
        f"Data source {NAME!r} was created by another run meanwhile: {client.raced}"]


def test_a_create_whose_answer_was_lost_is_found_by_name(fake, base_config):
    """The create landed, its answer did not: the retry is refused as a duplicate, and the data source is found."""
    fake.inject(Fault("error_after", method="POST", path_regex=DS_WRITES, times=1))

    run_target(named_config(base_config), customers_stream(STREAM, ROWS))

    [created] = sources_named(fake, NAME)
    assert [r.status for r in fake.requests if r.method == "POST" and r.path == "/data_sources"] == [502, 422]
    assert {c["data_source_uuid"] for c in fake.customers.values()} == {created}


def test_a_dry_run_creates_nothing_and_says_what_a_real_run_would(fake, base_config, caplog):
    caplog.set_level(logging.INFO, logger="target-chartmogul")

    result = run_target(named_config(base_config, dry_run=True), customers_stream(STREAM, ROWS))

    assert sources_named(fake, NAME) == [] and fake.customers == {}
    assert [r.method for r in fake.requests] == ["GET", "GET"]  # the ping and the listing by name: nothing else
    assert f"DRY RUN: no data source is named {NAME!r}: a real run would create it; ds_dryrun_1 stands for it here, " \
        "and it holds nothing yet" in target_lines(caplog)
    assert result.counts(STREAM)["created"] == 3
    assert "DRY RUN: would create 3, update 0, delete 0, reject 0 (nothing was written)" in target_lines(caplog)


# The same load through REST and through the bulk import, on a fresh account -----------------------
def fresh_account_scenario(marks: list[int]) -> list[Run]:
    """Every billing object, twice; the account has no data source before the first run; `marks` gets the number
    of requests the fake had seen before the second run.
    """
    base = first_load.billing_nine_fields_scenario()
    config = {**base.config, "data_source_uuid": None, "data_source_name": NAME}

    def forget_every_data_source(fake: FakeChartMogul) -> None:
        with fake.lock:
            fake.data_sources.clear()

    return [Run(base.messages, config, before=forget_every_data_source),
            Run(base.messages, config, before=lambda fake: marks.append(len(fake.requests)))]


def test_a_fresh_account_is_loaded_exactly_through_rest_and_through_the_bulk_import(tmp_path):
    marks: list[int] = []
    lanes = assert_same_in_both_lanes(lambda: fresh_account_scenario(marks), tmp_path)
    reference = run_lane(first_load.billing_nine_fields_scenario, "never", tmp_path / "by-uuid", "ds_reference")

    lanes.assert_bulk_used()
    held = {}
    for lane, mark in ((lanes.bulk, marks[0]), (lanes.rest, marks[1])):
        [created] = sources_named(lane.fake, NAME)
        assert [(r.method, r.path) for r in lane.requests if r.path == "/data_sources" and r.method == "POST"] == [
            ("POST", "/data_sources")]
        assert [r for r in lane.requests[mark:] if r.method != "GET"] == []  # the second run wrote nothing
        assert [r.query for r in lane.requests[mark:] if r.path == "/data_sources"] == [{"name": NAME}]
        held[lane.mode] = snapshot(lane.fake, created)
    assert_same_snapshots(held["always"], held["never"], ("bulk", "rest"))
    assert_same_snapshots(held["never"], reference.snapshot, ("by name", "by uuid"))
    assert {name: len(objects) for name, objects in held["always"].items() if objects} == {
        "customers": 12, "plans": 3, "invoices": 48, "subscription_events": 60}
