"""Two paths to one outcome: a first load leaves ChartMogul the same through the bulk import and through REST.

Each scenario (tests/first_load.py) runs once with `bulk_import: always` and once with `never`, each on a fresh fake
ChartMogul with a fresh sync memory; neither first run may reject a record, and what the two fakes hold must be equal
(tests/lanes.py). The data is what users have: every standard field, nulls, empty strings, umlauts and Japanese,
custom attributes of every type, tags, streams sorted by name as tap-postgres sends them (plans after the invoices).
The last tests show that the comparison can fail.
"""

from __future__ import annotations

import logging
import typing as t

import pytest

from tests import first_load
from tests.fake_chartmogul import FakeChartMogul
from tests.lanes import (
    Run,
    assert_same_in_both_lanes,
    assert_same_snapshots,
    differences,
    json_import_switches,
    rest_writes_per_customer,
    snapshot,
)
from tests.running import API_KEY

# scenario -> what ChartMogul then holds, in numbers (so that a scenario whose records went nowhere cannot pass)
SCENARIOS: dict[str, tuple[t.Callable[[], Run], dict[str, int]]] = {
    "customers-every-field": (first_load.customers_scenario, {"customers": 15}),
    "invoices-with-nested-lines": (first_load.nested_invoices_scenario,
                                   {"customers": 12, "plans": 3, "invoices": 24}),
    "invoices-with-lines-of-their-own-stream": (first_load.line_items_stream_scenario,
                                                {"customers": 12, "plans": 3, "invoices": 24}),
    "refunds-of-their-own-stream": (first_load.refunds_scenario, {"customers": 12, "plans": 3, "invoices": 24}),
    "subscription-events": (first_load.events_scenario, {"customers": 9, "plans": 3, "subscription_events": 90}),
    "contacts": (first_load.contacts_scenario, {"customers": 9, "contacts": 22}),
}


def sizes(held: dict[str, t.Any]) -> dict[str, int]:
    return {name: len(objects) for name, objects in held.items() if objects}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_first_load_ends_the_same_through_bulk_and_rest(name, tmp_path):
    scenario, expected = SCENARIOS[name]

    lanes = assert_same_in_both_lanes(scenario, tmp_path)

    lanes.assert_bulk_used()
    assert sizes(lanes.rest.snapshot) == expected


def test_customers_with_the_nine_documented_fields_end_the_same(tmp_path):
    lanes = assert_same_in_both_lanes(first_load.customers_nine_fields_scenario, tmp_path)

    lanes.assert_bulk_used()
    assert sizes(lanes.bulk.snapshot) == {"customers": 12}
    assert lanes.bulk.snapshot["customers"]["acct-0001"]["name"] == "株式会社サンプル 1"


def test_every_billing_object_of_customers_with_the_nine_documented_fields_ends_the_same(tmp_path):
    lanes = assert_same_in_both_lanes(first_load.billing_nine_fields_scenario, tmp_path)

    lanes.assert_bulk_used()
    assert sizes(lanes.bulk.snapshot) == {"customers": 12, "plans": 3, "invoices": 48, "subscription_events": 60}
    refunds = [tx for inv in lanes.bulk.snapshot["invoices"].values() for tx in inv["transactions"].values()
               if tx["type"] == "refund"]
    assert len(refunds) == 7


@pytest.mark.parametrize("switches", [
    {"status_shape": "counts"},
    {"failure_detail": "bare", "queue_delay": 0.05},
], ids=["counts", "bare-queued"])
def test_the_lanes_run_under_the_fakes_switches(switches, tmp_path):
    lanes = assert_same_in_both_lanes(first_load.billing_nine_fields_scenario, tmp_path,
                                      configure=json_import_switches(**switches))

    assert all(getattr(lanes.bulk.fake.json_imports, name) == value for name, value in switches.items())
    with pytest.raises(AttributeError, match="no switch 'bulk_atributes'"):
        json_import_switches(bulk_atributes="kept")(lanes.bulk.fake)


def test_no_customer_costs_two_rest_writes_in_the_bulk_lane(tmp_path):
    lanes = assert_same_in_both_lanes(first_load.customers_nine_fields_with_attributes_scenario, tmp_path)

    assert rest_writes_per_customer(lanes.rest) == dict.fromkeys(lanes.rest.snapshot["customers"], 1)
    costly = sorted((customer, n) for customer, n in rest_writes_per_customer(lanes.bulk).items() if n > 1)
    assert not costly, (f"{len(costly)} of {len(lanes.bulk.snapshot['customers'])} customers cost two or more REST "
                        f"writes in the bulk lane, e.g. {costly[:3]}")


@pytest.mark.parametrize("listing_order", ["recorded", "created"])
@pytest.mark.parametrize("bulk", ["auto", "always"])
def test_a_first_load_of_250_customers_with_everything_ends_the_same(bulk, listing_order, tmp_path, caplog):
    """Whichever order ChartMogul lists invoices and events in: newest first (recorded), where the bulk lane reads
    them as its imports finish and needs no full listing, or oldest first, where it lists them in full."""
    caplog.set_level(logging.INFO)
    lanes = assert_same_in_both_lanes(first_load.first_load_scenario, tmp_path, bulk=bulk,
                                      configure=lambda fake: setattr(fake, "listing_order", listing_order))

    full = {kind for kind in ("invoices", "subscription_events")
            if f"listing of {kind} did not begin with what the imports brought" in caplog.text}
    assert full == (set() if listing_order == "recorded" else {"invoices", "subscription_events"})
    assert "did not see all that the imports brought" not in caplog.text

    lanes.assert_bulk_used()  # with auto too: 250 customers and their records are above bulk_min_records
    held = lanes.rest.snapshot
    assert len(held["customers"]) == 250
    assert {name: len(held[name]) > 0 for name in held} == dict.fromkeys(held, True)


def test_a_second_run_with_changes_ends_the_same(tmp_path):
    def scenario() -> list[Run]:
        first = first_load.nested_invoices_scenario()
        rows = [first_load.account_row(i) for i in range(12)]
        changed = [{**row, "name": f"{row['name']} (neu)", "website_url": None, "seats": 99, "tags": ["VIP"]}
                   if i % 4 == 0 else row for i, row in enumerate(rows)]
        later = first_load.nested_invoices(first_load.ids(rows)[:3], each=1, first=100)
        return [first, Run([*first_load.accounts_messages(changed), *first_load.nested_messages(later)],
                           first.config)]

    lanes = assert_same_in_both_lanes(scenario, tmp_path)

    assert lanes.rest.snapshot["customers"]["acct-0004"]["custom"]["seats"] == {"type": "Integer", "value": 99}


# ---------------------------------------------------------------------------------- the comparison can fail


def _two_fakes() -> tuple[FakeChartMogul, FakeChartMogul]:
    left, right = FakeChartMogul(api_key=API_KEY), FakeChartMogul(api_key=API_KEY)
    for fake in (left, right):
        fake.add_data_source("warehouse", "ds_same")
    return left, right


def _customer(fake: FakeChartMogul, **fields: t.Any) -> None:
    fake.store.create_customer({"data_source_uuid": "ds_same", "external_id": "c-1", "name": "Ada", **fields})


def test_the_comparison_names_an_attribute_held_with_another_type():
    left, right = _two_fakes()
    _customer(left, attributes={"custom": [{"type": "Integer", "key": "seats", "value": 5}], "tags": ["VIP"]})
    _customer(right, attributes={"custom": [{"type": "Decimal", "key": "seats", "value": 5}], "tags": ["vip"]})

    with pytest.raises(AssertionError) as failure:
        assert_same_snapshots(snapshot(left, "ds_same"), snapshot(right, "ds_same"))

    assert str(failure.value).splitlines() == [
        "bulk and rest differ in 1 places:",
        '  customers[c-1].custom.seats.type: bulk "Integer", rest "Decimal"',
    ]


def test_blank_and_null_are_alike_only_where_chartmogul_answers_them_alike():
    left, right = _two_fakes()
    _customer(left, email="", company=None, city="", website_url="")
    _customer(right, email=None, company="", city=None, website_url=None)

    found = differences(snapshot(left, "ds_same"), snapshot(right, "ds_same"))

    assert found == ['customers[c-1].website_url: bulk "", rest <absent>']


def test_the_comparison_names_a_missing_invoice_and_a_line_that_differs():
    left, right = _two_fakes()
    for fake, amount in ((left, 1000), (right, 1200)):
        _customer(fake)
        plan = fake.store.create_plan({"data_source_uuid": "ds_same", "external_id": "pl-1", "name": "Basic",
                                       "interval_count": 1, "interval_unit": "month"})
        customer = fake.find_customers("ds_same", "c-1")[0]["uuid"]
        line = {"type": "subscription", "external_id": "li-1", "plan_uuid": plan["uuid"], "amount_in_cents": amount,
                "subscription_external_id": "s-1", "service_period_start": "2024-01-01",
                "service_period_end": "2024-02-01"}
        invoices = [{"external_id": "inv-1", "date": "2024-01-01", "currency": "EUR", "line_items": [line]}]
        if fake is right:
            invoices.append({**invoices[0], "external_id": "inv-2", "line_items": [{**line, "external_id": "li-2"}]})
        assert fake.store.import_invoices(customer, invoices)[0] == 201

    found = differences(snapshot(left, "ds_same"), snapshot(right, "ds_same"))

    assert found[0] == "invoices[inv-1].line_items[li-1].amount_in_cents: bulk 1000, rest 1200"
    assert found[1].startswith('invoices[inv-2]: bulk <absent>, rest {"customer": "c-1", "customer_external_id": "c-1", ')
    assert len(found) == 2


def test_a_reject_in_a_first_run_fails_the_lanes_even_when_they_agree(tmp_path):
    def scenario() -> Run:
        rows = [first_load.nine_field_row(i) for i in range(2)]
        orphan = first_load.nested_invoice(1, "acct-9999")  # a customer neither the input nor ChartMogul has
        return Run([*first_load.accounts_messages(rows, extra=False), *first_load.nested_messages([orphan]),
                    *first_load.plans_messages()],
                   {"streams": {first_load.ACCOUNTS: {"object": "customers"}, **first_load.nested_config()}})

    with pytest.raises(AssertionError) as failure:
        assert_same_in_both_lanes(scenario, tmp_path)

    lines = str(failure.value).splitlines()
    assert lines[0].startswith(f"always lane: the first run rejected 1 records ({first_load.NESTED}: 1), e.g. "
                               f"{first_load.NESTED}")
    assert lines[1].startswith(f"never lane: the first run rejected 1 records ({first_load.NESTED}: 1)")
    assert len(lines) == 2  # the two fakes hold the same: no difference reported
