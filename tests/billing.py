"""Billing data shaped like tap-postgres output, its Singer messages, and checks of what ChartMogul holds.

Shared by every test that loads plans, customers, invoices and refunds: `billing-*`
stream names, nullable types, numeric columns arriving as decimals (`9990.00`),
timestamps with offsets, line items as a jsonb array and nested transactions as a json
text column. The checks compare what the fake holds with what was sent, field by field.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import typing as t
from decimal import Decimal

from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import DATETIME, INTEGER, NUMBER, STRING, customers_stream, schema

PLANS_STREAM = "billing-plans"
CUSTOMERS_STREAM = "billing-customers"
INVOICES_STREAM = "billing-invoices"
REFUNDS_STREAM = "billing-refunds"
IMPORT_PATH = r"^/import/customers/[^/]+/invoices$"
TRANSACTION_PATH = r"^/import/invoices/[^/]+/transactions$"

OBJECTS = {"type": ["array", "null"], "items": {"type": "object"}}
PLAN_PROPS = {"external_id": STRING, "name": STRING, "interval_count": INTEGER, "interval_unit": STRING}
# Invoices as a view over tap-postgres tables: the customer column is called account_code,
# line items come from a jsonb column, nested transactions from a json (text) column.
INVOICE_PROPS = {
    "external_id": STRING,
    "account_code": STRING,
    "date": DATETIME,
    "due_date": DATETIME,
    "currency": STRING,
    "collection_method": STRING,
    "line_items": OBJECTS,
    "transactions": STRING,
}
REFUND_PROPS = {
    "external_id": STRING,
    "invoice_ref": STRING,
    "type": STRING,
    "result": STRING,
    "date": DATETIME,
    "amount_in_cents": NUMBER,
    "transaction_fees_in_cents": NUMBER,
}
STREAM_MAPS = {
    INVOICES_STREAM: {"customer_external_id": "account_code", "account_code": None},
    REFUNDS_STREAM: {"invoice_external_id": "invoice_ref", "invoice_ref": None},
}

PLANS = [
    {"external_id": "pl-basic", "name": "Basic monthly", "interval_count": 1, "interval_unit": "month"},
    {"external_id": "pl-pro", "name": "Pro yearly", "interval_count": 1, "interval_unit": "year"},
]
CUSTOMERS = [
    {"external_id": "acct-1", "name": "Acme GmbH", "email": "billing@acme.test", "country": "DE"},
    {"external_id": "acct-2", "name": "Beta LLC", "email": "ops@beta.test", "country": "US"},
    {"external_id": "acct-3", "name": "Gamma SA", "email": "fin@gamma.test", "country": "FR"},
]


def make_invoice(n: int, account: str, plan: str, date: str, period_end: str, sub_cents: str, setup_cents: str,
             currency: str = "EUR", **extra: t.Any) -> dict[str, t.Any]:
    sub, setup = Decimal(sub_cents), Decimal(setup_cents)
    return {
        "external_id": f"inv-{n}",
        "account_code": account,
        "date": date,
        "due_date": None,
        "currency": currency,
        "collection_method": "automatic",
        "line_items": [
            {"type": "subscription", "subscription_external_id": f"sub-{account}", "plan_external_id": plan,
             "service_period_start": date, "service_period_end": period_end, "amount_in_cents": sub,
             "quantity": 1, "external_id": f"li-{n}-1", "description": f"{plan} subscription",
             "tax_amount_in_cents": Decimal("1900.00"), "discount_amount_in_cents": Decimal("0")},
            {"type": "one_time", "amount_in_cents": setup, "quantity": 2, "external_id": f"li-{n}-2",
             "description": "Onboarding session"},
        ],
        "transactions": [
            {"type": "payment", "result": "successful", "date": date, "external_id": f"pay-{n}",
             "amount_in_cents": sub + setup},
        ],
        **extra,
    }


INVOICES = [
    make_invoice(1, "acct-1", "pl-basic", "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "9990.00", "1500",
             due_date="2024-01-15T00:00:00+00:00"),
    make_invoice(2, "acct-1", "pl-basic", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00", "9990.00", "0.0"),
    # An offset other than UTC: ChartMogul holds it as 2024-01-31T23:30:00Z.
    make_invoice(3, "acct-2", "pl-pro", "2024-02-01T01:30:00+02:00", "2025-02-01T01:30:00+02:00", "120000.00", "25000",
             currency="usd", collection_method="manual"),
    make_invoice(4, "acct-3", "pl-basic", "2024-03-10T12:00:00+00:00", "2024-04-10T12:00:00+00:00", "9990", "1500.00"),
]
REFUNDS = [
    {"external_id": "ref-1", "invoice_ref": "inv-1", "type": "refund", "result": "successful",
     "date": "2024-01-20T09:15:00+01:00", "amount_in_cents": Decimal("2500.00"),
     "transaction_fees_in_cents": Decimal("30.00")},
    {"external_id": "ref-3", "invoice_ref": "inv-3", "type": "refund", "result": "failed",
     "date": "2024-02-03T10:00:00+00:00", "amount_in_cents": Decimal("145000"), "transaction_fees_in_cents": None},
]


# ---------------------------------------------------------------------------------- encoding


def encode(value: t.Any) -> str:
    """JSON with Decimals written as numbers exactly as given (`9990.00`), as tap-postgres does."""

    def default(obj: t.Any) -> t.Any:
        if isinstance(obj, Decimal):
            return f"@@dec:{obj}@@"
        raise TypeError(type(obj).__name__)

    return re.sub(r'"@@dec:([-+0-9.Ee]+)@@"', r"\1", json.dumps(value, default=default))


def raw_record(stream: str, row: dict[str, t.Any]) -> str:
    return encode({"type": "RECORD", "stream": stream, "record": row})


def invoice_row(invoice: dict[str, t.Any]) -> dict[str, t.Any]:
    """The row as the tap sends it: nested transactions in a json text column."""
    row = dict(invoice)
    if isinstance(row.get("transactions"), list):
        row["transactions"] = encode(row["transactions"])
    return row


def plans_messages(plans: t.Sequence[dict[str, t.Any]] = PLANS) -> list[t.Any]:
    return [schema(PLANS_STREAM, PLAN_PROPS), *(raw_record(PLANS_STREAM, p) for p in plans)]


def customers_messages(customers: t.Sequence[dict[str, t.Any]] = CUSTOMERS) -> list[t.Any]:
    return customers_stream(CUSTOMERS_STREAM, customers)


def invoices_messages(invoices: t.Sequence[dict[str, t.Any]] = INVOICES, stream: str = INVOICES_STREAM,
                      props: dict[str, t.Any] | None = None) -> list[t.Any]:
    return [schema(stream, props or INVOICE_PROPS), *(raw_record(stream, invoice_row(i)) for i in invoices)]


def refunds_messages(refunds: t.Sequence[dict[str, t.Any]] = REFUNDS) -> list[t.Any]:
    return [schema(REFUNDS_STREAM, REFUND_PROPS), *(raw_record(REFUNDS_STREAM, r) for r in refunds)]


def billing_messages(order: t.Sequence[str] = ("plans", "customers", "invoices", "refunds")) -> list[t.Any]:
    parts = {"plans": plans_messages, "customers": customers_messages, "invoices": invoices_messages,
             "refunds": refunds_messages}
    return [message for name in order for message in parts[name]()]


def billing_config(base_config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {**base_config, "stream_maps": copy.deepcopy(STREAM_MAPS),
            "streams": {REFUNDS_STREAM: {"object": "transactions"}}, **extra}


# ---------------------------------------------------------------------------------- checks


def instant(value: t.Any) -> dt.datetime:
    """Parse an ISO-8601 time (`Z` or offset) to an aware UTC datetime."""
    assert isinstance(value, str), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed.astimezone(dt.timezone.utc)


def cents_of(value: t.Any) -> int | None:
    if value is None:
        return None
    number = Decimal(str(value))
    assert number == number.to_integral_value()
    return int(number)


def assert_same_amount(held: t.Any, sent: t.Any, where: str) -> None:
    assert type(held) is int, f"{where}: {held!r} is not an integer"
    assert held == cents_of(sent), f"{where}: held {held!r}, sent {sent!r}"


def one_customer_uuid(fake: FakeChartMogul, ds: str, external_id: str) -> str:
    found = fake.find_customers(ds, external_id)
    assert len(found) == 1, f"expected one customer {external_id}, found {len(found)}"
    return str(found[0]["uuid"])


def transactions_by_external_id(fake: FakeChartMogul) -> dict[str, list[dict[str, t.Any]]]:
    by_ext: dict[str, list[dict[str, t.Any]]] = {}
    with fake.lock:
        for tx in fake.transactions.values():
            by_ext.setdefault(tx["external_id"], []).append(copy.deepcopy(tx))
    return by_ext


def assert_invoice_matches(fake: FakeChartMogul, ds: str, sent: dict[str, t.Any]) -> dict[str, t.Any]:
    """The invoice ChartMogul holds equals the row, line by line and amount by amount."""
    ext = sent["external_id"]
    held = fake.find_invoice(ds, ext)
    assert held is not None, f"invoice {ext} is missing"
    where = f"invoice {ext}"
    assert held["customer_uuid"] == one_customer_uuid(fake, ds, sent["account_code"]), where
    assert held["data_source_uuid"] == ds, where
    assert instant(held["date"]) == instant(sent["date"]), where
    if sent.get("due_date"):
        assert instant(held["due_date"]) == instant(sent["due_date"]), where
    else:
        assert held["due_date"] is None, where
    assert held["currency"] == sent["currency"].upper(), where
    assert held["collection_method"] == sent["collection_method"], where

    items = {item["external_id"]: item for item in held["line_items"]}
    assert len(held["line_items"]) == len(sent["line_items"]), where
    assert set(items) == {item["external_id"] for item in sent["line_items"]}, where
    for line in sent["line_items"]:
        item = items[line["external_id"]]
        at = f"{where} line item {line['external_id']}"
        assert item["type"] == line["type"], at
        assert item["description"] == line["description"], at
        assert item["quantity"] == line["quantity"], at
        for name in ("amount_in_cents", "tax_amount_in_cents", "discount_amount_in_cents"):
            if name in line:
                assert_same_amount(item.get(name), line[name], f"{at} {name}")
        if line["type"] == "subscription":
            plan = fake.find_plan(ds, line["plan_external_id"])
            assert plan is not None, at
            assert item["plan_uuid"] == plan["uuid"], at
            assert item["subscription_external_id"] == line["subscription_external_id"], at
            assert instant(item["service_period_start"]) == instant(line["service_period_start"]), at
            assert instant(item["service_period_end"]) == instant(line["service_period_end"]), at

    nested = {tx["external_id"]: tx for tx in held["transactions"]}
    for sent_tx in sent.get("transactions") or []:
        tx = nested.get(sent_tx["external_id"])
        at = f"{where} transaction {sent_tx['external_id']}"
        assert tx is not None, f"{at} is missing"
        assert (tx["type"], tx["result"]) == (sent_tx["type"], sent_tx["result"]), at
        assert instant(tx["date"]) == instant(sent_tx["date"]), at
        assert_same_amount(tx["amount_in_cents"], sent_tx["amount_in_cents"], at)
    return held


def assert_refund_matches(fake: FakeChartMogul, ds: str, sent: dict[str, t.Any]) -> None:
    found = transactions_by_external_id(fake).get(sent["external_id"], [])
    assert len(found) == 1, f"transaction {sent['external_id']}: {len(found)} copies"
    tx = found[0]
    at = f"transaction {sent['external_id']}"
    assert (tx["type"], tx["result"]) == (sent["type"], sent["result"]), at
    assert instant(tx["date"]) == instant(sent["date"]), at
    assert_same_amount(tx["amount_in_cents"], sent["amount_in_cents"], f"{at} amount_in_cents")
    if sent.get("transaction_fees_in_cents") is not None:
        assert_same_amount(tx["transaction_fees_in_cents"], sent["transaction_fees_in_cents"], f"{at} fees")
    invoice = fake.find_invoice(ds, sent["invoice_ref"])
    assert invoice is not None, at
    assert tx["uuid"] in {x["uuid"] for x in invoice["transactions"]}, f"{at} is not on {sent['invoice_ref']}"


def assert_billing_landed(fake: FakeChartMogul, ds: str) -> None:
    """Everything of the standard input is in ChartMogul exactly once, as sent."""
    for sent_plan in PLANS:
        plan = fake.find_plan(ds, sent_plan["external_id"])
        assert plan is not None, sent_plan["external_id"]
        assert {k: plan[k] for k in sent_plan} == sent_plan
    assert len(fake.plans) == len(PLANS)
    for sent_customer in CUSTOMERS:
        found = fake.find_customers(ds, sent_customer["external_id"])
        assert len(found) == 1 and found[0]["name"] == sent_customer["name"], sent_customer["external_id"]
    assert len(fake.customers) == len(CUSTOMERS)
    for sent in INVOICES:
        assert_invoice_matches(fake, ds, sent)
    assert len(fake.invoices) == len(INVOICES)
    for refund in REFUNDS:
        assert_refund_matches(fake, ds, refund)
    by_ext = transactions_by_external_id(fake)
    expected = [tx["external_id"] for i in INVOICES for tx in i["transactions"]] + [r["external_id"] for r in REFUNDS]
    assert sorted(by_ext) == sorted(expected)
    assert all(len(copies) == 1 for copies in by_ext.values()), {k: len(v) for k, v in by_ext.items()}
    assert len(fake.transactions) == len(expected)


def assert_all_created(result: t.Any) -> None:
    expected = {PLANS_STREAM: len(PLANS), CUSTOMERS_STREAM: len(CUSTOMERS), INVOICES_STREAM: len(INVOICES),
                REFUNDS_STREAM: len(REFUNDS)}
    for stream, n in expected.items():
        counts = result.counts(stream)
        assert (counts["received"], counts["created"], counts["rejected"]) == (n, n, 0), (stream, counts)


def import_calls(fake: FakeChartMogul) -> list[t.Any]:
    return [r for r in fake.requests if r.method == "POST" and re.search(IMPORT_PATH, r.path)]
