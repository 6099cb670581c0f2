"""Backfills through ChartMogul's bulk JSON import, end to end against the fake's asynchronous import."""

from __future__ import annotations

import re
import typing as t

import pytest

from tests import backfill
from tests.billing import (
    CUSTOMERS_STREAM,
    IMPORT_PATH,
    INVOICES_STREAM,
    PLANS_STREAM,
    REFUNDS_STREAM,
    assert_invoice_matches,
    plans_messages,
)
from tests.fake_chartmogul import FakeChartMogul
from tests.helpers import fresh_memory, reads, write_calls
from tests.running import run_target
from tests.singer_messages import INTEGER, customers_stream, state
from tests.subscription_rows import EVENTS_STREAM

BULK_PATH = r"^/data_sources/[^/]+/json_imports"
STATE = state({"bookmarks": {"backfill": 1}})
NOTHING_NEW = backfill.Backfill([], [], [], [])


def bulk_calls(fake: FakeChartMogul) -> list[t.Any]:
    return [r for r in fake.requests if re.search(BULK_PATH, r.path)]


def posts(fake: FakeChartMogul, path_regex: str) -> int:
    return sum(1 for r in write_calls(fake) if r.method == "POST" and re.search(path_regex, r.path))


def imported(result: t.Any) -> dict[str, int]:
    return {stream: result.counts(stream).get("imported", 0)
            for stream in (CUSTOMERS_STREAM, INVOICES_STREAM, REFUNDS_STREAM, EVENTS_STREAM)}


def counted(result: t.Any, stream: str) -> dict[str, int]:
    """The stream's summary columns that are not zero."""
    return {column: n for column, n in result.counts(stream).items() if n}


def expected_imported(data: backfill.Backfill) -> dict[str, int]:
    return {CUSTOMERS_STREAM: len(data.customers), INVOICES_STREAM: len(data.invoices),
            REFUNDS_STREAM: len(data.refunds), EVENTS_STREAM: len(data.events)}


@pytest.fixture
def data() -> backfill.Backfill:
    return backfill.backfill(120)


def test_a_first_load_goes_in_bulk_imports_and_chartmogul_then_holds_exactly_the_input(fake, ds, base_config, data):
    fake.json_imports.queue_delay = 0.2

    result = run_target(backfill.config(base_config), [*backfill.messages(data), STATE])

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    # first one customer with custom attributes and tags and all its records: ChartMogul keeps them (this fake's
    # default, as the reference says a bulk body's customers are created as Create a Customer creates them), so
    # the 119 others carry theirs in the second import
    assert [len(body["customers"]) for body in fake.json_imports.submitted] == [1, 119]
    first = fake.json_imports.submitted[0]["customers"][0]
    assert first["external_id"] == "c-00000"
    assert first["attributes"] == {"custom": [{"type": "Integer", "key": "seats", "value": 1, "source": "API"}],
                                   "tags": ["vip", "cohort-0"]}
    assert fake.json_imports.violations == []
    assert imported(result) == expected_imported(data)
    assert result.counts(PLANS_STREAM)["created"] == 2  # plans: a few, through REST before the import
    # nothing went through REST: no customer or invoice created, no attribute or tag added, no refund on its own
    assert posts(fake, r"^/customers") == 0
    assert posts(fake, IMPORT_PATH) == 0
    assert posts(fake, r"^/import/invoices/[^/]+/transactions$") == 0
    assert posts(fake, r"^/subscription_events$") == 0
    # landed means seen: one listing of each kind the imports carried (a page of 200 each), nothing looked up alone
    listed = {r.path: r.query.get("per_page") for r in reads(fake, r"^/(customers|invoices|subscription_events)$")}
    assert listed == {"/customers": "200", "/invoices": "200", "/subscription_events": "200"}
    assert [r.query for r in reads(fake, r"^/customers$") if "external_id" in r.query] == [
        {"data_source_uuid": ds, "external_id": "c-00000", "per_page": "200"}]  # what the first import kept
    assert result.states == [STATE["value"]]  # only after the imports' outcome was recorded


def test_an_unchanged_rerun_costs_nothing_and_five_changes_go_through_rest(fake, ds, base_config, data):
    config = backfill.config(base_config)
    run_target(config, backfill.messages(data))
    fake.clear_requests()

    unchanged = run_target(config, backfill.messages(data))
    assert fake.requests == []
    assert unchanged.counts(CUSTOMERS_STREAM)["unchanged"] == len(data.customers)

    changed = [{**row, "name": f"{row['name']} (renamed)"} if i < 5 else row for i, row in enumerate(data.customers)]
    result = run_target(config, [*customers_stream(CUSTOMERS_STREAM, changed, {"seats": INTEGER})])

    assert bulk_calls(fake) == []
    assert [(r.method, r.path.split("/")[1]) for r in write_calls(fake)] == [("PATCH", "customers")] * 5
    # a bulk import answers no uuids; the listing that showed the customers landed gave them: nothing is looked up
    assert reads(fake, r"^/customers$") == []
    assert result.counts(CUSTOMERS_STREAM)["updated"] == 5
    backfill.assert_landed(fake, ds, backfill.Backfill(changed, data.invoices, data.refunds, data.events))

    fake.clear_requests()
    again = [{**row, "name": "Again"} if i == 0 else row for i, row in enumerate(changed)]
    run_target(config, customers_stream(CUSTOMERS_STREAM, again, {"seats": INTEGER}))
    assert [(r.method, r.path.split("/")[1]) for r in fake.requests] == [("GET", "ping"), ("GET", "data_sources"),
                                                                          ("PATCH", "customers")]


def test_never_writes_the_same_backfill_through_rest_without_calling_the_bulk_endpoint(fake, ds, base_config, data):
    result = run_target(backfill.config(base_config, bulk_import="never"), backfill.messages(data))

    assert result.rejects == []
    assert bulk_calls(fake) == []
    backfill.assert_landed(fake, ds, data)
    assert result.counts(CUSTOMERS_STREAM)["created"] == len(data.customers)
    assert posts(fake, r"^/customers$") == len(data.customers)


def test_auto_under_bulk_min_records_writes_through_rest(fake, ds, base_config):
    small = backfill.backfill(10)  # 2 plans, 10 customers, 30 invoices, 3 refunds, 4 events: 49 records

    result = run_target(backfill.config(base_config, bulk_min_records=50), backfill.messages(small))

    assert bulk_calls(fake) == []
    backfill.assert_landed(fake, ds, small)
    assert result.counts(INVOICES_STREAM)["created"] == len(small.invoices)


def test_always_imports_even_a_handful(fake, ds, base_config):
    small = backfill.backfill(2)

    result = run_target(backfill.config(base_config, bulk_import="always"), backfill.messages(small))

    assert [len(body["customers"]) for body in fake.json_imports.submitted] == [1, 1]  # the first tells attributes
    backfill.assert_landed(fake, ds, small)
    assert imported(result) == expected_imported(small)


@pytest.mark.parametrize("detail", ["errors", "message", "bare"])
def test_customers_the_import_fails_go_through_rest_in_the_same_run(fake, ds, base_config, data, detail, caplog):
    caplog.set_level("INFO")
    fake.json_imports.failure_detail = detail
    failing = {"c-00003", "c-00007"}
    fake.json_imports.fail_customers = set(failing)

    result = run_target(backfill.config(base_config), backfill.messages(data))

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    # what the import refused went through REST: those two customers, their invoices, events and refunds, no more
    created = sorted(r.body["external_id"] for r in write_calls(fake) if r.method == "POST" and r.path == "/customers")
    assert created == sorted(failing)
    theirs = [i for i in data.invoices if i["account_code"] in failing]
    imported_by_rest = [inv["external_id"] for r in write_calls(fake) if re.search(IMPORT_PATH, r.path)
                        for inv in r.body["invoices"]]
    assert sorted(imported_by_rest) == sorted(i["external_id"] for i in theirs)
    assert counted(result, CUSTOMERS_STREAM) == {"received": 120, "imported": 118, "created": 2}
    assert "failure(s) reported: c-00003: " in caplog.text


def test_an_import_that_fails_whole_goes_through_rest_in_the_same_run(fake, ds, base_config, data, caplog):
    fake.json_imports.whole_import_failure = "Import aborted: internal error"

    result = run_target(backfill.config(base_config), backfill.messages(data))

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    assert counted(result, CUSTOMERS_STREAM) == {"received": 120, "created": 120}
    assert posts(fake, r"^/customers$") == 120
    assert "ended 'failed'" in caplog.text and "Import aborted: internal error" in caplog.text


def test_a_rerun_of_the_same_backfill_without_memory_duplicates_nothing(fake, ds, base_config, data, tmp_path):
    config = backfill.config(base_config)
    run_target(config, backfill.messages(data))
    fake.clear_requests()

    result = run_target(fresh_memory(config, tmp_path, "lost"), backfill.messages(data))

    assert result.rejects == []
    assert bulk_calls(fake) == []  # everything is found in ChartMogul's listings
    assert write_calls(fake) == []
    backfill.assert_landed(fake, ds, data)
    assert result.counts(CUSTOMERS_STREAM)["unchanged"] == len(data.customers)
    assert result.counts(INVOICES_STREAM)["unchanged"] == len(data.invoices)


def seed_other_tool(fake: FakeChartMogul, ds: str, base_config: dict[str, t.Any], tmp_path: t.Any) -> None:
    """Another tool wrote customer c-00001 (under another name) and this memory knows one customer of the data
    source: so nothing is listed and c-00001 looks new."""
    run_target(backfill.config(base_config), customers_stream(CUSTOMERS_STREAM, [{"external_id": "x-1", "name": "X"}]))
    run_target(fresh_memory(base_config, tmp_path, "other-tool"),
               customers_stream(CUSTOMERS_STREAM, [{"external_id": "c-00001", "name": "Old name"}]))
    fake.clear_requests()


@pytest.mark.parametrize("existing", ["update", "keep", "fail"])
def test_a_customer_another_tool_wrote_ends_as_the_record_says_whatever_the_import_does(
        fake, ds, base_config, data, tmp_path, existing):
    fake.json_imports.existing_customer = existing
    seed_other_tool(fake, ds, base_config, tmp_path)

    result = run_target(backfill.config(base_config), backfill.messages(data))

    assert result.rejects == []
    held = fake.find_customers(ds, "c-00001")
    assert len(held) == 1 and held[0]["name"] == "Customer 1"
    renamed = [r for r in write_calls(fake) if r.method == "PATCH" and r.path == f"/customers/{held[0]['uuid']}"]
    assert len(renamed) == (1 if existing in ("keep", "fail") else 0)  # the kept name is corrected, once
    with fake.lock:
        assert len(fake.customers) == len(data.customers) + 1  # and x-1
    for invoice in data.invoices:
        assert_invoice_matches(fake, ds, invoice)


def test_an_answer_that_only_counts_is_trusted_when_it_counts_no_errors(fake, ds, base_config, data):
    fake.json_imports.status_shape = "counts"

    result = run_target(backfill.config(base_config), backfill.messages(data))

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    assert imported(result) == expected_imported(data)
    assert posts(fake, r"^/customers$") == 0


def test_errors_counted_but_not_named_are_settled_through_rest(fake, ds, base_config, data):
    fake.json_imports.status_shape = "counts"
    fake.json_imports.fail_customers = {"c-00002"}

    result = run_target(backfill.config(base_config), backfill.messages(data))

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    # the answer names no object: every record goes through REST, which lists the data source (the memory holds
    # none of its customers) and compares first: only the customer the import refused is written
    assert [r.body["external_id"] for r in write_calls(fake) if r.path == "/customers"] == ["c-00002"]
    assert result.counts(CUSTOMERS_STREAM)["created"] == 1


def test_more_than_a_thousand_customers_go_in_eight_imports_never_two_at_once_per_customer(fake, ds, base_config):
    big = backfill.backfill(1100, invoices_each=1)

    result = run_target(backfill.config(base_config), backfill.messages(big))

    assert result.rejects == []
    # one customer with attributes first (does ChartMogul keep them?), then the first and the last of 100 (queued
    # soonest, finished soonest), the six between them even. The probe is answered before the others are sent; those
    # go out from worker threads and may arrive in any order, so they are read in the order they were built (the
    # customers' order in the input)
    probe, *rest = fake.json_imports.submitted
    built = sorted(rest, key=lambda body: body["customers"][0]["external_id"])
    assert [len(body["customers"]) for body in [probe, *built]] == [1, 100] + [150] * 6 + [99]
    assert fake.json_imports.violations == []
    backfill.assert_landed(fake, ds, big)


def test_a_dry_run_reports_what_would_go_in_bulk_and_sends_nothing(fake, ds, base_config, data, caplog):
    caplog.set_level("INFO")

    result = run_target(backfill.config(base_config, dry_run=True), backfill.messages(data))

    assert fake.json_imports.submitted == []
    assert write_calls(fake) == []
    assert imported(result) == {CUSTOMERS_STREAM: len(data.customers), INVOICES_STREAM: len(data.invoices),
                                REFUNDS_STREAM: len(data.refunds), EVENTS_STREAM: len(data.events)}
    assert "DRY RUN: would send 1 bulk import(s) carrying" in caplog.text
    bulk = len(data.customers) + len(data.invoices) + len(data.refunds) + len(data.events)
    assert f"DRY RUN: would create 2, import {bulk} in bulk, update 0, delete 0, reject 0" in caplog.text


@pytest.mark.parametrize("plans_first", [True, False], ids=["plans-first", "plans-after-invoices"])
def test_a_long_backfill_imports_as_it_goes_and_lets_state_out_once_nothing_waits(fake, ds, base_config, data,
                                                                                  monkeypatch, plans_first):
    # The SDK drains every sink (and offers STATE) every few minutes on long runs: here after every record, and
    # the spool is imported once it holds 250 records instead of 100,000.
    monkeypatch.setattr("target_chartmogul.bulk.lane.FLUSH_EARLY_AT", 250)
    monkeypatch.setattr("target_chartmogul.target.TargetChartMogul._MAX_RECORD_AGE_IN_MINUTES", -1.0)
    first, second = state({"bookmarks": {"customers": 1}}), state({"bookmarks": {"invoices": 1}})
    messages = [m for m in backfill.messages(data) if m not in plans_messages()]
    split = next(i for i, m in enumerate(messages)
                 if isinstance(m, dict) and m["type"] == "SCHEMA" and m["stream"] == INVOICES_STREAM)
    plans = plans_messages()
    ordered = ([*plans, *messages[:split], first, *messages[split:]] if plans_first
               else [*messages[:split], first, *messages[split:split + 400], *plans, *messages[split + 400:]])

    result = run_target(backfill.config(base_config), [*ordered, second])

    assert result.rejects == []
    backfill.assert_landed(fake, ds, data)
    assert fake.json_imports.violations == []
    if plans_first:  # the customers' imports (one that tells attributes, then the rest) were recorded before the
        # end: their STATE went out then
        assert len(fake.json_imports.submitted) == 3
        assert result.states == [first["value"], second["value"]]
    else:  # invoices imported early wait for their plans (through REST): no STATE until they landed
        assert len(fake.json_imports.submitted) >= 1
        assert result.states == [second["value"]]


def test_a_row_deleted_later_in_the_input_is_never_sent(fake, ds, base_config, data):
    gone = {**data.customers[7], "_sdc_deleted_at": "2024-05-01T00:00:00+00:00"}
    kept = backfill.Backfill(data.customers, [], [], [])
    config = backfill.config(base_config, bulk_import="always", batch_size_rows=50)  # spooled batches before it
    config["streams"][CUSTOMERS_STREAM]["delete_missing"] = True
    extra = {"seats": INTEGER, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}

    result = run_target(config, [*customers_stream(CUSTOMERS_STREAM, data.customers, extra),
                                 *customers_stream(CUSTOMERS_STREAM, [gone], extra)[1:]])

    assert result.rejects == []
    sent = [c["external_id"] for body in fake.json_imports.submitted for c in body.get("customers", [])]
    assert sorted(sent) == sorted(c["external_id"] for c in kept.customers if c is not data.customers[7])
    assert fake.find_customers(ds, data.customers[7]["external_id"]) == []
    counts = result.counts(CUSTOMERS_STREAM)
    assert (counts["received"], counts["imported"], counts["superseded"]) == (len(data.customers) + 1,
                                                                              len(data.customers) - 1, 1)
