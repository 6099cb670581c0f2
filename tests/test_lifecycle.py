"""The one object lifecycle (target_chartmogul/sinks/lifecycle.py).

A new object kind needs only a table entry, an adapter and a mapping (tests/toy.py: a toy
resource the fake answers for one test), and every create / update / delete / unchanged of
plans, customers, subscription events, contacts and transactions is decided by the engine.
"""

from __future__ import annotations

import collections
import threading
import typing as t

import pytest

from target_chartmogul.sinks.lifecycle import Lifecycle
from tests import billing, first_load
from tests.helpers import FakeApi, fresh_memory, write_calls
from tests.running import API_KEY, run_target
from tests.singer_messages import STRING, schema
from tests.toy import ToyShop, toy_endpoints, toy_object

STREAM = "toys"  # mapped by its name, as any registered object is


def toys_messages(rows: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    props = {"external_id": STRING, "name": STRING, "_sdc_deleted_at": {"type": ["string", "null"]}}
    return [schema(STREAM, props), *({"type": "RECORD", "stream": STREAM, "record": row} for row in rows)]


def toys(*names: str) -> list[dict[str, t.Any]]:
    return [{"external_id": f"t{n}", "name": name} for n, name in enumerate(names, 1)]


@pytest.fixture
def shop(fake: t.Any) -> t.Iterator[ToyShop]:
    with toy_object(), toy_endpoints(fake) as toys_held:
        yield toys_held


def held(shop: ToyShop, ds: str) -> dict[str, str]:
    return {toy["external_id"]: toy["name"] for toy in shop.toys.values() if toy["data_source_uuid"] == ds}


def writes(fake: t.Any) -> list[tuple[str, str, t.Any]]:
    return [(r.method, r.path, r.body) for r in write_calls(fake)]


# A new object kind: a table entry, an adapter, a mapping -------------------------------------------
def test_a_toy_is_created_then_unchanged_at_no_cost_then_its_change_is_one_patch(fake, ds, base_config, shop):
    first = run_target(base_config, toys_messages(toys("Bear", "Kite", "Yo-yo")))
    assert first.counts(STREAM)["created"] == 3
    assert held(shop, ds) == {"t1": "Bear", "t2": "Kite", "t3": "Yo-yo"}
    fake.clear_requests()

    again = run_target(base_config, toys_messages(toys("Bear", "Kite", "Yo-yo")))
    assert again.counts(STREAM)["unchanged"] == 3
    assert fake.requests == []  # the sync memory holds each toy as written: no call at all

    renamed = run_target(base_config, toys_messages(toys("Bear", "Box kite", "Yo-yo")))
    kite = shop.find(ds, "t2")
    assert kite is not None
    assert writes(fake) == [("PATCH", f"/toys/{kite['uuid']}", {"name": "Box kite"})]
    assert (renamed.counts(STREAM)["updated"], renamed.counts(STREAM)["unchanged"]) == (1, 2)
    assert held(shop, ds) == {"t1": "Bear", "t2": "Box kite", "t3": "Yo-yo"}


def test_a_toy_gone_from_chartmogul_is_created_again(fake, ds, base_config, shop):
    run_target(base_config, toys_messages(toys("Bear", "Kite")))
    gone = shop.find(ds, "t2")
    assert gone is not None
    del shop.toys[gone["uuid"]]  # deleted in ChartMogul by hand
    fake.clear_requests()

    result = run_target(base_config, toys_messages(toys("Bear", "Red kite")))

    assert [(r.method, r.path, r.status) for r in write_calls(fake)] == [
        ("PATCH", f"/toys/{gone['uuid']}", 404), ("POST", "/toys", 201)]
    assert result.counts(STREAM)["created"] == 1
    assert held(shop, ds) == {"t1": "Bear", "t2": "Red kite"}


def test_with_the_memory_lost_the_toys_are_listed_once_and_cost_reads_only(fake, ds, base_config, tmp_path, shop):
    run_target(base_config, toys_messages(toys("Bear", "Kite", "Yo-yo")))
    fake.clear_requests()

    result = run_target(fresh_memory(base_config, tmp_path, "lost"), toys_messages(toys("Bear", "Kite", "Top")))

    top = shop.find(ds, "t3")
    assert top is not None
    assert writes(fake) == [("PATCH", f"/toys/{top['uuid']}", {"name": "Top"})]
    listings = [r.query for r in fake.requests if r.method == "GET" and r.path == "/toys"]
    assert listings == [{"data_source_uuid": ds, "per_page": "200"}]
    assert (result.counts(STREAM)["unchanged"], result.counts(STREAM)["updated"]) == (2, 1)


def test_a_toy_chartmogul_holds_already_is_found_by_its_refusal_and_brought_in_line(fake, ds, base_config, shop):
    run_target(base_config, toys_messages(toys("Bear")))  # the memory knows this data source: no listing
    planted = shop.plant(ds, "t2", "Kite (from the app)")
    fake.clear_requests()

    result = run_target(base_config, toys_messages(toys("Bear", "Kite")))

    assert [(r.method, r.path, r.status) for r in write_calls(fake)] == [
        ("POST", "/toys", 422), ("PATCH", f"/toys/{planted['uuid']}", 200)]
    assert result.counts(STREAM)["updated"] == 1
    assert held(shop, ds) == {"t1": "Bear", "t2": "Kite"}


def test_a_toy_deleted_in_the_source_is_deleted(fake, ds, base_config, shop):
    config = {**base_config, "add_record_metadata": True, "streams": {STREAM: {"delete_missing": True}}}
    run_target(config, toys_messages(toys("Bear", "Kite")))
    kite = shop.find(ds, "t2")
    assert kite is not None
    fake.clear_requests()

    result = run_target(config, toys_messages([{"external_id": "t2", "name": "Kite",
                                                "_sdc_deleted_at": "2025-01-01T00:00:00+00:00"}]))

    assert writes(fake) == [("DELETE", f"/toys/{kite['uuid']}", None)]
    assert result.counts(STREAM)["deleted"] == 1
    assert held(shop, ds) == {"t1": "Bear"}


def test_a_bad_toy_is_rejected_naming_the_field_by_its_mapping(fake, ds, base_config, shop):
    result = run_target(base_config, toys_messages([{"external_id": "t1", "name": " "}, *toys("x", "Kite")[1:]]))

    assert [(r["key"], r["field"]) for r in result.rejects] == [({"external_id": "t1"}, "name")]
    assert held(shop, ds) == {"t2": "Kite"}


# Only the engine decides ------------------------------------------------------------------------
class Decisions:
    """Every outcome the engine returned, per stream (wrapping its three deciding entry points)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()
        for name in ("write_item", "delete_one", "landed_one"):
            monkeypatch.setattr(Lifecycle, name, self.wrap(getattr(Lifecycle, name)))

    def wrap(self, method: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def decided(engine: Lifecycle[t.Any], *args: t.Any) -> t.Any:
            outcome = method(engine, *args)
            if outcome is not None:
                with self._lock:
                    self.counts[engine.sink.stream_name][outcome] += 1
            return outcome
        return decided


DECIDED = ("created", "updated", "corrected", "unchanged", "already_present", "changed_not_applied", "deleted",
           "skipped", "imported")
FIVE = ("plans", "customers", "transactions", "subscription_events", "contacts")


def test_every_outcome_of_the_five_objects_is_the_engines(fake, ds, base_config, tmp_path, monkeypatch):
    """A first load of plans, customers, invoices with payments and refunds, events and contacts, then the same
    input with the sync memory lost: every outcome counted on the streams of the five objects was returned by the
    lifecycle engine."""
    decisions = Decisions(monkeypatch)
    config = {**base_config, "streams": first_load.first_load_streams(), "bulk_import": "never"}
    counted: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for run_config in (config, fresh_memory(config, tmp_path, "lost")):
        result = run_target(run_config, first_load.first_load_messages(10))
        assert result.target is not None and result.rejects == []
        objects = result.target.summary.objects
        for stream, counts in result.target.summary.as_dict().items():
            if objects[stream] in FIVE:
                counted[stream].update({outcome: counts[outcome] for outcome in DECIDED if counts[outcome]})

    assert {objects[stream] for stream in counted} == set(FIVE)
    assert {stream: dict(counts) for stream, counts in counted.items()} == {
        stream: dict(decisions.counts[stream]) for stream in counted}
    assert all(counts["created"] or counts["imported"] for counts in counted.values())
    assert all(counts["unchanged"] for counts in counted.values())


def test_a_dry_run_of_toys_answers_from_the_table_and_decides_as_the_real_run(fake, ds, base_config, shop, caplog):
    """The dry run routes, answers and refuses a new kind by its table entry alone: its decisions are the real run's."""
    run_target(base_config, toys_messages(toys("Bear", "Kite")))
    fake.clear_requests()
    caplog.set_level("INFO", logger="target_chartmogul.api.dry_run")
    rows = toys("Bear", "Box kite", "Yo-yo")

    dry = run_target({**base_config, "dry_run": True}, toys_messages(rows))

    assert [r.method for r in fake.requests if r.method != "GET"] == []
    assert held(shop, ds) == {"t1": "Bear", "t2": "Kite"}
    assert sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("DRY RUN: would ")) == [
        "DRY RUN: would create toys t3", 'DRY RUN: would update toys t2: name: "Kite" → "Box kite"']
    real = run_target(base_config, toys_messages(rows))
    assert {k: dry.counts(STREAM)[k] for k in ("created", "updated", "unchanged")} == {
        k: real.counts(STREAM)[k] for k in ("created", "updated", "unchanged")} == {
        "created": 1, "updated": 1, "unchanged": 1}


def test_the_invoice_sinks_use_the_lifecycle_for_what_every_object_shares(fake, ds, base_config, monkeypatch):
    """An invoice gone from ChartMogul is read through the lifecycle (404: gone, imported again), and a deleted
    invoice is deleted through it: the invoice writer has no 404 rule, read or delete of its own."""
    config = {**billing.billing_config(base_config), "add_record_metadata": True}
    config["streams"] = {**config["streams"], billing.INVOICES_STREAM: {"delete_missing": True}}
    run_target(config, billing.billing_messages())
    shared: list[tuple[str, str, str]] = []
    for name in ("held", "look_up", "delete_held"):
        original = getattr(Lifecycle, name)

        def spy(engine: Lifecycle[t.Any], *args: t.Any, _name: str = name, _original: t.Any = original) -> t.Any:
            key = args[1] if _name == "delete_held" else args[0]  # (data source, external id)
            shared.append((engine.rules.kind, _name, key[1]))
            return _original(engine, *args)

        monkeypatch.setattr(Lifecycle, name, spy)
    gone = fake.find_invoice(ds, "inv-2")
    assert gone is not None
    FakeApi(fake, API_KEY).ok("DELETE", f"/invoices/{gone['uuid']}", status=204)  # deleted by hand
    changed = [{**billing.INVOICES[1], "due_date": "2024-02-20T00:00:00+00:00"}]
    deleted = {**billing.invoice_row(billing.INVOICES[3]), "_sdc_deleted_at": "2025-01-01T00:00:00+00:00"}
    props = {**billing.INVOICE_PROPS, "_sdc_deleted_at": {"type": ["string", "null"]}}
    fake.clear_requests()

    result = run_target(config, [*billing.invoices_messages(changed, props=props),
                                 billing.raw_record(billing.INVOICES_STREAM, deleted)])

    assert ("invoice", "held", "inv-2") in shared
    assert ("invoice", "delete_held", "inv-4") in shared
    assert (result.counts(billing.INVOICES_STREAM)["created"], result.counts(billing.INVOICES_STREAM)["deleted"]) == (1, 1)
    assert fake.find_invoice(ds, "inv-2") is not None and fake.find_invoice(ds, "inv-4") is None
