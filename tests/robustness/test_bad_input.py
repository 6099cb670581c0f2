"""Bad input, one test per case, each in one of three categories (the first word of its id):

- `fatal-…`: the run cannot go on (broken stream, bad settings). One clear ERROR line
  naming what is wrong, a non-zero exit, no traceback, no STATE.
- `reject-…`: one bad record. A reject line naming stream, key and field; the good
  records just before and after it (same stream) land; exit 0.
- `lands-…`: odd but valid input. It lands intact; no reject; exit 0.

Every case runs the CLI (`TargetChartMogul.cli`, in this process through click's CliRunner) against the fake
API: the checks are messages, exit codes, rejects and what the fake holds.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import typing as t
from decimal import Decimal

import pytest

from tests.billing import (
    CUSTOMERS_STREAM,
    INVOICE_PROPS,
    INVOICES_STREAM,
    PLAN_PROPS,
    PLANS_STREAM,
    REFUND_PROPS,
    REFUNDS_STREAM,
    customers_messages,
    encode,
    invoice_row,
    make_invoice,
    plans_messages,
    raw_record,
)
from tests.helpers import error_lines
from tests.robustness.load import load_config
from tests.running import invoke_target
from tests.singer_messages import CUSTOMER_PROPS, INTEGER, STRING, lines, schema, state

# ------------------------------------------------------------------------------ building blocks


def customer(ext: str, **fields: t.Any) -> dict[str, t.Any]:
    return {"external_id": ext, "name": f"Name of {ext}", "email": f"{ext}@example.test", "country": "DE", **fields}


def customers_case(bad: dict[str, t.Any], extra_props: dict[str, t.Any] | None = None) -> list[t.Any]:
    """SCHEMA, a good customer, the bad one, a good one."""
    props = {**CUSTOMER_PROPS, **(extra_props or {})}
    rows = [customer("c-before"), bad, customer("c-after")]
    return [schema(CUSTOMERS_STREAM, props), *(encode({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": r})
                                              for r in rows)]


def invoice(n: int, **changes: t.Any) -> dict[str, t.Any]:
    row = make_invoice(n, "acct-1", "pl-basic", "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "9990.00",
                   "1500")
    row.update(changes)
    return row


def invoices_case(bad: dict[str, t.Any] | str, props: dict[str, t.Any] | None = None) -> list[t.Any]:
    """Plans and customers, then a good invoice, the bad one, a good one."""
    rows = [raw_record(INVOICES_STREAM, invoice_row(invoice(101))),
            bad if isinstance(bad, str) else raw_record(INVOICES_STREAM, invoice_row(bad)),
            raw_record(INVOICES_STREAM, invoice_row(invoice(103)))]
    return [*plans_messages(), *customers_messages(), schema(INVOICES_STREAM, props or INVOICE_PROPS), *rows]


def refund(ext: str, **changes: t.Any) -> dict[str, t.Any]:
    return {"external_id": ext, "invoice_ref": "inv-101", "type": "refund", "result": "successful",
            "date": "2024-01-20T09:15:00+01:00", "amount_in_cents": Decimal("2500"), "transaction_fees_in_cents": None,
            **changes}


def refunds_case(bad: dict[str, t.Any] | str) -> list[t.Any]:
    rows = [raw_record(REFUNDS_STREAM, refund("r-before")),
            bad if isinstance(bad, str) else raw_record(REFUNDS_STREAM, bad),
            raw_record(REFUNDS_STREAM, refund("r-after"))]
    return [*plans_messages(), *customers_messages(), schema(INVOICES_STREAM, INVOICE_PROPS),
            raw_record(INVOICES_STREAM, invoice_row(invoice(101))), schema(REFUNDS_STREAM, REFUND_PROPS), *rows]


def plans_case(bad: dict[str, t.Any]) -> list[t.Any]:
    rows = [{"external_id": "p-before", "name": "Before", "interval_count": 1, "interval_unit": "month"}, bad,
            {"external_id": "p-after", "name": "After", "interval_count": 1, "interval_unit": "year"}]
    return [schema(PLANS_STREAM, PLAN_PROPS), *(raw_record(PLANS_STREAM, r) for r in rows)]


CASE_STATE = {"bookmarks": {"case": {"replication_key_value": 1}}}


def with_state(messages: list[t.Any]) -> list[t.Any]:
    return [*messages, state(CASE_STATE)]


@dataclasses.dataclass
class Case:
    messages: list[t.Any] | str
    # fatal: words the one ERROR line must contain
    names: tuple[str, ...] = ()
    # reject: (stream, key, field); the neighbours are the c-/inv-/r-/p- before and after records
    reject: tuple[str, dict[str, t.Any], str] | None = None
    # lands: a check on the fake
    lands: t.Callable[[t.Any, str], None] | None = None
    config: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    drop_config: tuple[str, ...] = ()


def customer_named(ext: str, **expected: t.Any) -> t.Callable[[t.Any, str], None]:
    def check(fake: t.Any, ds: str) -> None:
        found = fake.find_customers(ds, ext)
        assert len(found) == 1, (ext, len(found))
        for name, value in expected.items():
            held = found[0].get(name, found[0].get("attributes", {}).get(name))
            assert held == value, (name, held, value)
    return check


def custom_attrs(names: list[str] | str) -> dict[str, t.Any]:
    return {"streams": {REFUNDS_STREAM: {"object": "transactions"},
                        CUSTOMERS_STREAM: {"custom_attributes": names}}}


BEFORE_AFTER = {CUSTOMERS_STREAM: ("c-before", "c-after"), INVOICES_STREAM: ("inv-101", "inv-103"),
                REFUNDS_STREAM: ("r-before", "r-after"), PLANS_STREAM: ("p-before", "p-after")}

HUGE = "x" * 1_000_000
RTL = "شركة الأمل للتجارة - אבג בע\"מ"
EMOJI = "Café 🚀 Ünïcødé 👩‍💻 Ltd"
DRAFT4_SEATS = {"type": ["integer", "null"], "minimum": 0, "maximum": 100, "exclusiveMaximum": True,
                "exclusiveMinimum": False}


def _bad_line_items_text() -> list[t.Any]:
    props = {**INVOICE_PROPS, "line_items": STRING}
    bad = invoice_row(invoice(102))
    bad["line_items"] = "[{not json"
    good = [invoice_row(invoice(101)), invoice_row(invoice(103))]
    for row in good:
        row["line_items"] = encode(row["line_items"])
    return [*plans_messages(), *customers_messages(), schema(INVOICES_STREAM, props),
            raw_record(INVOICES_STREAM, good[0]), raw_record(INVOICES_STREAM, bad), raw_record(INVOICES_STREAM, good[1])]


def _line_item(n: int, index: int, **changes: t.Any) -> dict[str, t.Any]:
    row = invoice(n)
    row["line_items"] = copy.deepcopy(row["line_items"])
    row["line_items"][index].update(changes)
    return row


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ fatal: the run cannot go on
    "fatal-malformed-json-line": Case(
        [*customers_case(customer("c-x"))[:2], '{"type": "RECORD", "stream": "billing-customers", "record": {"ext'],
        names=("JSON", "line")),
    "fatal-record-before-schema": Case(
        [encode({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": customer("c-1")}), *customers_case(customer("c-x"))],
        names=("schema", CUSTOMERS_STREAM)),
    "fatal-unknown-object-in-streams-setting": Case(
        customers_case(customer("c-x")), config={"streams": {CUSTOMERS_STREAM: {"object": "subscriptions"}}},
        names=("subscriptions", "object")),
    "fatal-missing-api-key": Case(customers_case(customer("c-x")), drop_config=("api_key",), names=("api_key",)),
    "fatal-unknown-message-type": Case(
        [*customers_case(customer("c-x")), {"type": "BOOKMARK", "value": {}}], names=("BOOKMARK",)),
    "fatal-state-without-value": Case([*customers_case(customer("c-x")), {"type": "STATE"}], names=("STATE", "value")),
    "fatal-schema-that-is-not-json-schema": Case(
        [schema(CUSTOMERS_STREAM, {**CUSTOMER_PROPS, "name": {"type": "text"}})], names=(CUSTOMERS_STREAM, "SCHEMA")),
    "fatal-line-that-is-not-an-object": Case([*customers_case(customer("c-x")), "[1, 2, 3]"], names=("line",)),
    "fatal-max-retries-not-a-number": Case(customers_case(customer("c-x")), config={"max_retries": "lots"},
                                           names=("max_retries",)),
    # ------------------------------------------------------------------ lands: odd but valid
    "lands-empty-input": Case("", lands=lambda fake, ds: _nothing_at_all(fake, ds)),
    "lands-schema-draft4-boolean-exclusive-maximum": Case(
        customers_case(customer("c-x", seats=99), {"seats": DRAFT4_SEATS}), config=custom_attrs(["seats"]),
        lands=lambda fake, ds: customer_named("c-x")(fake, ds)),
    # singer-sdk refuses a SCHEMA message without `properties`: the stream cannot be read.
    "fatal-schema-without-properties": Case(
        [{"type": "SCHEMA", "stream": CUSTOMERS_STREAM, "schema": {"type": "object"}, "key_properties": ["external_id"]},
         {"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": customer("c-x")}],
        names=("properties", CUSTOMERS_STREAM)),
    "lands-emoji-in-name": Case(customers_case(customer("c-x", name=EMOJI)), lands=customer_named("c-x", name=EMOJI)),
    "lands-right-to-left-name": Case(customers_case(customer("c-x", name=RTL)), lands=customer_named("c-x", name=RTL)),
    "lands-bell-control-character-intact": Case(customers_case(customer("c-x", name="Ring\x07Bell")),
                                                lands=customer_named("c-x", name="Ring\x07Bell")),
    "lands-same-key-twice-in-one-batch-last-wins": Case(
        [*customers_case(customer("c-x", name="First")),
         encode({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": customer("c-x", name="Second")})],
        lands=customer_named("c-x", name="Second")),
    "lands-date-in-year-1": Case(customers_case(customer("c-x", lead_created_at="0001-01-01T00:00:00+00:00")),
                                 lands=customer_named("c-x")),
    "lands-date-in-year-9999": Case(customers_case(customer("c-x", free_trial_started_at="9999-12-31T23:59:59+00:00")),
                                    lands=customer_named("c-x")),
    "lands-unknown-stream-is-skipped": Case(
        [*customers_case(customer("c-x")), schema("billing-audit_log", {"id": INTEGER}, key=("id",)),
         {"type": "RECORD", "stream": "billing-audit_log", "record": {"id": 1}}],
        lands=customer_named("c-x")),
    # ------------------------------------------------------------------ reject: one bad record
    "reject-string-for-integer-seats": Case(
        customers_case(customer("c-x", seats="many"), {"seats": INTEGER}), config=custom_attrs(["seats"]),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "seats")),
    "reject-draft4-exclusive-maximum-reached": Case(
        customers_case(customer("c-x", seats=100), {"seats": DRAFT4_SEATS}), config=custom_attrs(["seats"]),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "seats")),
    # ChartMogul documents no length limit for names: passed through intact (the API decides).
    "lands-huge-1mb-name-intact": Case(customers_case(customer("c-x", name=HUGE)),
                                       lands=customer_named("c-x", name=HUGE)),
    "reject-nul-in-name": Case(customers_case(customer("c-x", name="Null\x00Byte")),
                               reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "name")),
    "reject-null-external-id": Case(customers_case(customer(None)),  # type: ignore[arg-type]
                                    reject=(CUSTOMERS_STREAM, {"external_id": None}, "external_id")),
    "reject-empty-external-id": Case(customers_case(customer("")),
                                     reject=(CUSTOMERS_STREAM, {"external_id": ""}, "external_id")),
    "reject-country-Germany": Case(customers_case(customer("c-x", country="Germany")),
                                   reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "country")),
    "reject-300-char-string-custom-attribute": Case(
        customers_case(customer("c-x", note="n" * 300), {"note": STRING}), config=custom_attrs(["note"]),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "note")),
    "reject-custom-attribute-key-bad-key!": Case(
        customers_case(customer("c-x", **{"bad-key!": "v"}), {"bad-key!": STRING}), config=custom_attrs("*"),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "bad-key!")),
    "reject-date-in-year-1-before-utc": Case(
        customers_case(customer("c-x", lead_created_at="0001-01-01T00:00:00+05:00")),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "lead_created_at")),
    "reject-date-in-year-9999-after-utc": Case(
        customers_case(customer("c-x", lead_created_at="9999-12-31T23:00:00-05:00")),
        reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "lead_created_at")),
    "reject-date-that-is-not-a-date": Case(customers_case(customer("c-x", lead_created_at="yesterday")),
                                           reject=(CUSTOMERS_STREAM, {"external_id": "c-x"}, "lead_created_at")),
    "reject-nan-refund-amount": Case(
        refunds_case(raw_record(REFUNDS_STREAM, refund("r-x")).replace('"amount_in_cents": 2500', '"amount_in_cents": NaN')),
        reject=(REFUNDS_STREAM, {"external_id": "r-x"}, "amount_in_cents")),
    "reject-negative-refund-cents": Case(refunds_case(refund("r-x", amount_in_cents=Decimal("-500"))),
                                         reject=(REFUNDS_STREAM, {"external_id": "r-x"}, "amount_in_cents")),
    "reject-fractional-refund-cents": Case(refunds_case(refund("r-x", amount_in_cents=Decimal("12.5"))),
                                           reject=(REFUNDS_STREAM, {"external_id": "r-x"}, "amount_in_cents")),
    "reject-fractional-line-item-cents": Case(
        invoices_case(_line_item(102, 0, amount_in_cents=Decimal("9990.5"))),
        reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "line_items[0].amount_in_cents")),
    "reject-unknown-line-item-type": Case(invoices_case(_line_item(102, 1, type="bogus")),
                                          reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "line_items[1].type")),
    "reject-string-for-integer-quantity": Case(
        invoices_case(_line_item(102, 1, quantity="two")),
        reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "line_items[1].quantity")),
    "reject-currency-euro": Case(invoices_case(invoice(102, currency="euro")),
                                 reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "currency")),
    "reject-line-items-text-that-is-not-json": Case(_bad_line_items_text(),
                                                    reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "line_items")),
    "reject-invoice-date-in-year-1-before-utc": Case(
        invoices_case(invoice(102, date="0001-01-01T00:00:00+01:00")),
        reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "date")),
    "reject-prorated-that-is-not-a-boolean": Case(
        invoices_case(_line_item(102, 0, prorated="yes")),
        reject=(INVOICES_STREAM, {"external_id": "inv-102"}, "line_items[0].prorated")),
    # A downgrade's credit for the unused part of a plan (ChartMogul's proration model); "false" is false.
    "lands-negative-proration-credit-with-prorated-false-as-text": Case(
        invoices_case(_line_item(102, 0, amount_in_cents=Decimal("-4995"), prorated="false")),
        lands=lambda fake, ds: _proration_credit_held(fake, ds)),
    "reject-plan-interval-unit-week": Case(
        plans_case({"external_id": "p-x", "name": "Weekly", "interval_count": 1, "interval_unit": "week"}),
        reject=(PLANS_STREAM, {"external_id": "p-x"}, "interval_unit")),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id, fake, ds, base_config, tmp_path):
    case = CASES[case_id]
    config = {**load_config(base_config), **case.config}
    for key in case.drop_config:
        config.pop(key)
    messages = case.messages if isinstance(case.messages, str) else lines(with_state(case.messages))
    result = invoke_target(config, messages, tmp_path)
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr[-4000:]
    rejects_path = tmp_path / "rejects.jsonl"
    rejects = [json.loads(x) for x in rejects_path.read_text().splitlines()] if rejects_path.exists() else []
    category = case_id.split("-", 1)[0]

    if category == "fatal":
        assert result.returncode == 1, stderr[-4000:]
        errors = error_lines(stderr)
        # singer-sdk follows a config error with a second line, "Config validation failed".
        assert len([e for e in errors if "Config validation failed" not in e]) == 1, errors
        naming = [e for e in errors if all(word.lower() in e.lower() for word in case.names)]
        assert len(naming) == 1, (case.names, errors)
        assert result.stdout.strip() == "", "no STATE after a fatal error"
        return

    assert result.returncode == 0, stderr[-4000:]
    states = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    if category == "lands":
        assert rejects == [], rejects
        assert case.lands is not None
        case.lands(fake, ds)
        if "c-before" in messages:  # the odd customer is always c-x, between its two neighbours
            assert _held_ids(fake, ds, CUSTOMERS_STREAM) == {"c-before", "c-x", "c-after"}
        # No STATE in, none out (sdk#3000); otherwise the case's one STATE, once.
        assert states == ([] if case.messages == "" else [CASE_STATE])
        return

    assert case.reject is not None
    stream, key, field = case.reject
    assert len(rejects) == 1, [(r["stream"], r["key"], r["field"], r["reason"][:80]) for r in rejects]
    reject = rejects[0]
    assert (reject["stream"], reject["key"], reject["field"]) == (stream, key, field), \
        (reject["stream"], reject["key"], reject["field"], reject["reason"][:200])
    assert field.split("[")[0].split(".")[0] in reject["reason"], reject["reason"][:300]
    before, after = BEFORE_AFTER[stream]
    # Exactly the neighbours landed (and, for refunds, the payment nested in their invoice inv-101).
    expected = {before, after} | ({"pay-101"} if stream == REFUNDS_STREAM else set())
    assert _held_ids(fake, ds, stream) == expected
    assert states == [CASE_STATE]


def _proration_credit_held(fake: t.Any, ds: str) -> None:
    held = fake.find_invoice(ds, "inv-102")
    assert held is not None
    credit = next(item for item in held["line_items"] if item["external_id"] == "li-102-1")
    assert (credit["amount_in_cents"], credit["prorated"]) == (-4995, False)
    assert _held_ids(fake, ds, INVOICES_STREAM) == {"inv-101", "inv-102", "inv-103"}


def _nothing_at_all(fake: t.Any, ds: str) -> None:
    assert fake.requests == []  # not even the account check
    with fake.lock:
        assert (fake.plans, fake.customers, fake.invoices, fake.transactions) == ({}, {}, {}, {})


def _held_ids(fake: t.Any, ds: str, stream: str) -> set[str]:
    with fake.lock:
        if stream == CUSTOMERS_STREAM:
            return {c["external_id"] for c in fake.customers.values()}
        if stream == INVOICES_STREAM:
            return {i["external_id"] for i in fake.invoices.values()}
        if stream == PLANS_STREAM:
            return {p["external_id"] for p in fake.plans.values()}
        return {x["external_id"] for x in fake.transactions.values()}


FATAL_CASES, REJECT_CASES, LANDS_CASES = 10, 22, 11


def test_there_are_at_least_30_cases():
    # Exact counts: a case removed by mistake shows here (add one, raise its count).
    categories = collections.Counter(case_id.split("-", 1)[0] for case_id in CASES)
    assert categories == {"fatal": FATAL_CASES, "reject": REJECT_CASES, "lands": LANDS_CASES}
    assert len(CASES) >= 30
