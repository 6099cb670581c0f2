"""References not loaded yet cost one lookup each, not one per record (tap-postgres's alphabetical order)."""

from __future__ import annotations

import typing as t
from decimal import Decimal

import pytest

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.memory.references import matches
from tests.billing import (
    CUSTOMERS,
    INVOICES_STREAM,
    PLANS_STREAM,
    assert_invoice_matches,
    billing_config,
    customers_messages,
    invoices_messages,
    make_invoice,
    plans_messages,
)
from tests.helpers import reads
from tests.running import run_target

PLANS = [{"external_id": f"pl-{n}", "name": f"Plan {n}", "interval_count": 1, "interval_unit": "month"}
         for n in range(4)]


def many_invoices(count: int) -> list[dict[str, t.Any]]:
    invoices = []
    for n in range(count):
        account = CUSTOMERS[n % len(CUSTOMERS)]["external_id"]
        plan = PLANS[n % len(PLANS)]["external_id"]
        day = 1 + n % 27
        invoices.append(make_invoice(100 + n, account, plan, f"2024-01-{day:02d}T00:00:00+00:00",
                                 f"2024-02-{day:02d}T00:00:00+00:00", "9990", "0"))
    return invoices


@pytest.mark.parametrize("memory", ["empty", "holding-other-plans"])
def test_invoices_before_their_plans_cost_at_most_one_lookup_per_missing_plan(fake, ds, base_config, memory):
    config = billing_config(base_config, batch_size_rows=10, bulk_import="never")  # REST: each invoice waits
    if memory == "holding-other-plans":  # the memory knows this data source: no listing, lookups instead
        run_target(config, plans_messages([{"external_id": "pl-old", "name": "Old", "interval_count": 1,
                                            "interval_unit": "year"}]))
    fake.clear_requests()
    invoices = many_invoices(60)

    # accounts, invoices, then price_plans: the order tap-postgres sends them in
    result = run_target(config, [*customers_messages(), *invoices_messages(invoices), *plans_messages(PLANS)])

    assert result.rejects == []
    for invoice in invoices:
        assert_invoice_matches(fake, ds, invoice)
    counts = result.counts(INVOICES_STREAM)
    assert (counts["created"], counts["rejected"]) == (len(invoices), 0)
    assert result.counts(PLANS_STREAM)["created"] == len(PLANS)
    plan_reads = reads(fake, r"^/plans$")
    by_plan = [r.query.get("external_id") for r in plan_reads]
    if memory == "empty":
        assert by_plan == [None]  # one listing of the data source's plans, no lookup per plan
    else:
        assert sorted(by_plan) == sorted(p["external_id"] for p in PLANS)  # one lookup per missing plan


def test_a_reference_nothing_brings_is_looked_up_once_and_every_record_rejected(fake, ds, base_config):
    config = billing_config(base_config, batch_size_rows=5)
    run_target(config, plans_messages(PLANS))
    fake.clear_requests()
    invoices = [{**invoice, "line_items": [dict(invoice["line_items"][0], plan_external_id="pl-gone"),
                                           invoice["line_items"][1]]} for invoice in many_invoices(20)]

    result = run_target(config, [*customers_messages(), *invoices_messages(invoices)])

    assert len(reads(fake, r"^/plans$", query={"external_id": "pl-gone"})) == 1
    assert len(result.rejects) == 20
    assert {r["reason"] for r in result.rejects} == {f'no plan with external_id "pl-gone" in data source {ds}'}


def test_a_merged_customer_is_found_by_each_of_its_external_ids_in_its_own_data_source():
    # Shape recorded in chartmogul-ruby ChartMogul_Customer/API_Actions/with_pagination/paginates_correctly.yml
    merged = {"uuid": "cus_1", "external_id": "cus_002", "data_source_uuid": "ds_a",
              "external_ids": ["cus_002", "cus_009", "test_cus_ext_id"],
              "data_source_uuids": ["ds_a", "ds_a", "ds_b"]}
    assert external_ids_in(merged, "ds_a") == ["cus_002", "cus_009"]
    assert external_ids_in(merged, "ds_b") == ["test_cus_ext_id"]
    assert matches(merged, "ds_b", "test_cus_ext_id")
    assert not matches(merged, "ds_b", "cus_002")


def test_an_invoice_answer_without_a_data_source_is_trusted_to_the_lookup_filter():
    invoice = {"uuid": "inv_1", "external_id": "inv-9", "customer_uuid": "cus_1", "currency": "EUR",
               "amount": Decimal("1")}
    assert matches(invoice, "ds_a", "inv-9")
    assert not matches(invoice, "ds_a", "inv-8")
