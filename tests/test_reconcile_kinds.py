"""`reconcile: true` for each kind of object: lines and payments from tables of their own, subscription events,
contacts (whose reads answer no external id), rows the writing path would refuse, rows deleted in the
source, tags as `tags_mode` sees them, and the cost of a large account (one read per 200 objects).
"""

from __future__ import annotations

import copy
import pathlib
import typing as t

import pytest

from tests.billing import customers_messages, plans_messages
from tests.helpers import FakeApi, reads, write_calls
from tests.reconcile_data import (
    CUSTOMERS_STREAM,
    as_full_table,
    change_behind_the_loaders_back,
    findings,
    messages,
    reconcile_config,
)
from tests.running import API_KEY, run_target
from tests.singer_messages import customers_stream
from tests.subscription_rows import (
    EVENTS_STREAM,
    PEOPLE_STREAM,
    event_rows,
    events_messages,
    people_messages,
    people_rows,
    with_references,
)
from tests.three_tables import Tables, streams_config


@pytest.fixture
def kinds(fake, ds, base_config, tmp_path) -> tuple[dict[str, t.Any], list[t.Any]]:
    """Plans, customers, invoices as three tables (amounts in units), ten events and seven people, loaded."""
    config = {**base_config, "reconcile_path": str(tmp_path / "reconcile.jsonl"),
              "streams": {**streams_config(), EVENTS_STREAM: {"object": "subscription_events"},
                          PEOPLE_STREAM: {"object": "contacts", "custom_attributes": ["champion", "seats_owned"]}}}
    people = [{k: v for k, v in row.items() if k != "birthday"} for row in people_rows()]
    input_messages = with_references(Tables(3).messages(), events_messages(event_rows(1)), people_messages(people))
    result = run_target(config, input_messages)
    assert result.rejects == []
    return config, input_messages


def reimport_with_lines(fake, api: FakeApi, held: dict[str, t.Any], lines: list[dict[str, t.Any]]) -> None:
    """Delete an invoice and import it again through the API with these lines and its payments (an edit in the app)."""
    api.ok("DELETE", f"/invoices/{held['uuid']}", status=204)
    lines = [{k: v for k, v in item.items() if k not in ("uuid", "subscription_uuid") and v is not None} for item in lines]
    payments = [{k: tx[k] for k in ("type", "result", "date", "external_id", "amount_in_cents")} for tx in held["transactions"]]
    body = {"invoices": [{"external_id": held["external_id"], "date": held["date"], "currency": held["currency"],
                          "line_items": lines, "transactions": payments}]}
    api.ok("POST", f"/import/customers/{held['customer_uuid']}/invoices", body, status=201)


def reimport_with_line_amount(fake, api: FakeApi, ds: str, invoice: str, line: str, cents: int) -> None:
    """An invoice imported again with one line's amount changed."""
    held = copy.deepcopy(fake.find_invoice(ds, invoice))
    lines = copy.deepcopy(held["line_items"])
    next(item for item in lines if item["external_id"] == line)["amount_in_cents"] = cents
    reimport_with_lines(fake, api, held, lines)


def contact_uuid(fake, external_id: str) -> str:
    with fake.lock:
        return next(c["uuid"] for c in fake.contacts.items.values() if c["external_id"] == external_id)


def test_lines_payments_events_and_contacts_differ_field_by_field(fake, ds, kinds):
    config, input_messages = kinds
    api = FakeApi(fake, API_KEY)
    reimport_with_line_amount(fake, api, ds, "inv-001", "inv-001-1", 20090)
    payment = fake.find_invoice(ds, "inv-002")["transactions"][0]["uuid"]
    api.ok("PATCH", f"/transactions/{payment}", {"amount_in_cents": 100})
    event = fake.subscription_events.find(ds, "ev-000-0")[0]["id"]
    api.ok("PATCH", "/subscription_events", {"subscription_event": {"id": event, "quantity": 9}})
    api.ok("PATCH", f"/contacts/{contact_uuid(fake, 'person-0-1')}", {"title": "Geschäftsführerin"})
    api.ok("DELETE", f"/contacts/{contact_uuid(fake, 'person-1-2')}")
    acct_3 = fake.find_customers(ds, "acct-3")[0]["uuid"]
    added = api.ok("POST", "/contacts", {"customer_uuid": acct_3, "data_source_uuid": ds, "first_name": "Zoë",
                                         "last_name": "Neu", "email": "zoe@acct-3.test"}, status=201)
    fake.clear_requests()

    result = run_target({**config, "reconcile": True}, as_full_table(input_messages, 1))

    assert findings(pathlib.Path(config["reconcile_path"])) == [
        {"object": "invoices", "key": "inv-001", "kind": "different", "field": "line_items[inv-001-1].amount_in_cents",
         "source": 10090, "chartmogul": 20090},
        {"object": "transactions", "key": "pay-002", "kind": "different", "field": "amount_in_cents",
         "source": 13290, "chartmogul": 100},
        {"object": "subscription_events", "key": "ev-000-0", "kind": "different", "field": "quantity",
         "source": 1, "chartmogul": 9},
        # a contact made in the app answers no external id: its uuid is its key
        {"object": "contacts", "key": added["uuid"], "kind": "extra", "field": None, "source": None,
         "chartmogul": {"uuid": added["uuid"], "email": "zoe@acct-3.test", "first_name": "Zoë", "last_name": "Neu",
                        "customer_external_id": "acct-3"}},
        {"object": "contacts", "key": "person-0-1", "kind": "different", "field": "title",
         "source": "Engineer", "chartmogul": "Geschäftsführerin"},
        {"object": "contacts", "key": "person-1-2", "kind": "missing", "field": None, "chartmogul": None,
         "source": {"customer_external_id": "acct-2", "external_id": "person-1-2", "first_name": "First12",
                    "last_name": "Last12", "title": "Engineer", "position": 3, "email": "p12@acct-2.test",
                    "phone": "+49 30 12", "twitter": "https://twitter.com/p12", "custom": {"champion": False,
                                                                                         "seats_owned": 30}}},
        {"object": "revenue", "key": "2024-02 EUR", "kind": "different", "field": "amount_in_cents",
         "source": 11640, "chartmogul": 21640},
    ]
    assert result.target.reconciliation.exit_code == 3
    assert write_calls(fake) == []
    assert sorted(r.path for r in fake.requests) == sorted(["/ping", f"/data_sources/{ds}", "/plans", "/customers",
                                                           "/invoices", "/subscription_events", "/contacts"])


def test_refused_and_deleted_rows(fake, ds, base_config, tmp_path):
    """A row the writing path would refuse is reported with its field and reason (and is no `missing`); a row
    deleted in the source whose customer ChartMogul still holds is `extra`, even in an incremental stream."""
    config = reconcile_config(base_config, tmp_path)
    run_target(config, messages())
    rows = [{"external_id": "acct-1", "name": "Müller GmbH", "email": "rechnung@mueller.test", "country": "Deutschland",
             "tags": ["vip"], "seats": 5},
            {"external_id": "acct-3", "_sdc_deleted_at": "2025-04-01T00:00:00+00:00"}]
    stream = customers_stream(CUSTOMERS_STREAM, rows, {"seats": {"type": ["integer", "null"]},
                                                       "_sdc_deleted_at": {"type": ["string", "null"]}})

    result = run_target({**config, "reconcile": True}, stream)

    uuid = fake.find_customers(ds, "acct-3")[0]["uuid"]
    assert findings(pathlib.Path(config["reconcile_path"])) == [
        {"object": "customers", "key": "acct-1", "kind": "refused", "field": "country",
         "source": "field 'country' must be an ISO-3166 alpha-2 country code such as 'DE', got 'Deutschland'",
         "chartmogul": None},
        {"object": "customers", "key": "acct-3", "kind": "extra", "field": None, "source": None,
         "chartmogul": {"uuid": uuid, "external_id": "acct-3", "name": "株式会社サンプル", "email": "keiri@sample.test"}},
    ]
    assert result.target.reconciliation.exit_code == 3
    assert not list(tmp_path.glob("rejects*.jsonl"))  # a comparison refuses nothing: the rejects file is a write's


@pytest.mark.parametrize(("tags_mode", "expected"), [("managed", []), ("exact", [
    {"object": "customers", "key": "acct-1", "kind": "different", "field": "tags", "source": ["vip"],
     "chartmogul": ["vip", "churn-risk"]}])])
def test_tags_as_the_streams_tags_mode_sees_them(fake, ds, base_config, tmp_path, tags_mode, expected):
    """A tag someone added in the app is no difference under `managed` (the loader keeps it), one under `exact`."""
    config = reconcile_config(base_config, tmp_path)
    config["streams"][CUSTOMERS_STREAM]["tags_mode"] = tags_mode
    run_target(config, messages())
    fake.tag_in_app(fake.find_customers(ds, "acct-1")[0]["uuid"], "churn-risk")

    run_target({**config, "reconcile": True}, messages(version=1))

    assert findings(pathlib.Path(config["reconcile_path"])) == expected


def test_a_large_account_costs_one_read_per_200_objects(fake, ds, base_config, tmp_path):
    """450 customers: three pages of the customers listing, not one read per customer; nothing changed."""
    rows = [{"external_id": f"c{n:04d}", "name": f"Kunde Nr. {n} · Größe {n % 7}", "email": f"c{n}@kunden.test"}
            for n in range(450)]
    config = {**base_config, "reconcile_path": str(tmp_path / "reconcile.jsonl")}
    run_target(config, customers_stream(CUSTOMERS_STREAM, rows))
    fake.clear_requests()

    result = run_target({**config, "reconcile": True}, as_full_table(customers_stream(CUSTOMERS_STREAM, rows), 1))

    assert result.target.reconciliation.exit_code == 0
    assert [r.query.get("cursor") is None for r in reads(fake, "^/customers$")] == [True, False, False]
    assert sorted(r.path for r in fake.requests) == sorted(["/ping", f"/data_sources/{ds}"] + ["/customers"] * 3)
    assert write_calls(fake) == []


def test_the_sync_memory_is_never_opened(fake, ds, base_config, tmp_path):
    """ChartMogul's copy is the truth: a reconcile run neither reads nor creates the sync memory."""
    config = reconcile_config(base_config, tmp_path)
    run_target(config, messages())
    change_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)
    elsewhere = tmp_path / "nowhere" / "ledger.db"

    result = run_target({**config, "reconcile": True, "ledger_url": f"sqlite:///{elsewhere}"}, messages(version=1))

    assert result.target.reconciliation.exit_code == 3
    assert not elsewhere.parent.exists()
    assert len(findings(pathlib.Path(config["reconcile_path"]))) == 8


def test_the_report_goes_next_to_the_rejects_file_by_default(fake, ds, base_config, tmp_path):
    config = {**base_config, "rejects_path": str(tmp_path / "state" / "rejects.jsonl")}
    run_target(config, [*plans_messages(), *customers_messages()])

    result = run_target({**config, "reconcile": True}, [*plans_messages(), *customers_messages()])

    assert result.target.reconciliation.paths == (tmp_path / "state" / "reconcile.jsonl",
                                                  tmp_path / "state" / "reconcile.html")
    assert (tmp_path / "state" / "reconcile.jsonl").read_text() == ""


@pytest.mark.parametrize("complete", [False, True])
def test_a_line_only_chartmogul_has_counts_only_when_the_lines_are_complete(fake, ds, base_config, tmp_path, complete):
    """Lines from their own table: ChartMogul's invoice gained a line the table does not have. An incremental
    line_items stream may not carry every line of an invoice, so that line is no difference and counts in neither
    revenue; a complete full-table version of the lines has every line, so it is one, and so is its month."""
    tables = Tables(2)
    config = {**base_config, "reconcile_path": str(tmp_path / "reconcile.jsonl"), "streams": streams_config()}
    input_messages = [*plans_messages(), *customers_messages(), *tables.messages()]
    run_target(config, input_messages)
    held = copy.deepcopy(fake.find_invoice(ds, "inv-001"))
    extra_line = {"type": "one_time", "external_id": "inv-001-9", "amount_in_cents": 700, "quantity": 1,
                  "description": "Nachberechnung"}
    reimport_with_lines(fake, FakeApi(fake, API_KEY), held, [*held["line_items"], extra_line])

    run_target({**config, "reconcile": True}, as_full_table(input_messages, 1) if complete else input_messages)

    expected = [
        {"object": "invoices", "key": "inv-001", "kind": "different", "field": "line_items[inv-001-9] (only in ChartMogul)",
         "source": None, "chartmogul": {  # the line as ChartMogul's invoices listing answers it
             "uuid": fake.find_invoice(ds, "inv-001")["line_items"][2]["uuid"], "external_id": "inv-001-9",
             "type": "one_time", "description": "Nachberechnung", "amount_in_cents": 700, "quantity": 1,
             "discount_code": "", "discount_amount_in_cents": 0, "tax_amount_in_cents": 0, "transaction_fees_in_cents": 0,
             "account_code": "", "transaction_fees_currency": None, "discount_description": None, "event_order": None,
             "balance_transfer": None}},
        {"object": "revenue", "key": "2024-02 EUR", "kind": "different", "field": "amount_in_cents",
         "source": 11640, "chartmogul": 12340},
    ]
    assert findings(pathlib.Path(config["reconcile_path"])) == (expected if complete else [])


def test_a_failed_reconcile_leaves_no_earlier_report(fake, ds, base_config, tmp_path):
    """The report describes one run: a run that fails (here the key is refused) leaves neither file of an earlier one."""
    config = reconcile_config(base_config, tmp_path)
    path = pathlib.Path(config["reconcile_path"])
    path.parent.mkdir(parents=True)
    path.write_text('{"object": "customers", "key": "old"}\n')
    path.with_suffix(".html").write_text("<!DOCTYPE html>")

    result = run_target({**config, "reconcile": True, "api_key": "sk_wrong"}, messages(version=1), expect_error=True)

    assert result.error is not None and "API key" in str(result.error)
    assert not path.exists() and not path.with_suffix(".html").exists()
