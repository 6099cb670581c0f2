"""An upgrade costs reads, never writes (issue 22, item 5).

Earlier releases kept hashes this one cannot compare (0.1.0's customer fingerprint lacks `tags_mode`, its invoice
fingerprint has another shape): kept as they were, every row looked changed, and the first run after an upgrade
PATCHed every customer (40 writes for 1 changed customer). Migrating a memory now forgets those hashes, keeps every
uuid and marks each (data source, object) unproven (memory.migrations.unprove_hashes); the next run lists each such
kind once per data source, 200 per page (memory.holdings), and compares every record with ChartMogul's copy, so an
unchanged row is never written again, and the run after it costs no call at all.

The 0.1.0 memory is the one 0.1.0 really wrote (tests/memory_versions.py says how); the memories of schema versions 1
to 7 are a current one turned back into each version's shape (`as_version`), so their hashes would even match: the
upgrade does not trust them either, and costs the same listings. Every test runs with the memory in SQLite and again
in PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import pathlib
import typing as t

import pytest

from target_chartmogul.memory import migrations
from tests.first_load import (
    ACCOUNTS,
    EVENTS,
    INVOICES,
    LINE_ITEMS,
    NESTED,
    PAYMENTS,
    PEOPLE,
    PLANS_STREAM,
    REFUNDS,
    first_load_messages,
    first_load_streams,
)
from tests.helpers import write_calls
from tests.memory_versions import (
    DS_0_1_0,
    as_version,
    fixture_config,
    fixture_input,
    fixture_state,
    load_0_1_0_memory,
    unproven_marks,
)
from tests.running import API_KEY, RunResult, run_target

if t.TYPE_CHECKING:
    from tests.fake_chartmogul import FakeChartMogul

RENAMED = "cus-007"
OLD_STREAMS = ("billing-plans", "billing-customers", "billing-invoices", "billing-refunds")
PAGE = "200"


def listing(path: str, ds: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """One page of a data source's listing, as the fake saw it."""
    return ("GET", path, (("data_source_uuid", ds), ("per_page", PAGE)))


def first_call(ds: str) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """What a run's first call brings: the key and the data source checked."""
    return [("GET", "/ping", ()), ("GET", f"/data_sources/{ds}", ())]


def calls(fake: FakeChartMogul) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every request (method, path, query), sorted: listings of several kinds are read concurrently."""
    return sorted((r.method, r.path, tuple(sorted(r.query.items()))) for r in fake.requests)


def stream_of(message: t.Any) -> str:
    """The stream of a Singer message given as a dict or as a line."""
    return str((json.loads(message) if isinstance(message, str) else message).get("stream"))


def only(messages: t.Sequence[t.Any], stream: str) -> list[t.Any]:
    """The messages of one stream (its SCHEMA and RECORDs)."""
    return [message for message in messages if stream_of(message) == stream]


# A memory 0.1.0 wrote --------------------------------------------------------------------------------
def config_0_1_0(fake: FakeChartMogul, ledger_url: str, tmp_path: pathlib.Path) -> dict[str, t.Any]:
    """0.1.0's settings against this fake and this memory (the fake holds what 0.1.0's fake held)."""
    fake.load_state(fixture_state())
    load_0_1_0_memory(ledger_url)
    return {**fixture_config(), "api_key": API_KEY, "api_url": fake.url, "ledger_url": ledger_url,
            "rejects_path": str(tmp_path / "rejects.jsonl")}


def renamed_input() -> tuple[list[str], str]:
    """0.1.0's input with one customer renamed, and the new name."""
    lines = fixture_input()
    for index, line in enumerate(lines):
        message = json.loads(line)
        if message.get("type") == "RECORD" and message["record"]["external_id"] == RENAMED:
            message["record"]["name"] = name = f"Renamed {message['record']['name']}"
            lines[index] = json.dumps(message)  # a customer row has no decimal to keep as written
            return lines, name
    raise AssertionError(f"{RENAMED} is not in the 0.1.0 input")


def counts(result: RunResult, streams: t.Sequence[str]) -> dict[str, dict[str, int]]:
    """The summary's non-zero columns of each stream."""
    return {stream: {k: v for k, v in result.counts(stream).items() if v} for stream in streams}


def test_a_memory_written_by_0_1_0_costs_one_write_for_one_changed_customer_then_none(fake, ledger_url, tmp_path):
    config = config_0_1_0(fake, ledger_url, tmp_path)
    lines, name = renamed_input()
    before = fake.dump_state()
    uuid = next(c["uuid"] for c in before["customers"] if c["external_id"] == RENAMED)

    result = run_target(config, lines)

    assert [(r.method, r.path, r.body) for r in write_calls(fake)] == [("PATCH", f"/customers/{uuid}", {"name": name})]
    assert calls(fake) == sorted([*first_call(DS_0_1_0), listing("/plans", DS_0_1_0),
                                  listing("/customers", DS_0_1_0), listing("/invoices", DS_0_1_0),
                                  ("PATCH", f"/customers/{uuid}", ())])  # 5 plans, 40 customers, 80 invoices: 1 page each
    assert counts(result, OLD_STREAMS) == {
        "billing-plans": {"received": 5, "unchanged": 5},
        "billing-customers": {"received": 40, "updated": 1, "unchanged": 39},
        "billing-invoices": {"received": 80, "unchanged": 80},
        "billing-refunds": {"received": 20, "unchanged": 20},
    }
    expected = copy.deepcopy(before)
    next(c for c in expected["customers"] if c["uuid"] == uuid)["name"] = name
    assert fake.dump_state() == expected
    assert unproven_marks(ledger_url) == set()

    fake.clear_requests()
    again = run_target(config, lines)
    assert fake.requests == []
    assert counts(again, OLD_STREAMS) == {
        "billing-plans": {"received": 5, "unchanged": 5},
        "billing-customers": {"received": 40, "unchanged": 40},
        "billing-invoices": {"received": 80, "unchanged": 80},
        "billing-refunds": {"received": 20, "unchanged": 20},
    }


@pytest.mark.parametrize(("stream", "listed"), [
    ("billing-plans", ["/plans"]),
    ("billing-customers", ["/customers"]),
    ("billing-invoices", ["/invoices"]),
    ("billing-refunds", ["/invoices"]),  # a refund is compared with the payments its invoice holds
])
def test_each_stream_alone_after_0_1_0_costs_one_listing_and_no_write(fake, ledger_url, tmp_path, stream, listed):
    """An incremental run after the upgrade brings one stream: its kind is listed once, nothing is written."""
    config = config_0_1_0(fake, ledger_url, tmp_path)
    messages = only(fixture_input(), stream)
    before = fake.dump_state()

    result = run_target(config, messages)

    assert write_calls(fake) == []
    assert calls(fake) == sorted([*first_call(DS_0_1_0), *(listing(path, DS_0_1_0) for path in listed)])
    received = len(messages) - 1
    assert counts(result, [stream]) == {stream: {"received": received, "unchanged": received}}
    assert fake.dump_state() == before


# Memories of every earlier schema version ------------------------------------------------------------
EVERY_STREAM = (ACCOUNTS, INVOICES, NESTED, LINE_ITEMS, PAYMENTS, PEOPLE, PLANS_STREAM, REFUNDS, EVENTS)
LISTED = {  # what each stream's records are compared with after an upgrade
    ACCOUNTS: ["/customers"], INVOICES: ["/invoices"], NESTED: ["/invoices"], LINE_ITEMS: ["/invoices"],
    PAYMENTS: ["/invoices"], PEOPLE: ["/contacts"], PLANS_STREAM: ["/plans"], REFUNDS: ["/invoices"],
    EVENTS: ["/subscription_events"],
}
CUSTOMERS = 10


def loaded(fake: FakeChartMogul, base_config: dict[str, t.Any], ledger_url: str) -> tuple[dict[str, t.Any], list[t.Any]]:
    """Every object kind loaded by this release (REST): the config and the input."""
    config = {**base_config, "ledger_url": ledger_url, "streams": first_load_streams(), "bulk_import": "never"}
    messages = first_load_messages(CUSTOMERS)
    first = run_target(config, messages)
    assert first.counts(ACCOUNTS)["created"] == CUSTOMERS
    assert not pathlib.Path(config["rejects_path"]).exists() or pathlib.Path(config["rejects_path"]).read_text() == ""
    fake.clear_requests()
    return config, messages


def unchanged_everywhere(result: RunResult, messages: t.Sequence[t.Any], streams: t.Sequence[str]) -> None:
    """Every record of these streams counted unchanged (a deleted line counts as such too)."""
    for stream in streams:
        received = len(only(messages, stream)) - 1
        assert {k: v for k, v in result.counts(stream).items() if v} == {"received": received, "unchanged": received}, \
            stream


@pytest.mark.parametrize("version", range(1, migrations.SCHEMA_VERSION))
def test_a_memory_of_every_earlier_schema_version_costs_listings_only(fake, ds, base_config, ledger_url, version):
    """ChartMogul's invoice answers show the status (as newer answers do): memories of schema 5 and before, which did
    not keep the status they applied, are proven by the listing too (see the next test for answers without it).
    """
    fake.store.invoice_status_in_answers = True
    config, messages = loaded(fake, base_config, ledger_url)
    before = fake.dump_state()
    as_version(ledger_url, version)

    result = run_target(config, messages)

    assert write_calls(fake) == []
    assert calls(fake) == sorted([*first_call(ds), *(listing(path, ds) for path in
                                                     ("/plans", "/customers", "/invoices", "/contacts",
                                                      "/subscription_events"))])
    unchanged_everywhere(result, messages, EVERY_STREAM)
    assert fake.dump_state() == before
    assert unproven_marks(ledger_url) == set()

    fake.clear_requests()
    unchanged_everywhere(run_target(config, messages), messages, EVERY_STREAM)
    assert fake.requests == []


def test_where_answers_hide_invoice_status_a_memory_of_schema_5_sets_each_status_once(fake, ds, base_config, ledger_url):
    """Schema 5 applied voided and written_off but did not keep which (schema 6 added `status`), and the recorded
    invoice answers do not show it: no read can prove it, so each is set once more (ChartMogul refuses a repeat, which
    is warned and counted `status_unconfirmed`); nothing else is written, and the next run costs nothing.
    """
    config, messages = loaded(fake, base_config, ledger_url)
    final = {(str(row["external_id"])): str(row["status"]) for message in only(messages, NESTED)
             if (row := json.loads(message).get("record") if isinstance(message, str) else None)
             and row.get("status") in ("voided", "written_off")}
    assert len(final) >= 2
    as_version(ledger_url, 5)

    result = run_target(config, messages)

    assert sorted((r.method, r.path, r.body["status"]) for r in write_calls(fake)) == sorted(
        ("PUT", f"/data_sources/{ds}/invoices/{ext}/status", status) for ext, status in final.items())
    assert {k: v for k, v in result.counts(NESTED).items() if v} == {
        "received": len(only(messages, NESTED)) - 1, "unchanged": len(only(messages, NESTED)) - 1 - len(final),
        "status_unconfirmed": len(final)}
    unchanged_everywhere(result, messages, [s for s in EVERY_STREAM if s != NESTED])
    fake.clear_requests()
    unchanged_everywhere(run_target(config, messages), messages, EVERY_STREAM)
    assert fake.requests == []


@pytest.mark.parametrize("stream", EVERY_STREAM)
def test_each_stream_alone_after_an_upgrade_costs_its_listing_only(fake, ds, base_config, ledger_url, stream):
    """Every object kind takes the compare path: customers, plans, invoices (nested, headers, lines of their own
    stream), payments and refunds, contacts and subscription events.
    """
    config, messages = loaded(fake, base_config, ledger_url)
    before = fake.dump_state()
    as_version(ledger_url, migrations.SCHEMA_VERSION - 1)

    result = run_target(config, only(messages, stream))

    assert write_calls(fake) == []
    assert calls(fake) == sorted([*first_call(ds), *(listing(path, ds) for path in LISTED[stream])])
    unchanged_everywhere(result, messages, [stream])
    assert fake.dump_state() == before
