"""Invoices from three tables: headers, line items of their own stream, payments; amounts in currency units."""

from __future__ import annotations

import typing as t
from decimal import Decimal

import pytest

from tests.billing import IMPORT_PATH, TRANSACTION_PATH, customers_messages, plans_messages
from tests.helpers import write_calls
from tests.running import run_target
from tests.three_tables import HEADERS_STREAM, LINES_STREAM, PAYMENTS_STREAM, Tables, assert_holds, streams_config

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
