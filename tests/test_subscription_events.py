"""Subscription events against the fake in recorded shapes: exact, one write per change, no duplicates.

The stream is a `subscription_changes` table of a home-made billing system: ten events
(every type once) per subscription, over the standard customers and plans.
"""

from __future__ import annotations

import json
import typing as t
from decimal import Decimal

import pytest

from tests.billing import PLANS, customers_messages, plans_messages, raw_record
from tests.fake_chartmogul import Fault
from tests.helpers import fresh_memory, logged_writes, reads, request_log, write_calls
from tests.running import API_KEY, run_target
from tests.singer_messages import DATETIME, INTEGER, NUMBER, STRING, record, schema, state
from tests.subscription_rows import (
    EVENT_PATH,
    EVENT_PROPS,
    EVENTS_STREAM,
    assert_events_are,
    event_rows,
    events_config,
    events_messages,
    readme_recipe,
    with_references,
)

DELETED_AT = "2024-06-01T00:00:00Z"


@pytest.fixture(autouse=True)
def recorded_naming(fake):
    """The fake takes only the recorded way to name an event (by id): the target must never need another."""
    fake.subscription_events.naming = "id"


def event_ids(fake) -> dict[int, str]:
    """Event id -> external id of the events the fake holds now (to read PATCHes and DELETEs, which name the id)."""
    with fake.lock:
        return {e["id"]: e["external_id"] for e in fake.subscription_events.items.values()}


def named(request, ids: dict[int, str]) -> str:
    """The external id of the event a PATCH or DELETE named by id (in the envelope or `?subscription_event[id]=`)."""
    sent = request.body.get("subscription_event") if isinstance(request.body, dict) else {}
    return ids[int(request.query.get("subscription_event[id]") or sent["id"])]


def changed_five(rows: list[dict[str, t.Any]]) -> tuple[list[dict[str, t.Any]], dict[str, dict[str, t.Any]]]:
    """Five rows changed in five different ways: amount, quantity, dates, plan, and a tax that became null."""
    other_plan = {PLANS[0]["external_id"]: PLANS[1]["external_id"], PLANS[1]["external_id"]: PLANS[0]["external_id"]}
    plan_of = {row["external_id"]: row["plan_external_id"] for row in rows}
    changes = {
        "ev-000-2": {"amount_in_cents": Decimal("4242.00")},
        "ev-001-5": {"quantity": 7},
        "ev-002-9": {"effective_date": "2024-05-05T05:05:05+00:00"},
        "ev-003-0": {"plan_external_id": other_plan[plan_of["ev-003-0"]]},
        "ev-004-3": {"tax_amount_in_cents": None},
    }
    return [{**row, **changes.get(row["external_id"], {})} for row in rows], changes


def event_writes(fake) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in write_calls(fake)]


def test_a_few_hundred_events_of_every_type_land_exactly(fake, ds, base_config):
    rows = event_rows(30)

    result = run_target(events_config(base_config), with_references(events_messages(rows)))

    assert result.rejects == []
    assert_events_are(fake, ds, rows)
    counts = result.counts(EVENTS_STREAM)
    assert (counts["received"], counts["created"], counts["rejected"]) == (300, 300, 0)
    assert len(fake.requests) == len([r for r in fake.requests if r.status < 400])  # nothing was refused
    assert fake.count("POST", EVENT_PATH) == 300  # one write per event
    assert {json.dumps(sorted(r.body["subscription_event"])) for r in fake.requests
            if r.method == "POST" and r.path == "/subscription_events" and r.body["subscription_event"]["event_type"]
            == "subscription_cancelled"} == {json.dumps(sorted(
                ["customer_external_id", "data_source_uuid", "effective_date", "event_date", "event_type", "external_id",
                 "subscription_external_id", "subscription_set_external_id", "event_order"])),
            json.dumps(sorted(["customer_external_id", "data_source_uuid", "effective_date", "event_date", "event_type",
                               "external_id", "subscription_external_id", "subscription_set_external_id"])),
            json.dumps(sorted(["customer_external_id", "data_source_uuid", "effective_date", "event_date", "event_type",
                               "external_id", "subscription_external_id", "event_order"])),
            json.dumps(sorted(["customer_external_id", "data_source_uuid", "effective_date", "event_date", "event_type",
                               "external_id", "subscription_external_id"]))}  # unset fields are left out, not sent empty


def test_five_changed_and_three_deleted_cost_one_write_each(fake, ds, base_config):
    config = events_config(base_config, delete_missing=True)
    rows = event_rows(30)
    run_target(config, with_references(events_messages(rows)))
    fake.clear_requests()
    changed, changes = changed_five(rows)
    gone = ["ev-010-4", "ev-011-8", "ev-012-1"]
    ids = event_ids(fake)

    result = run_target(config, [*events_messages([r for r in changed if r["external_id"] not in gone]),
                                 *(record(EVENTS_STREAM, {"external_id": ext, "_sdc_deleted_at": DELETED_AT})
                                   for ext in gone)])

    assert result.rejects == []
    assert sorted(event_writes(fake)) == [("DELETE", "/subscription_events")] * 3 + [("PATCH", "/subscription_events")] * 5
    patched = {named(r, ids): r.body["subscription_event"] for r in write_calls(fake) if r.method == "PATCH"}
    assert sorted(patched) == sorted(changes)
    assert patched["ev-004-3"]["tax_amount_in_cents"] is None  # a value that became null is cleared
    deleted = sorted(named(r, ids) for r in write_calls(fake) if r.method == "DELETE")
    assert deleted == sorted(gone)
    assert all(r.body is None for r in write_calls(fake) if r.method == "DELETE")  # `?subscription_event[id]=` only
    assert [r.path for r in fake.requests if r.method == "GET"] == ["/ping", f"/data_sources/{ds}"]
    counts = result.counts(EVENTS_STREAM)
    assert (counts["updated"], counts["deleted"], counts["unchanged"], counts["created"]) == (5, 3, 292, 0)
    assert_events_are(fake, ds, [r for r in changed if r["external_id"] not in gone])


@pytest.mark.parametrize("unset", ["as_sent", "empty"])
def test_a_rerun_without_the_memory_duplicates_nothing_and_writes_only_what_changed(fake, ds, base_config, tmp_path, unset):
    # Unset fields answered as sent (null, as recorded) or as "" (chartmogul-api.md §12): both are unset.
    fake.subscription_events.unset = unset
    config = events_config(base_config)
    rows = event_rows(30)
    run_target(config, with_references(events_messages(rows)))
    fake.clear_requests()

    unchanged = run_target(fresh_memory(config, tmp_path, "lost"), events_messages(rows))

    assert write_calls(fake) == []
    listing = reads(fake, EVENT_PATH, query={"data_source_uuid": ds})
    assert [r.path for r in fake.requests] == ["/ping", f"/data_sources/{ds}", *[r.path for r in listing]]
    assert len(listing) == 2  # 300 events: two pages of 200
    assert unchanged.counts(EVENTS_STREAM)["unchanged"] == 300
    fake.clear_requests()

    changed, changes = changed_five(rows)
    ids = event_ids(fake)
    again = run_target(fresh_memory(config, tmp_path, "lost-again"), events_messages(changed))

    assert sorted(named(r, ids) for r in write_calls(fake)) == sorted(changes)  # ids read from the listing
    assert {r.method for r in write_calls(fake)} == {"PATCH"}
    assert (again.counts(EVENTS_STREAM)["updated"], again.counts(EVENTS_STREAM)["unchanged"]) == (5, 295)
    assert_events_are(fake, ds, changed)


@pytest.mark.parametrize("duplicates", ["errors", "message", "accepted"])
@pytest.mark.parametrize("kind", ["error_after", "drop_after"])
def test_a_create_whose_answer_was_lost_is_neither_doubled_nor_refused(fake, ds, base_config, duplicates, kind):
    # The first attempt saves the event, its answer is lost, the client sends it again:
    # ChartMogul refuses the second (in some words) or saves it twice. Either way one event remains.
    fake.subscription_events.duplicates = duplicates
    fake.inject(Fault(kind, method="POST", path_regex=EVENT_PATH, times=5))
    rows = event_rows(3)

    result = run_target(events_config(base_config), with_references(events_messages(rows)))

    assert result.rejects == []
    assert_events_are(fake, ds, rows)
    assert result.counts(EVENTS_STREAM)["created"] == 30
    doubles = [r for r in write_calls(fake) if r.method == "DELETE"]
    assert len(doubles) == (5 if duplicates == "accepted" else 0)  # only a saved second copy is deleted


@pytest.mark.parametrize("duplicates", ["errors", "message"])
def test_an_event_chartmogul_already_holds_is_found_by_looking_it_up_not_by_its_message(
        fake, ds, base_config, tmp_path, duplicates):
    fake.subscription_events.duplicates = duplicates
    config = events_config(base_config)
    rows = event_rows(1)
    other = fresh_memory(config, tmp_path, "other-worker")
    run_target(other, with_references(events_messages(rows[:1])))  # another worker's memory holds the first only
    run_target(config, events_messages(rows[:5]))  # this memory: all five
    fake.clear_requests()
    moved = [{**rows[2], "quantity": 9}, *rows[3:5]]  # it does not know these: the creates are refused

    result = run_target(other, events_messages(moved))

    assert result.rejects == []
    # the three creates run concurrently: which one's PATCH follows is not ordered
    assert sorted((r.method, r.status) for r in write_calls(fake)) == [("PATCH", 200)] + [("POST", 422)] * 3
    counts = result.counts(EVENTS_STREAM)
    assert (counts["updated"], counts["unchanged"], counts["created"]) == (1, 2, 0)
    assert_events_are(fake, ds, [*rows[:2], *moved])


@pytest.mark.parametrize(("order", "looked_up"), [
    (("events", "customers", "plans"), {"customers": ["acct-1", "acct-2", "acct-3"], "plans": []}),
    (("customers", "events", "plans"), {"customers": [], "plans": sorted(p["external_id"] for p in PLANS)}),
])
def test_events_before_their_customers_and_plans_land_with_one_lookup_per_missing_reference(
        fake, ds, base_config, order, looked_up):
    config = {**events_config(base_config), "batch_size_rows": 10}
    run_target(config, [*plans_messages([{"external_id": "pl-old", "name": "Old", "interval_count": 1,
                                          "interval_unit": "year"}]),
                        *customers_messages([{"external_id": "acct-old", "name": "Old"}])])
    fake.clear_requests()  # the memory knows this data source: no listings, a lookup per missing object
    rows = event_rows(12)
    parts = {"events": [*events_messages(rows), state({"bookmarks": {"events": 1}})],
             "customers": customers_messages(), "plans": plans_messages()}

    # drained ten events at a time, before what they name has arrived
    result = run_target(config, [message for name in order for message in parts[name]])

    assert result.rejects == []
    assert_events_are(fake, ds, rows)
    assert result.counts(EVENTS_STREAM)["created"] == 120
    lookups = {kind: sorted(r.query["external_id"] for r in reads(fake, rf"^/{kind}$")) for kind in ("customers", "plans")}
    assert lookups == looked_up  # each missing object once, not once per event
    assert result.states == [{"bookmarks": {"events": 1}}]


def test_bad_rows_are_rejected_naming_the_field_while_the_rows_around_them_land(fake, ds, base_config):
    rows = event_rows(2)
    unknown = {**rows[2], "external_id": "bad-type", "event_type": "subscription_paused"}
    no_plan = {**rows[2], "external_id": "bad-start", "plan_external_id": None}
    no_customer = {**rows[3], "external_id": "bad-customer", "customer_external_id": "acct-404"}
    sent = [*rows[:5], unknown, *rows[5:10], no_plan, *rows[10:], no_customer]

    result = run_target(events_config(base_config), with_references(events_messages(sent)))

    assert_events_are(fake, ds, rows)
    rejected = {r["key"]["external_id"]: (r["field"], r["reason"]) for r in result.rejects}
    assert rejected["bad-start"] == ("plan_external_id", "field 'plan_external_id' is required for a subscription_start event")
    assert rejected["bad-type"][0] == "event_type"
    assert rejected["bad-customer"] == ("customer_external_id",
                                        f'no customer with external_id "acct-404" in data source {ds}')
    assert sorted(rejected) == ["bad-customer", "bad-start", "bad-type"]
    counts = result.counts(EVENTS_STREAM)
    assert (counts["created"], counts["rejected"]) == (20, 3)


def test_amounts_in_units_land_as_exact_cents(fake, ds, base_config):
    rows = [{**row, "amount_in_cents": None, "amount": row["amount_in_cents"] / 100}
            if row["amount_in_cents"] is not None else row for row in event_rows(3)]
    props = {**EVENT_PROPS, "amount": {"type": ["number", "null"]}}

    result = run_target(events_config(base_config, amount_unit="units"), with_references(events_messages(rows, props=props)))

    assert result.rejects == []
    sent = [{**row, "amount_in_cents": row.get("amount")} for row in rows]
    assert_events_are(fake, ds, sent, unit="units")


def test_a_complete_full_table_version_deletes_what_it_lacks_within_the_guard(fake, ds, base_config):
    config = events_config(base_config, delete_missing=True, max_delete_fraction=0.05)
    rows = event_rows(10)

    def version(n: int, kept: list[dict[str, t.Any]]) -> list[t.Any]:
        """A full-table sync (tap-postgres with emit_activate_version_messages), closed by ACTIVATE_VERSION."""
        head, *records = events_messages(kept)
        activate = {"type": "ACTIVATE_VERSION", "stream": EVENTS_STREAM, "version": n}
        return [head, activate, *({**json.loads(m), "version": n} for m in records), activate]

    run_target(config, [*plans_messages(), *customers_messages(), *version(1, rows)])
    fake.clear_requests()
    too_many = run_target(config, version(2, rows[:90]))  # 10 of 100 missing: over 5%

    assert write_calls(fake) == []
    assert too_many.counts(EVENTS_STREAM)["deleted"] == 0
    ids = event_ids(fake)
    four_gone = run_target(config, version(3, rows[:96]))

    assert sorted(named(r, ids) for r in write_calls(fake)) == sorted(r["external_id"] for r in rows[96:])
    assert four_gone.counts(EVENTS_STREAM)["deleted"] == 4
    assert_events_are(fake, ds, rows[:96])


def test_a_dry_run_reports_what_it_would_write_and_writes_nothing(fake, ds, base_config):
    config = events_config(base_config, delete_missing=True)
    rows = event_rows(5)
    run_target(config, with_references(events_messages(rows[:40])))
    fake.clear_requests()
    changed, _ = changed_five(rows)
    sent = [*changed[:40], *rows[40:]]
    messages = [*events_messages([r for r in sent if r["external_id"] != "ev-001-0"]),
                record(EVENTS_STREAM, {"external_id": "ev-001-0", "_sdc_deleted_at": DELETED_AT})]

    dry = run_target({**config, "dry_run": True}, messages)

    assert [r for r in fake.requests if r.method != "GET"] == []
    counts = dry.counts(EVENTS_STREAM)
    assert (counts["created"], counts["updated"], counts["deleted"]) == (10, 4, 1)
    assert_events_are(fake, ds, rows[:40])  # nothing changed
    real = run_target(config, messages)
    assert {k: real.counts(EVENTS_STREAM)[k] for k in ("created", "updated", "deleted")} == {
        "created": 10, "updated": 4, "deleted": 1}


def test_the_readme_recipe_for_a_subscription_changes_table_works(fake, ds, base_config):
    stream = "public-subscription_changes"
    props = {"change_id": STRING, "account_code": STRING, "subscription_code": STRING, "plan_code": STRING,
             "kind": STRING, "created_at": DATETIME, "effective_at": DATETIME, "currency": STRING, "price": NUMBER,
             "seats": INTEGER}
    row = {"change_id": "chg-1", "account_code": "acct-1", "subscription_code": "sub-1", "plan_code": "pl-basic",
           "kind": "subscription_start", "created_at": "2024-03-01T09:00:00+01:00", "effective_at": "2024-03-01",
           "currency": "EUR", "price": Decimal("99.90"), "seats": 3}

    result = run_target({**base_config, **readme_recipe(stream)},
                        with_references([schema(stream, props, ["change_id"]), raw_record(stream, row)]))

    assert result.rejects == []
    assert_events_are(fake, ds, [{"external_id": "chg-1", "customer_external_id": "acct-1",
                                  "subscription_external_id": "sub-1", "subscription_set_external_id": None,
                                  "plan_external_id": "pl-basic", "event_type": "subscription_start",
                                  "event_date": "2024-03-01T08:00:00Z", "effective_date": "2024-03-01T00:00:00Z",
                                  "currency": "EUR", "amount_in_cents": 9990, "quantity": 3}])


def test_events_refused_for_a_missing_customer_land_when_a_later_run_brings_it(fake, ds, base_config):
    config = events_config(base_config)
    rows = event_rows(1)  # all of acct-1

    first = run_target(config, [*plans_messages(), *events_messages(rows)])
    assert {(r["field"], r["reason"]) for r in first.rejects} == {
        ("customer_external_id", f'no customer with external_id "acct-1" in data source {ds}')}
    assert fake.subscription_events.items == {}

    later = run_target(config, customers_messages())  # the tap sends no event again: the refused ones are retried

    assert_events_are(fake, ds, rows)
    counts = later.counts(EVENTS_STREAM)
    assert (counts["retried"], counts["retry_refused"], counts["created"]) == (10, 0, 10)


def test_the_request_log_shows_each_event_write_with_its_body_and_never_the_key(fake, ds, base_config, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    config = events_config({**base_config, "request_log": str(log_path)})
    rows = event_rows(1)
    run_target(config, with_references(events_messages(rows)))
    rows[3] = {**rows[3], "quantity": 7}

    run_target(config, events_messages(rows))  # the second run appends to the same log

    entries = request_log(log_path, API_KEY)
    assert len(entries) == len(fake.requests)  # one line per request of both runs
    creates = logged_writes(entries, "POST", "subscription_events")
    assert sorted((status, body["subscription_event"]["external_id"]) for status, body in creates) == sorted(
        (201, row["external_id"]) for row in rows)
    updates = logged_writes(entries, "PATCH", "subscription_events")
    ids = event_ids(fake)  # a PATCH names its event by id
    assert [(status, ids[body["subscription_event"]["id"]], body["subscription_event"]["quantity"])
            for status, body in updates] == [(200, rows[3]["external_id"], 7)]
