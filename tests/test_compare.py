"""The one rule for "changed": ChartMogul's conventions are not differences, real edits are."""

from __future__ import annotations

import pytest

from target_chartmogul.values import compare


@pytest.mark.parametrize(
    ("ours", "held", "is_date", "same"),
    [
        (None, "", False, True),
        ("", None, False, True),
        ("Acme", "", False, False),
        (None, "Acme", False, False),
        ("2024-03-01T08:00:00Z", "2024-03-01T08:00:00.000Z", True, True),
        ("2024-03-01T10:00:00+02:00", "2024-03-01T08:00:00.000Z", True, True),
        ("2024-03-01T08:00:00.400Z", "2024-03-01T08:00:00.000Z", True, True),  # to the second
        ("2024-03-01T08:00:01Z", "2024-03-01T08:00:00.000Z", True, False),
        (1200, 1200, False, True),
        (0, None, False, False),
        (False, False, False, True),
        (False, 0, False, False),
        (True, "true", False, False),
    ],
)
def test_same_value(ours, held, is_date, same):
    assert compare.same_value(ours, held, is_date=is_date) is same


def test_customer_fields_chartmogul_does_not_echo_are_not_compared():
    held = {"name": "Acme", "email": "", "company": "", "city": None, "lead_created_at": "2015-11-01T00:00:00.000Z"}
    ours = {"name": "Acme", "email": None, "company": None, "city": "", "lead_created_at": "2015-11-01T00:00:00Z",
            "primary_contact": {"first_name": "Ann"}, "website_url": "https://acme.test"}
    assert compare.customer_changes(ours, held, ("lead_created_at",)) == []
    assert compare.customer_changes({**ours, "email": "a@acme.test"}, held, ("lead_created_at",)) == ["email"]


@pytest.mark.parametrize(
    ("wanted", "held", "owned", "exact", "add", "remove"),
    [
        (["VIP"], ["vip", "auto-churned-delinquent-subscription"], ["VIP"], False, [], []),
        (["VIP"], ["VIP", "eu", "merged-customer"], ["VIP", "eu"], False, [], ["eu"]),
        (["VIP"], ["VIP", "eu", "merged-customer"], None, False, [], []),  # nothing known to be ours
        (["VIP"], ["VIP", "eu", "merged-customer"], None, True, [], ["eu", "merged-customer"]),
        (["New", "vip"], ["VIP"], [], False, ["New"], []),
        ([], ["Eu"], ["eu"], False, [], ["Eu"]),  # removed as ChartMogul spells it
    ],
)
def test_tag_changes(wanted, held, owned, exact, add, remove):
    assert compare.tag_changes(wanted, held, owned, exact=exact) == (add, remove)


HELD_INVOICE = {
    "uuid": "inv_1",
    "external_id": "inv-1",
    "date": "2024-01-01T00:00:00.000Z",
    "due_date": None,
    "currency": "EUR",
    "line_items": [
        {"uuid": "li_2", "external_id": None, "type": "one_time", "description": "Setup", "amount_in_cents": 1500,
         "quantity": 1, "discount_code": "", "discount_amount_in_cents": 0, "tax_amount_in_cents": 0,
         "transaction_fees_in_cents": 0, "account_code": "", "transaction_fees_currency": None,
         "discount_description": None, "event_order": None},
        {"uuid": "li_1", "external_id": "li-1", "type": "subscription", "subscription_uuid": "sub_1",
         "subscription_external_id": "sub-1", "prorated": False, "proration_type": None,
         "service_period_start": "2024-01-01T00:00:00.000Z", "service_period_end": "2024-02-01T00:00:00.000Z",
         "plan_uuid": "pl_1", "amount_in_cents": -9990, "quantity": 1, "discount_code": "",
         "discount_amount_in_cents": 0, "tax_amount_in_cents": 0, "transaction_fees_in_cents": 0,
         "account_code": "", "transaction_fees_currency": None, "discount_description": None, "event_order": None},
    ],
    "transactions": [
        {"uuid": "tr_1", "external_id": "pay-1", "type": "payment", "date": "2024-01-01T00:00:00.000Z",
         "result": "successful", "amount_in_cents": None, "transaction_fees_in_cents": None,
         "transaction_fees_currency": None},
    ],
}
OUR_INVOICE = {
    "external_id": "inv-1",
    "date": "2024-01-01T01:00:00+01:00",
    "currency": "EUR",
    "data_source_uuid": "ds_1",
    "customer_external_id": "acct-1",
    "line_items": [
        {"type": "subscription", "subscription_external_id": "sub-1", "plan_uuid": "pl_1", "amount_in_cents": -9990,
         "service_period_start": "2024-01-01T00:00:00Z", "service_period_end": "2024-02-01T00:00:00Z",
         "external_id": "li-1", "prorated": False},
        {"type": "one_time", "amount_in_cents": 1500, "description": "Setup"},
    ],
    "transactions": [{"type": "payment", "result": "successful", "date": "2024-01-01T00:00:00Z",
                      "external_id": "pay-1"}],
}


def test_an_invoice_as_chartmogul_answers_it_equals_the_body_that_created_it():
    assert compare.invoice_changes(OUR_INVOICE, HELD_INVOICE) == []
    assert compare.missing_transactions(OUR_INVOICE["transactions"], HELD_INVOICE["transactions"]) == ([], [])


def test_invoice_corrections_are_named():
    changed = {**OUR_INVOICE, "currency": "USD",
               "line_items": [dict(OUR_INVOICE["line_items"][0], quantity=2), OUR_INVOICE["line_items"][1]]}
    assert compare.invoice_changes(changed, HELD_INVOICE) == ["currency", "line_items[li-1].quantity"]
    extra = {**OUR_INVOICE, "line_items": [*OUR_INVOICE["line_items"], {"type": "one_time", "amount_in_cents": 5}]}
    assert compare.invoice_changes(extra, HELD_INVOICE) == ["line_items[2] (no such line item in ChartMogul)"]
    fewer = {**OUR_INVOICE, "line_items": OUR_INVOICE["line_items"][:1]}
    assert compare.invoice_changes(fewer, HELD_INVOICE) == ["1 line item(s) only in ChartMogul"]


def test_missing_and_changed_transactions():
    refund = {"type": "refund", "result": "successful", "date": "2024-01-05T00:00:00Z", "external_id": "ref-1",
              "amount_in_cents": 100}
    failed = {**OUR_INVOICE["transactions"][0], "result": "failed"}
    missing, differing = compare.missing_transactions([failed, refund], HELD_INVOICE["transactions"])
    assert missing == [refund]
    assert differing == ["transactions[pay-1].result"]
    anonymous = {"type": "payment", "result": "successful", "date": "2024-01-01T00:00:00Z"}
    held = [{"uuid": "tr_9", "external_id": None, "type": "payment", "result": "successful",
             "date": "2024-01-01T00:00:00.000Z", "amount_in_cents": None}]
    assert compare.missing_transactions([anonymous], held) == ([], [])
    assert compare.missing_transactions([anonymous, anonymous], held) == ([anonymous], [])


def test_plan_changes():
    held = {"uuid": "pl_1", "name": "Basic", "interval_count": 1, "interval_unit": "month", "data_source_uuid": "d"}
    assert compare.plan_changes({"name": "Basic", "interval_count": 1, "interval_unit": "month"}, held) == {}
    assert compare.plan_changes({"name": "Basic 2", "interval_count": 1, "interval_unit": "month"}, held) == {
        "name": "Basic 2"}
