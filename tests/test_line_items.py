"""Invoices from three tables: headers, line items of their own stream, payments; amounts in currency units."""

from __future__ import annotations

import typing as t
from decimal import Decimal

import pytest

from tests.billing import IMPORT_PATH, TRANSACTION_PATH, customers_messages, encode, plans_messages
from tests.helpers import write_calls
from tests.running import run_target
from tests.singer_messages import schema
from tests.three_tables import (
    HEADER_PROPS,
    HEADERS_STREAM,
    LINE_PROPS,
    LINES_STREAM,
    PAYMENT_PROPS,
    PAYMENTS_STREAM,
    Tables,
    assert_holds,
    streams_config,
)

ORDERS = {
    "alphabetical": ("lines", "headers", "payments"),  # invoice_lines, invoices, payments: as tap-postgres sends them
    "headers-first": ("headers", "lines", "payments"),
    "payments-first": ("payments", "headers", "lines"),
}


def config_for(base_config: dict[str, t.Any], **streams: dict[str, t.Any]) -> dict[str, t.Any]:
    merged = streams_config()
    for name, options in streams.items():
        merged[name] = {**merged.get(name, {}), **options}
    return {**base_config, "streams": merged}


def load(base_config: dict[str, t.Any], tables: Tables, order: t.Sequence[str]) -> t.Any:
    return run_target(config_for(base_config),
                      [*plans_messages(), *customers_messages(), *tables.messages(order)])


@pytest.mark.parametrize("bulk", ["never", "auto", "always"])
@pytest.mark.parametrize("batch", [None, 4], ids=["one-batch", "batches-of-4"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_each_invoice_is_imported_once_with_all_its_lines_whatever_the_stream_order(fake, ds, base_config, order,
                                                                                   batch, bulk):
    tables = Tables()
    config = config_for({**base_config, "bulk_import": bulk, **({"batch_size_rows": batch} if batch else {})})
    result = run_target(config, [*plans_messages(), *customers_messages(), *tables.messages(ORDERS[order])])

    assert result.rejects == []
    assert_holds(fake, ds, tables)
    imported = [i["external_id"] for r in write_calls(fake) if r.method == "POST" and r.path.endswith("/invoices")
                for i in r.body["invoices"]]
    imported += [i["external_id"] for body in fake.json_imports.submitted for i in body.get("invoices", [])]
    assert sorted(imported) == sorted(h["external_id"] for h in tables.headers)  # each exactly once
    posted_payments = [r for r in write_calls(fake) if r.method == "POST" and r.path.endswith("/transactions")]
    outcome = "imported" if bulk == "always" else "created"
    counts = result.counts(HEADERS_STREAM)
    assert (counts[outcome], counts["rejected"]) == (len(tables.headers), 0)
    assert result.counts(LINES_STREAM)[outcome] == len(tables.lines)
    assert result.counts(PAYMENTS_STREAM)[outcome] == len(tables.payments)
    assert len(fake.json_imports.submitted) == (1 if bulk == "always" else 0)
    if bulk == "never" and batch and order == "alphabetical":  # headers went in batches before their payments came
        assert len(posted_payments) == len(tables.payments)
    else:  # the payments came before their invoices were imported (or new invoices waited): they went with them
        assert posted_payments == []


def test_a_header_whose_lines_never_arrive_is_rejected_at_the_end_and_the_others_land(fake, ds, base_config):
    tables = Tables(invoices=6)
    orphan = tables.headers[2]["external_id"]
    tables.lines = [line for line in tables.lines if line["invoice_external_id"] != orphan]
    tables.payments = [p for p in tables.payments if p["invoice_external_id"] != orphan]
    result = load(base_config, tables, ORDERS["headers-first"])

    assert [(r["stream"], r["key"], r["field"], r["reason"]) for r in result.rejects] == [
        (HEADERS_STREAM, {"external_id": orphan}, "line_items", "no line items arrived for it (line_items stream)")]
    tables.headers = [h for h in tables.headers if h["external_id"] != orphan]
    assert_holds(fake, ds, tables)


def test_units_are_converted_exactly_and_more_decimals_than_the_currency_has_are_refused(fake, ds, base_config):
    tables = Tables(invoices=6)
    bad = tables.lines[0]
    bad["amount"] = Decimal("99.999")
    jpy = next(line for line in tables.lines if line["invoice_external_id"] == "inv-006")
    jpy["amount"] = Decimal("12900.5")
    result = load(base_config, tables, ORDERS["alphabetical"])

    by_key = {(r["stream"], r["record"]["external_id"]): r for r in result.rejects}
    assert by_key[(LINES_STREAM, bad["external_id"])]["field"] == "amount"
    assert "more decimals than EUR amounts have (at most 2 decimals), got 99.999" in \
        by_key[(HEADERS_STREAM, bad["invoice_external_id"])]["reason"]
    assert by_key[(HEADERS_STREAM, "inv-006")]["field"] == f"line_items[{jpy['external_id']}].amount"
    assert "(no decimals)" in by_key[(HEADERS_STREAM, "inv-006")]["reason"]
    # the other invoices land, cents exact
    refused = {bad["invoice_external_id"], "inv-006"}
    tables.headers = [h for h in tables.headers if h["external_id"] not in refused]
    tables.lines = [line for line in tables.lines if line["invoice_external_id"] not in refused]
    tables.payments = [p for p in tables.payments if p["invoice_external_id"] not in refused]
    assert_holds(fake, ds, tables)


def test_a_late_payment_of_an_imported_invoice_is_posted_on_its_own(fake, ds, base_config):
    tables = Tables(invoices=4)
    load(base_config, tables, ORDERS["alphabetical"])
    fake.clear_requests()
    tables.payments.append({"external_id": "pay-late", "invoice_external_id": "inv-004", "type": "payment",
                            "result": "successful", "date": "2024-06-01T00:00:00+00:00", "amount": Decimal("10.00")})

    result = load(base_config, tables, ORDERS["alphabetical"])

    assert result.rejects == []
    assert_holds(fake, ds, tables)
    assert [(r.method, r.body["external_id"]) for r in write_calls(fake)] == [("POST", "pay-late")]
    assert fake.count("POST", TRANSACTION_PATH) == 1
    assert fake.count("POST", IMPORT_PATH) == 0


def rows(stream: str, props: dict[str, t.Any], records: list[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(stream, props), *(encode({"type": "RECORD", "stream": stream, "record": r}) for r in records)]


@pytest.mark.parametrize("bulk", ["never", "always"])
@pytest.mark.parametrize("runs_between", [0, 1])
def test_lines_that_came_one_run_before_their_header_are_imported_with_it(fake, ds, base_config, runs_between, bulk):
    """Run 1 brings only the lines (no invoice to put them in: rejected, their rows kept); the run that brings the
    headers imports each invoice once with those lines, also after a run that brought neither.
    """
    tables = Tables(invoices=4)
    config = config_for({**base_config, "bulk_import": bulk})
    first = run_target(config, [*plans_messages(), *customers_messages(), *rows(LINES_STREAM, LINE_PROPS, tables.lines)])
    assert sorted((r["stream"], r["record"]["external_id"], r["field"]) for r in first.rejects) == sorted(
        (LINES_STREAM, line["external_id"], "invoice_external_id") for line in tables.lines)
    assert all("its header did not arrive" in r["reason"] for r in first.rejects)
    rejected_before = len(first.rejects) * (1 + runs_between)  # (the rejects file grows run after run)
    for _ in range(runs_between):  # the lines are retried and rejected again, never dropped
        between = run_target(config, customers_messages())
        assert between.counts(LINES_STREAM)["retry_refused"] == len(tables.lines)
    assert fake.invoices == {}
    fake.clear_requests()

    result = run_target(config, rows(HEADERS_STREAM, HEADER_PROPS, tables.headers) +
                        rows(PAYMENTS_STREAM, PAYMENT_PROPS, tables.payments))

    assert result.rejects[rejected_before:] == []
    assert_holds(fake, ds, tables)
    imported = [i["external_id"] for r in write_calls(fake) if r.method == "POST" and r.path.endswith("/invoices")
                for i in r.body["invoices"]]
    assert sorted(imported) == [h["external_id"] for h in tables.headers]  # each once, with its lines and payments
    assert [r.method for r in write_calls(fake)] == ["POST"] * fake.count("POST", IMPORT_PATH)
    assert (result.counts(HEADERS_STREAM)["created"], result.counts(LINES_STREAM)["created"],
            result.counts(PAYMENTS_STREAM)["created"]) == (4, 8, 3)
    assert result.counts(LINES_STREAM)["retried"] == 0  # taken by their headers, not retried on their own
    fake.clear_requests()
    again = run_target(config, customers_messages())  # nothing left waiting
    assert (write_calls(fake), again.counts(LINES_STREAM), len(again.rejects)) == ([], {}, rejected_before)


def test_amounts_in_units_are_checked_against_the_invoice_s_currency_not_on_arrival(fake, ds, base_config):
    """KWD has three decimals: 1.234 is 1234 fils, from the line_items stream and from the payments stream alike;
    1.2345 is refused naming the line's field, and refuses its invoice.
    """
    tables = Tables(invoices=2)
    for header in tables.headers:
        header["currency"] = "KWD"
    first, second = ([line for line in tables.lines if line["invoice_external_id"] == h["external_id"]]
                     for h in tables.headers)
    first[0]["amount"], first[1]["amount"], second[0]["amount"] = Decimal("1.234"), Decimal("0.5"), Decimal("1.2345")
    tables.payments[0]["amount"] = Decimal("2.234")
    tables.payments = tables.payments[:1]

    result = load(base_config, tables, ORDERS["alphabetical"])

    assert [(r["stream"], r["record"]["external_id"], r["field"], r["reason"]) for r in result.rejects] == [
        (LINES_STREAM, "inv-002-1", "amount",
         "field 'amount' has more decimals than KWD amounts have (at most 3 decimals), got 1.2345; never rounded"),
        (HEADERS_STREAM, "inv-002", "line_items[inv-002-1].amount",
         "field 'line_items[inv-002-1].amount' has more decimals than KWD amounts have (at most 3 decimals), "
         "got 1.2345; never rounded"),
        (LINES_STREAM, "inv-002-2", "invoice_external_id",
         "its invoice inv-002 was refused: field 'line_items[inv-002-1].amount' has more decimals than KWD amounts "
         "have (at most 3 decimals), got 1.2345; never rounded"),
    ]
    held = fake.find_invoice(ds, "inv-001")
    assert sorted(item["amount_in_cents"] for item in held["line_items"]) == [500, 1234]
    assert [(tx["external_id"], tx["amount_in_cents"]) for tx in held["transactions"]] == [("pay-001", 2234)]
    assert fake.find_invoice(ds, "inv-002") is None
    fake.clear_requests()
    late = {**tables.payments[0], "external_id": "pay-late", "amount": Decimal("0.001")}

    again = run_target(config_for(base_config), rows(PAYMENTS_STREAM, PAYMENT_PROPS, [late]))

    assert len(again.rejects) == 3 + 3  # inv-002 and its lines, retried and refused again
    assert [(r.method, r.path, r.body["amount_in_cents"]) for r in write_calls(fake)] == [
        ("POST", f"/import/invoices/{held['uuid']}/transactions", 1)]


def test_lines_of_a_header_retried_from_the_memory_wait_for_it_instead_of_being_refused(fake, ds, base_config):
    """Run 1 refuses the invoices (their customers are missing) and so their lines; run 2 brings the customers and
    the lines again, not the headers: the headers, retried from the memory at the end, take this run's lines.
    """
    tables = Tables(invoices=3)
    config = config_for(base_config)
    first = run_target(config, [*plans_messages(), *tables.messages(("lines", "headers"))])
    assert sorted({r["stream"] for r in first.rejects}) == sorted([HEADERS_STREAM, LINES_STREAM])
    refused = len(first.rejects)
    assert fake.invoices == {}

    result = run_target(config, [*customers_messages(), *rows(LINES_STREAM, LINE_PROPS, tables.lines)])

    assert result.rejects[refused:] == []
    tables.payments = []
    assert_holds(fake, ds, tables)
    assert (result.counts(HEADERS_STREAM)["created"], result.counts(LINES_STREAM)["created"]) == (3, 6)
    assert fake.count("POST", IMPORT_PATH) == 3
