"""Plans, invoices and transactions through real HTTP against the fake API.

The input is shaped like tap-postgres output: `schema-table` stream names, nullable
types, numeric columns arriving as decimals (`9990.00`), timestamps with offsets,
line items as a jsonb array and nested transactions as a json text column.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
import re
import shutil
import typing as t
from decimal import Decimal

import pytest

from target_chartmogul.target import TargetChartMogul
from tests.conftest import run_target
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import DATETIME, INTEGER, NUMBER, STRING, customers_stream, lines, schema, state

PLANS_STREAM = "billing-plans"
CUSTOMERS_STREAM = "billing-customers"
INVOICES_STREAM = "billing-invoices"
REFUNDS_STREAM = "billing-refunds"
IMPORT_PATH = r"^/import/customers/[^/]+/invoices$"

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


def _invoice(n: int, account: str, plan: str, date: str, period_end: str, sub_cents: str, setup_cents: str,
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
    _invoice(1, "acct-1", "pl-basic", "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "9990.00", "1500",
             due_date="2024-01-15T00:00:00+00:00"),
    _invoice(2, "acct-1", "pl-basic", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00", "9990.00", "0.0"),
    # An offset other than UTC: ChartMogul holds it as 2024-01-31T23:30:00Z.
    _invoice(3, "acct-2", "pl-pro", "2024-02-01T01:30:00+02:00", "2025-02-01T01:30:00+02:00", "120000.00", "25000",
             currency="usd", collection_method="manual"),
    _invoice(4, "acct-3", "pl-basic", "2024-03-10T12:00:00+00:00", "2024-04-10T12:00:00+00:00", "9990", "1500.00"),
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


# ---------------------------------------------------------------------------------- 1. full run


def test_tap_postgres_shaped_run_lands_line_by_line(fake, ds, base_config):
    result = run_target(billing_config(base_config), billing_messages())

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


def test_line_items_as_json_text_column(fake, ds, base_config):
    props = {**INVOICE_PROPS, "line_items": STRING}
    invoice = INVOICES[0]
    row = {**invoice_row(invoice), "line_items": encode(invoice["line_items"])}
    messages = [*plans_messages(), *customers_messages(),
                schema(INVOICES_STREAM, props), raw_record(INVOICES_STREAM, row)]
    result = run_target(billing_config(base_config), messages)

    assert result.rejects == []
    assert_invoice_matches(fake, ds, invoice)
    assert result.counts(INVOICES_STREAM)["created"] == 1


# ---------------------------------------------------------------------------------- 2. replay


def test_replay_with_working_directory_wiped_duplicates_and_changes_nothing(fake, ds, base_config, tmp_path,
                                                                            monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # The working directory holds the rejects file and the sync memory: both are wiped.
    config = billing_config(base_config, rejects_path=str(work / "rejects.jsonl"),
                            ledger_url=f"sqlite:///{work / 'ledger.db'}")
    first = run_target(config, billing_messages())
    assert first.rejects == []
    before = fake.dump_state()

    shutil.rmtree(work)
    work.mkdir()
    fake.clear_requests()
    second = run_target(config, billing_messages())

    assert second.rejects == []
    assert fake.dump_state() == before  # nothing duplicated, nothing changed
    assert (len(fake.plans), len(fake.customers), len(fake.invoices), len(fake.transactions)) == (
        len(PLANS), len(CUSTOMERS), len(INVOICES), len(INVOICES) + len(REFUNDS))
    assert_billing_landed(fake, ds)
    invoices = second.counts(INVOICES_STREAM)
    assert (invoices["unchanged"], invoices["created"], invoices["rejected"]) == (len(INVOICES), 0, 0)
    refunds = second.counts(REFUNDS_STREAM)
    assert (refunds["unchanged"], refunds["created"], refunds["rejected"]) == (len(REFUNDS), 0, 0)
    assert second.counts(PLANS_STREAM)["unchanged"] == len(PLANS)
    assert second.counts(CUSTOMERS_STREAM)["unchanged"] == len(CUSTOMERS)
    assert [r for r in fake.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")] == []


def test_replay_adds_nested_transactions_missing_from_an_existing_invoice(fake, ds, base_config):
    config = billing_config(base_config)
    invoice = INVOICES[0]
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages([invoice])])
    held_before = fake.find_invoice(ds, invoice["external_id"])
    assert held_before is not None

    second_payment = {"type": "payment", "result": "successful", "date": "2024-01-10T08:00:00+00:00",
                      "external_id": "pay-1b", "amount_in_cents": Decimal("100.00")}
    replayed = {**invoice, "transactions": [*invoice["transactions"], second_payment]}
    result = run_target(config, invoices_messages([replayed]))

    assert result.rejects == []
    assert len(fake.invoices) == 1
    held = assert_invoice_matches(fake, ds, replayed)
    assert held["uuid"] == held_before["uuid"]
    by_ext = transactions_by_external_id(fake)
    assert sorted(by_ext) == ["pay-1", "pay-1b"]
    assert all(len(copies) == 1 for copies in by_ext.values())
    assert by_ext["pay-1"][0]["uuid"] == held_before["transactions"][0]["uuid"]  # the old one was kept, not redone
    counts = result.counts(INVOICES_STREAM)
    assert counts["created"] == 0 and counts["already_present"] + counts["updated"] == 1, counts


# ---------------------------------------------------------------------------------- 3. order


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("refunds", "invoices", "customers", "plans"), id="reversed"),
        pytest.param(("invoices", "plans", "refunds", "customers"), id="invoices-first"),
        pytest.param(("customers", "refunds", "invoices", "plans"), id="plans-last"),
    ],
)
def test_dependencies_are_written_first_whatever_the_stream_order(fake, ds, base_config, order):
    result = run_target(billing_config(base_config), billing_messages(order))

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


def test_invoices_drained_before_their_customers_arrive_still_land(fake, ds, base_config):
    # With two rows per batch the invoices sink is full, and drains, twice before the
    # customers' or plans' SCHEMA has even been read.
    config = billing_config(base_config, batch_size_rows=2)
    result = run_target(config, billing_messages(("invoices", "refunds", "customers", "plans")))

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


class StateProbe(io.StringIO):
    """Stdout that notes what ChartMogul held at the moment each STATE line was written."""

    def __init__(self, fake: FakeChartMogul) -> None:
        super().__init__()
        self.fake = fake
        self.seen: list[tuple[dict[str, t.Any], int, int]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                with self.fake.lock:
                    self.seen.append((json.loads(line), len(self.fake.invoices), len(self.fake.transactions)))
        return super().write(text)


def test_state_is_not_emitted_while_invoices_wait_for_their_customers(fake, ds, base_config):
    config = billing_config(base_config, batch_size_rows=2)
    messages = [*billing_messages(("invoices", "refunds")), state({"bookmarks": {"step": 1}}),
                *billing_messages(("customers", "plans")), state({"bookmarks": {"step": 2}})]
    probe = StateProbe(fake)
    with contextlib.redirect_stdout(probe):
        target = TargetChartMogul(config=config, validate_config=True)
        # As in a long run where records outgrow the SDK's max age: every record drains all
        # sinks and writes the latest STATE, so a STATE has every chance to go out too early.
        target._MAX_RECORD_AGE_IN_MINUTES = -1.0
        target.listen(io.StringIO(lines(messages)))

    assert_billing_landed(fake, ds)
    assert probe.seen, "no STATE was emitted at all"
    assert probe.seen[-1][0] == {"bookmarks": {"step": 2}}
    # Every STATE here follows all invoices and refunds, so it may only go out once they are in ChartMogul.
    for emitted, invoices, transactions in probe.seen:
        assert (invoices, transactions) == (len(INVOICES), len(INVOICES) + len(REFUNDS)), emitted


def test_references_already_in_chartmogul_resolve_without_being_in_the_run(fake, ds, base_config):
    config = billing_config(base_config)
    run_target(config, billing_messages(("plans", "customers", "invoices")))
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    pro = fake.find_plan(ds, "pl-pro")
    assert pro is not None

    later = _invoice(5, "acct-1", "pl-basic", "2024-04-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00", "9990", "0")
    by_uuid = _invoice(6, "acct-2", "pl-pro", "2025-02-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "120000",
                       "0")
    by_uuid_row = {**by_uuid, "account_code": None, "customer_uuid": acct_2}
    by_uuid_row["line_items"] = [dict(by_uuid["line_items"][0], plan_external_id=None, plan_uuid=pro["uuid"]),
                                 by_uuid["line_items"][1]]
    props = {**INVOICE_PROPS, "customer_uuid": STRING}
    messages = [*invoices_messages([later, by_uuid_row], props=props), *refunds_messages()]
    result = run_target(config, messages)

    assert result.rejects == []
    assert_invoice_matches(fake, ds, later)
    assert_invoice_matches(fake, ds, {**by_uuid, "account_code": "acct-2"})
    for refund in REFUNDS:
        assert_refund_matches(fake, ds, refund)
    assert len(fake.invoices) == len(INVOICES) + 2
    assert result.counts(INVOICES_STREAM)["created"] == 2
    assert result.counts(REFUNDS_STREAM)["created"] == len(REFUNDS)


# ---------------------------------------------------------------------------------- 4. batch modes


def _batch_invoice(n: int, line_external_id: str | None = None, plan_uuid: str | None = None) -> dict[str, t.Any]:
    invoice = _invoice(n, "acct-1", "pl-basic", f"2024-0{n}-01T00:00:00+00:00", f"2024-0{n + 1}-01T00:00:00+00:00",
                       "9990", "1500")
    invoice["transactions"] = []
    if line_external_id is not None:
        invoice["line_items"][1]["external_id"] = line_external_id
    if plan_uuid is not None:
        invoice["line_items"][0] = dict(invoice["line_items"][0], plan_external_id=None, plan_uuid=plan_uuid)
    return invoice


@pytest.mark.parametrize("mode", ["save_valid", "save_none"])
@pytest.mark.parametrize(
    ("bad", "api_message"),
    [
        pytest.param({"line_external_id": "li-taken"}, "The external ID for this line item already exists in our "
                     "system.", id="line-item-external-id-taken"),
        pytest.param({"plan_uuid": "pl_00000000000000000000000000000000"}, "Plan not found", id="unknown-plan-uuid"),
    ],
)
def test_one_refused_invoice_in_a_batch_does_not_lose_the_others(fake, ds, base_config, mode, bad, api_message):
    config = billing_config(base_config)
    taken = _invoice(9, "acct-1", "pl-basic", "2023-12-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00", "9990", "0")
    taken["line_items"][1]["external_id"] = "li-taken"
    taken["transactions"] = []
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages([taken])])
    assert len(fake.invoices) == 1
    fake.invoice_batch_mode = mode
    fake.clear_requests()

    batch = [_batch_invoice(n, **(bad if n == 3 else {})) for n in range(1, 6)]
    result = run_target(config, invoices_messages(batch))

    good = [i for i in batch if i["external_id"] != "inv-3"]
    for invoice in good:
        assert_invoice_matches(fake, ds, invoice)
    assert fake.find_invoice(ds, "inv-3") is None
    assert len(fake.invoices) == 1 + len(good)
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert reject["record"]["external_id"] == "inv-3"
    assert reject["key"] == {"external_id": "inv-3"}
    assert api_message in reject["reason"]
    assert reject["status"] == 422
    assert fake.count("POST", IMPORT_PATH, status=422) >= 1  # the API, not the target, found the fault
    counts = result.counts(INVOICES_STREAM)
    assert (counts["received"], counts["created"], counts["rejected"]) == (5, 4, 1), counts
    # they went out together: at least one import call carried several of them
    assert any(len(r.body["invoices"]) > 1 for r in import_calls(fake))


# ---------------------------------------------------------------------------------- 6. bad rows


def test_bad_rows_are_rejected_naming_the_field_and_the_rest_lands(fake, ds, base_config):
    good = INVOICES[0]

    def variant(ext: str, **changes: t.Any) -> dict[str, t.Any]:
        row = copy.deepcopy(good)
        row.update(external_id=ext, transactions=[])
        for item in row["line_items"]:
            item["external_id"] = f"{ext}-{item['external_id']}"
        row.update(changes)
        return row

    fractional = variant("inv-frac")
    fractional["line_items"][0]["amount_in_cents"] = Decimal("12.5")
    unknown_plan = variant("inv-noplan")
    unknown_plan["line_items"][0]["plan_external_id"] = "pl-x"
    invoices = [good, variant("inv-euro", currency="euro"), variant("inv-empty", line_items=[]), fractional,
                unknown_plan, variant("inv-nocust", account_code="acct-9")]
    refunds = [
        REFUNDS[0],
        {**REFUNDS[0], "external_id": "ref-ghost", "invoice_ref": "inv-x"},
        {**REFUNDS[0], "external_id": "ref-cb", "type": "chargeback"},
    ]
    messages = [*plans_messages(), *customers_messages(), *invoices_messages(invoices), *refunds_messages(refunds)]
    result = run_target(billing_config(base_config), messages)

    assert_invoice_matches(fake, ds, good)
    assert_refund_matches(fake, ds, REFUNDS[0])
    assert len(fake.invoices) == 1
    assert sorted(transactions_by_external_id(fake)) == ["pay-1", "ref-1"]

    assert all(set(r) == {"time", "stream", "key", "field", "reason", "status", "record"} for r in result.rejects)
    by_ext = {r["record"]["external_id"]: r for r in result.rejects}
    assert sorted(by_ext) == ["inv-empty", "inv-euro", "inv-frac", "inv-nocust", "inv-noplan", "ref-cb", "ref-ghost"]
    assert len(result.rejects) == 7
    expected_fields = {
        "inv-euro": "currency",
        "inv-empty": "line_items",
        "inv-frac": "line_items[0].amount_in_cents",
        "inv-noplan": "line_items[0].plan_external_id",
        "inv-nocust": "customer_external_id",
        "ref-ghost": "invoice_external_id",
        "ref-cb": "type",
    }
    for ext, field in expected_fields.items():
        assert by_ext[ext]["field"] == field, (ext, by_ext[ext])
    for ext in ("inv-euro", "inv-empty", "inv-frac", "ref-cb"):
        assert expected_fields[ext] in by_ext[ext]["reason"], by_ext[ext]
    assert "euro" in by_ext["inv-euro"]["reason"]
    assert "12.5" in by_ext["inv-frac"]["reason"]
    assert "chargeback" in by_ext["ref-cb"]["reason"]
    assert by_ext["inv-noplan"]["reason"] == f'no plan with external_id "pl-x" in data source {ds}'
    assert by_ext["inv-nocust"]["reason"] == f'no customer with external_id "acct-9" in data source {ds}'
    assert by_ext["ref-ghost"]["reason"] == f'no invoice with external_id "inv-x" in data source {ds}'
    for reject in result.rejects:
        stream = REFUNDS_STREAM if reject["record"]["external_id"].startswith("ref-") else INVOICES_STREAM
        assert reject["stream"] == stream
        assert reject["key"] == {"external_id": reject["record"]["external_id"]}
        assert reject["time"].endswith("Z")
    invoice_counts = result.counts(INVOICES_STREAM)
    assert (invoice_counts["received"], invoice_counts["created"], invoice_counts["rejected"]) == (6, 1, 5)
    refund_counts = result.counts(REFUNDS_STREAM)
    assert (refund_counts["received"], refund_counts["created"], refund_counts["rejected"]) == (3, 1, 2)


def test_transaction_without_external_id_is_rejected(fake, ds, base_config):
    refund = {**REFUNDS[0], "external_id": None}
    messages = [*plans_messages(), *customers_messages(), *invoices_messages(INVOICES[:1]),
                schema(REFUNDS_STREAM, REFUND_PROPS, key=()), raw_record(REFUNDS_STREAM, refund)]
    result = run_target(billing_config(base_config), messages)

    assert [r["field"] for r in result.rejects] == ["external_id"]
    assert sorted(transactions_by_external_id(fake)) == ["pay-1"]


# ---------------------------------------------------------------------------------- 7. batching


def test_invoices_per_request_splits_one_customers_invoices(fake, ds, base_config):
    config = billing_config(base_config, streams={REFUNDS_STREAM: {"object": "transactions"},
                                                  INVOICES_STREAM: {"invoices_per_request": 2}})
    batch = [_batch_invoice(n) for n in range(1, 6)]
    result = run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages(batch)])

    assert result.rejects == []
    for invoice in batch:
        assert_invoice_matches(fake, ds, invoice)
    calls = import_calls(fake)
    assert len(calls) == 3
    assert fake.count("POST", IMPORT_PATH) == 3
    assert all(len(call.body["invoices"]) <= 2 for call in calls)
    sent = sorted(i["external_id"] for call in calls for i in call.body["invoices"])
    assert sent == [f"inv-{n}" for n in range(1, 6)]
    assert result.counts(INVOICES_STREAM)["created"] == 5


def test_invoices_of_one_customer_go_out_in_one_call_by_default(fake, ds, base_config):
    batch = [_batch_invoice(n) for n in range(1, 6)]
    other = _invoice(7, "acct-2", "pl-pro", "2024-02-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00", "120000", "0")
    result = run_target(billing_config(base_config),
                        [*plans_messages(), *customers_messages(), *invoices_messages([*batch, other])])

    assert result.rejects == []
    assert len(fake.invoices) == 6
    calls = import_calls(fake)
    assert len(calls) == 2
    acct_1 = one_customer_uuid(fake, ds, "acct-1")
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    by_customer = {call.path.split("/")[3]: sorted(i["external_id"] for i in call.body["invoices"])
                   for call in calls}
    assert by_customer == {acct_1: [f"inv-{n}" for n in range(1, 6)], acct_2: ["inv-7"]}


# ---------------------------------------------------------------------------------- 8. plans upsert


@pytest.mark.parametrize("memory", ["kept", "wiped"])
def test_plans_upsert_updates_in_place(fake, ds, base_config, tmp_path, memory):
    runs = iter(range(3))

    def config() -> dict[str, t.Any]:
        # "wiped": every run starts with an empty sync memory, so only ChartMogul knows the plan.
        n = next(runs)
        ledger = base_config["ledger_url"] if memory == "kept" else f"sqlite:///{tmp_path / f'ledger-{n}.db'}"
        return billing_config(base_config, ledger_url=ledger)

    first = run_target(config(), plans_messages(PLANS[:1]))
    plan = fake.find_plan(ds, "pl-basic")
    assert plan is not None and plan["name"] == "Basic monthly"
    assert first.counts(PLANS_STREAM)["created"] == 1

    renamed = [{**PLANS[0], "name": "Basic (monthly, 2024)"}]
    second = run_target(config(), plans_messages(renamed))
    assert len(fake.plans) == 1
    held = fake.find_plan(ds, "pl-basic")
    assert held is not None
    assert held["uuid"] == plan["uuid"]
    assert (held["name"], held["interval_count"], held["interval_unit"]) == ("Basic (monthly, 2024)", 1, "month")
    counts = second.counts(PLANS_STREAM)
    assert (counts["updated"], counts["created"], counts["unchanged"]) == (1, 0, 0), counts

    third = run_target(config(), plans_messages(renamed))
    assert len(fake.plans) == 1
    assert fake.find_plan(ds, "pl-basic") == held
    counts = third.counts(PLANS_STREAM)
    assert (counts["unchanged"], counts["updated"], counts["created"]) == (1, 0, 0), counts
    assert third.rejects == []
