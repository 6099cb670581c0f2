"""The fake's bulk JSON import (tests/fake_chartmogul/json_imports.py), through real HTTP.

No recording shows this endpoint. The evidence is ChartMogul's reference [D] (its Track
Import Status example, polled by the import's external id, kept as data in
``tests/contract/fixtures/json_import_status_docs.json``) and hand-written client mocks
(chartmogul-python ``test/api/test_json_import.py``, kept as data in
``tests/contract/fixtures/json_import_mock.json``; chartmogul-ruby ``spec/chartmogul/json_import_spec.rb``).
Everything else here pins the fake's own documented choices, so the target's bulk mode is
tested against known behaviour: timing, effects equal to the REST endpoints', each value of
each switch, and the refusals.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.contract.recordings import load
from tests.contract.replay import differences
from tests.fake_chartmogul import FakeChartMogul, Fault, Store
from tests.fake_chartmogul import __main__ as fake_main
from tests.fake_chartmogul.json_imports import JsonImports, apply_switch_options
from tests.helpers import FakeApi

KEY = "bulk-key"
ROOT = Path(__file__).resolve().parent.parent
MAX_BODY = 5_000_000  # "5MB" in bytes as received; the fake allowed 5 MiB (5,242,880) before
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MOCK_KEYS = ["id", "data_source_uuid", "status", "external_id", "status_details", "created_at", "updated_at"]
NOT_IMPORTED = {"invoice_external_id": "invoice was not imported"}
FAIL_SWITCH = {"customer_external_id": "rejected by the fake's fail_customers switch"}
TAKEN = {"external_id": "has already been taken"}
DUP_INVOICE = "The external ID for this invoice already exists in our system."
IMPORTED = {"status": "imported"}
IMPORT_NOT_FOUND = {"code": 404, "message": "Import not found", "param": None}
EXTERNAL_ID_TAKEN = {"code": 422, "message": "External ID has already been taken", "param": "external_id"}
NOT_IN_BULK = {"attributes": "is not accepted by the bulk import"}
NO_CUSTOMER = {"customer_external_id": "Customer not found"}


class Clock:
    """A clock the test moves by hand, for exact schedules."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client(FakeApi):
    """The fake's HTTP client, with the bulk import's calls."""

    def __init__(self, fake: FakeChartMogul, key: str = KEY) -> None:
        super().__init__(fake, key)

    def submit(self, ds: str, body: Any) -> dict[str, Any]:
        return self.ok("POST", f"/data_sources/{ds}/json_imports", body)

    def poll(self, ds: str, import_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/data_sources/{ds}/json_imports/{import_id}")

    def run(self, ds: str, body: Any) -> dict[str, Any]:
        """Submit and poll once: with no delays the import is completed by then."""
        return self.poll(ds, self.submit(ds, body)["id"])


@pytest.fixture
def fake() -> Iterator[FakeChartMogul]:
    with FakeChartMogul(api_key=KEY) as server:
        yield server


@pytest.fixture
def api(fake: FakeChartMogul) -> Iterator[Client]:
    client = Client(fake)
    yield client
    client.session.close()


@pytest.fixture
def ds(fake: FakeChartMogul) -> str:
    return str(fake.add_data_source("bulk")["uuid"])


@pytest.fixture
def clock(fake: FakeChartMogul) -> Clock:
    """The fake's imports on a hand-moved clock."""
    moved = Clock()
    fake.store.json_imports = JsonImports(fake.store, clock=moved)
    return moved


PLAN = {"external_id": "pl-1", "name": "Pro", "interval_count": 1, "interval_unit": "month"}


def customer(ext: str, **fields: Any) -> dict[str, Any]:
    return {"external_id": ext, "name": f"Name {ext}", **fields}


def invoice(ext: str, owner: str, **fields: Any) -> dict[str, Any]:
    return {"external_id": ext, "customer_external_id": owner, "date": "2024-01-01T00:00:00Z", "currency": "USD", **fields}


def item(invoice_ext: str, ext: str, **fields: Any) -> dict[str, Any]:
    return {"invoice_external_id": invoice_ext, "external_id": ext, "type": "one_time", "amount_in_cents": 1000, **fields}


def subscription_item(invoice_ext: str, ext: str, plan: str = "pl-1") -> dict[str, Any]:
    return item(invoice_ext, ext, type="subscription", plan_external_id=plan, subscription_external_id=f"sub-{ext}",
                service_period_start="2024-01-01T00:00:00Z", service_period_end="2024-02-01T00:00:00Z")


def payment(invoice_ext: str, ext: str, **fields: Any) -> dict[str, Any]:
    return {"invoice_external_id": invoice_ext, "external_id": ext, "type": "payment", "result": "successful",
            "date": "2024-01-02T00:00:00Z", **fields}


def one_customer_body(ext: str = "c-1", **invoice_fields: Any) -> dict[str, Any]:
    """A customer with one one-time invoice (one line item, one payment)."""
    return {"customers": [customer(ext)], "invoices": [invoice(f"inv-{ext}", ext, **invoice_fields)],
            "line_items": [item(f"inv-{ext}", f"li-{ext}")], "transactions": [payment(f"inv-{ext}", f"tx-{ext}")]}


# ---------------------------------------------------------------------- the mock's shapes


def test_the_python_mock_body_answers_in_the_mock_shapes(fake: FakeChartMogul, api: Client) -> None:
    """chartmogul-python's hand-written mock (not a recording): create keys, then the completed status_details."""
    mock = load("json_import_mock")
    create, status = mock.exchanges
    ds = str(fake.add_data_source("mocked")["uuid"])

    created = api.submit(ds, create.request_body)
    assert list(created) == list(create.response_body) == MOCK_KEYS
    assert differences(create.response_body, created) == []
    assert (created["status"], created["external_id"], created["status_details"]) == ("queued", "import_batch_2026_04", {})
    assert UUID4.match(created["id"]) and created["data_source_uuid"] == ds
    assert STAMP.match(created["created_at"]) and created["updated_at"] == created["created_at"]

    done = api.poll(ds, created["id"])
    assert list(done) == list(status.response_body)
    assert differences(status.response_body, done) == []
    assert done["status"] == "completed"
    assert done["status_details"] == status.response_body["status_details"]
    assert set(done["status_details"]) == {"plans", "cus_acme_001", "cus_globex_002"}
    assert fake.json_imports.submitted == [create.request_body]


# ---------------------------------------------------------------------- time


def test_queued_then_processing_then_completed_in_wall_clock_time(fake: FakeChartMogul, api: Client, ds: str) -> None:
    fake.json_imports.queue_delay = 0.3
    fake.json_imports.per_object_seconds = 0.15  # two objects: processing 0.3 s .. 0.6 s
    before = time.monotonic()
    created = api.submit(ds, {"customers": [customer("c-1")], "plans": [PLAN]})
    assert created["status"] == "queued"
    assert api.poll(ds, created["id"])["status"] == "queued"

    time.sleep(max(0.0, before + 0.45 - time.monotonic()))
    assert api.poll(ds, created["id"])["status"] == "processing"
    assert fake.find_customers(ds, "c-1") == []

    time.sleep(max(0.0, before + 0.8 - time.monotonic()))
    assert fake.find_customers(ds, "c-1") == []  # nothing runs in the background ...
    fake.json_imports.advance()  # ... until a request or advance()
    assert [c["name"] for c in fake.find_customers(ds, "c-1")] == ["Name c-1"]
    assert fake.json_imports.completed_ids() == [created["id"]]
    assert api.poll(ds, created["id"])["status"] == "completed"


def test_in_the_background_an_import_is_applied_when_due_without_any_request(fake: FakeChartMogul, api: Client,
                                                                             ds: str) -> None:
    fake.json_imports.background = True
    fake.json_imports.queue_delay = 0.2
    created = api.submit(ds, {"customers": [customer("c-1")]})
    assert fake.find_customers(ds, "c-1") == []
    deadline = time.monotonic() + 5.0
    while not fake.find_customers(ds, "c-1") and time.monotonic() < deadline:
        time.sleep(0.02)  # no request, no advance(): only the worker can apply it
    assert [c["name"] for c in fake.find_customers(ds, "c-1")] == ["Name c-1"]
    assert fake.json_imports.polls == {}
    assert api.poll(ds, created["id"])["status"] == "completed"


def test_any_request_applies_the_imports_that_are_due(fake: FakeChartMogul, api: Client, ds: str, clock: Clock) -> None:
    fake.json_imports.queue_delay = 1.0
    api.submit(ds, {"customers": [customer("c-1")]})
    assert api.ok("GET", "/customers", data_source_uuid=ds)["entries"] == []
    clock.now += 1.0
    assert [c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]] == ["c-1"]  # no poll
    assert api.ok("GET", "/ping") == {"data": "pong!"}


def test_imports_of_one_data_source_run_one_after_another(fake: FakeChartMogul, api: Client, ds: str, clock: Clock) -> None:
    fake.json_imports.queue_delay = 1.0
    fake.json_imports.per_object_seconds = 1.0
    other = str(fake.add_data_source("other")["uuid"])
    first = api.submit(ds, {"customers": [customer("a"), customer("b")]})["id"]  # runs 1 .. 3
    clock.now += 0.5
    second = api.submit(ds, {"customers": [customer("c")]})["id"]  # waits for the first: 3 .. 4
    elsewhere = api.submit(other, {"customers": [customer("c")]})["id"]  # its own queue: 1.5 .. 2.5

    def statuses() -> tuple[str, str, str]:
        return api.poll(ds, first)["status"], api.poll(ds, second)["status"], api.poll(other, elsewhere)["status"]

    assert statuses() == ("queued", "queued", "queued")
    clock.now += 1.0
    assert statuses() == ("processing", "queued", "processing")
    clock.now += 1.0
    assert statuses() == ("processing", "queued", "completed")
    clock.now += 0.5
    assert statuses() == ("completed", "processing", "completed")
    clock.now += 0.75
    assert statuses()[1] == "processing"
    clock.now += 0.25
    assert statuses() == ("completed", "completed", "completed")
    assert fake.json_imports.completed_ids() == [elsewhere, first, second]


def test_queue_delay_and_per_object_seconds_are_read_at_submission(fake: FakeChartMogul, api: Client, ds: str,
                                                                   clock: Clock) -> None:
    fake.json_imports.queue_delay = 5.0
    created = api.submit(ds, {"customers": [customer("c-1")]})["id"]
    fake.json_imports.queue_delay = 0.0
    clock.now += 4.5
    assert api.poll(ds, created)["status"] == "queued"
    clock.now += 0.5
    assert api.poll(ds, created)["status"] == "completed"


# ---------------------------------------------------------------------- effects equal REST's

VOLATILE = {"id", "uuid", "customer_uuid", "plan_uuid", "subscription_uuid", "data_source_uuid", "data_source_uuids",
            "chartmogul-url", "created_at", "updated_at", "before_key"}


def stable(value: Any) -> Any:
    """An answer with the ids and clock times blanked (they always differ between two copies), and string
    cursors (the keyset cursors of invoices and events name an object's uuid or id; null ones are kept)."""
    if isinstance(value, dict):
        return {k: "<volatile>" if k in VOLATILE or (k == "cursor" and isinstance(v, str)) else stable(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


FULL_CUSTOMER = {"external_id": "c-full", "name": "Acme", "email": "billing@acme.test", "company": "Acme Inc",
                 "country": "US", "state": "CA", "city": "Springfield", "zip": "12345",
                 "lead_created_at": "2024-01-02T03:04:05Z", "free_trial_started_at": "2024-01-05"}
BARE_CUSTOMER = {"external_id": "c-bare"}
REST_INVOICE = {"external_id": "inv-1", "date": "2024-01-01T00:00:00Z", "due_date": "2024-01-15", "currency": "EUR",
                "collection_method": "manual"}
SUB_ITEM = {"type": "subscription", "external_id": "li-1", "subscription_external_id": "sub-1",
            "service_period_start": "2024-01-01T00:00:00Z", "service_period_end": "2024-02-01T00:00:00Z",
            "amount_in_cents": 5000, "quantity": 2, "discount_code": "WELCOME", "discount_amount_in_cents": 500,
            "tax_amount_in_cents": 900, "prorated": True}
FEE_ITEM = {"type": "one_time", "external_id": "li-2", "description": "Setup", "amount_in_cents": 1200}
PAID = {"type": "payment", "result": "successful", "date": "2024-01-03T00:00:00Z", "external_id": "tx-1",
        "amount_in_cents": 4000}
LATE = {"type": "payment", "result": "successful", "date": "2024-02-01T00:00:00Z", "external_id": "tx-2"}
EVENT = {"external_id": "ev-1", "customer_external_id": "c-full", "subscription_external_id": "sub-1",
         "plan_external_id": "pl-1", "event_type": "subscription_start", "event_date": "2024-01-01T00:00:00Z",
         "effective_date": "2024-01-01T00:00:00Z", "currency": "EUR", "amount_in_cents": 5000, "quantity": 2}


def through_rest(api: Client, ds: str) -> None:
    plan = api.ok("POST", "/plans", {**PLAN, "data_source_uuid": ds}, 201)
    full = api.ok("POST", "/customers", {**FULL_CUSTOMER, "data_source_uuid": ds}, 201)
    api.ok("POST", "/customers", {**BARE_CUSTOMER, "data_source_uuid": ds}, 201)
    sent = {**REST_INVOICE, "line_items": [{**SUB_ITEM, "plan_uuid": plan["uuid"]}, FEE_ITEM], "transactions": [PAID]}
    imported = api.ok("POST", f"/import/customers/{full['uuid']}/invoices", {"invoices": [sent]}, 201)
    api.ok("POST", "/subscription_events", {"subscription_event": {**EVENT, "data_source_uuid": ds}}, 201)
    api.ok("POST", f"/import/invoices/{imported['invoices'][0]['uuid']}/transactions", LATE, 201)


def through_bulk(api: Client, ds: str) -> None:
    body = {"plans": [PLAN], "customers": [FULL_CUSTOMER, BARE_CUSTOMER],
            "invoices": [{**REST_INVOICE, "customer_external_id": "c-full"}],
            "line_items": [{**SUB_ITEM, "invoice_external_id": "inv-1", "plan_external_id": "pl-1"},
                           {**FEE_ITEM, "invoice_external_id": "inv-1"}],
            "transactions": [{**PAID, "invoice_external_id": "inv-1"}], "subscription_events": [EVENT]}
    assert api.run(ds, body)["status_details"]["c-full"]["status"] == "imported"
    late = api.run(ds, {"transactions": [{**LATE, "invoice_external_id": "inv-1"}]})  # for the stored invoice
    assert late["status_details"] == {"c-full": {"status": "imported", "transactions": IMPORTED}}


def answers(api: Client, ds: str) -> dict[str, Any]:
    """Every listing and GET that shows what was imported into one data source."""
    full = api.ok("GET", "/customers", data_source_uuid=ds, external_id="c-full")["entries"][0]
    invoice_uuid = api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"][0]["uuid"]
    return {
        "customers": api.ok("GET", "/customers", data_source_uuid=ds),
        "customer": api.ok("GET", f"/customers/{full['uuid']}"),
        "attributes": api.ok("GET", f"/customers/{full['uuid']}/attributes"),
        "plans": api.ok("GET", "/plans", data_source_uuid=ds),
        "invoices": api.ok("GET", "/invoices", data_source_uuid=ds),
        "invoice": api.ok("GET", f"/invoices/{invoice_uuid}"),
        "customer_invoices": api.ok("GET", f"/import/customers/{full['uuid']}/invoices"),
        "events": api.ok("GET", "/subscription_events", data_source_uuid=ds),
    }


def test_objects_imported_in_bulk_answer_exactly_as_those_made_through_rest(fake: FakeChartMogul, api: Client) -> None:
    rest, bulk = (str(fake.add_data_source(name)["uuid"]) for name in ("rest", "bulk"))
    through_rest(api, rest)
    through_bulk(api, bulk)

    by_rest, by_bulk = answers(api, rest), answers(api, bulk)
    assert stable(by_bulk) == stable(by_rest)
    bare = by_bulk["customers"]["entries"][1]
    assert (bare["name"], bare["email"], bare["company"], bare["country"]) == ("", "", "", None)
    assert by_bulk["invoice"]["date"] == "2024-01-01T00:00:00.000Z"
    assert [len(i["transactions"]) for i in by_bulk["invoices"]["invoices"]] == [2]
    assert by_bulk["customer"]["status"] == "Active"


# ---------------------------------------------------------------------- failures, object by object


def test_each_invalid_object_fails_alone_and_is_not_applied(fake: FakeChartMogul, api: Client, ds: str) -> None:
    # c-3's attributes fail it only with bulk_attributes="refused": that was the fake's only behaviour
    # before the switch; the default is now "kept" (Create a Customer takes attributes).
    fake.json_imports.bulk_attributes = "refused"
    api.run(ds, {"plans": [PLAN], **one_customer_body("c-1")})  # inv-c-1 now exists
    body = {
        "plans": [PLAN, {"external_id": "pl-bad", "name": "Bad", "interval_count": 1, "interval_unit": "week"}],
        "customers": [customer("c-2"), customer("c-3", attributes={"tags": ["vip"]})],
        "invoices": [invoice("inv-ghost", "c-404"), invoice("inv-c-1", "c-2"), invoice("inv-2", "c-2"),
                     invoice("inv-3", "c-2", currency="usd")],
        "line_items": [item("inv-ghost", "li-g"), item("inv-c-1", "li-dup"), subscription_item("inv-2", "li-2", "pl-404"),
                       item("inv-2", "li-2b"), item("inv-3", "li-3"), item("inv-404", "li-orphan")],
        "transactions": [payment("inv-2", "tx-2")],
        "subscription_events": [{"external_id": "ev-1", "customer_external_id": "c-2", "subscription_external_id": "s",
                                 "event_type": "subscription_start", "event_date": "2024-01-01",
                                 "effective_date": "2024-01-01", "plan_external_id": "pl-404", "currency": "USD",
                                 "amount_in_cents": 1, "quantity": 1}],
    }
    details = api.run(ds, body)["status_details"]

    assert details == {
        "plans": {"status": "failed", "errors": [{"external_id": "pl-bad",
                                                  "errors": {"interval_unit": "is not included in the list"}}]},
        "line_items": {"status": "failed", "errors": [{"external_id": "li-orphan",
                                                       "errors": {"invoice_external_id": "Invoice not found"}}]},
        "c-2": {
            "status": "failed",
            "invoices": {"status": "failed", "errors": [
                {"external_id": "inv-c-1", "errors": {"external_id": DUP_INVOICE}},
                {"external_id": "inv-2", "errors": {"line_items": "is invalid"}},
                {"external_id": "inv-3", "errors": {"currency": "is invalid"}}]},
            "customers": IMPORTED,
            "line_items": {"status": "failed", "errors": [
                {"external_id": "li-dup", "errors": NOT_IMPORTED},
                {"external_id": "li-2", "errors": {"plan_external_id": "Plan not found"}},
                {"external_id": "li-2b", "errors": NOT_IMPORTED},
                {"external_id": "li-3", "errors": NOT_IMPORTED}]},
            "transactions": {"status": "failed", "errors": [{"external_id": "tx-2", "errors": NOT_IMPORTED}]},
            "subscription_events": {"status": "failed", "errors": [{"external_id": "ev-1",
                                                                    "errors": {"plan_external_id": "Plan not found"}}]},
        },
        "c-3": {"status": "failed", "customers": {"status": "failed", "errors": [
            {"external_id": "c-3", "errors": {"attributes": "is not accepted by the bulk import"}}]}},
        "c-404": {"status": "failed",
                  "invoices": {"status": "failed", "errors": [{"external_id": "inv-ghost",
                                                               "errors": {"customer_external_id": "Customer not found"}}]},
                  "line_items": {"status": "failed", "errors": [{"external_id": "li-g", "errors": NOT_IMPORTED}]}},
    }
    assert [c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]] == ["c-1", "c-2"]
    assert [i["external_id"] for i in api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"]] == ["inv-c-1"]
    stored = fake.find_invoice(ds, "inv-c-1")
    assert stored is not None and [t["external_id"] for t in stored["transactions"]] == ["tx-c-1"]
    assert [p["external_id"] for p in api.ok("GET", "/plans", data_source_uuid=ds)["plans"]] == ["pl-1"]
    assert api.ok("GET", "/subscription_events", data_source_uuid=ds)["subscription_events"] == []


def test_a_known_plan_is_kept_and_reported_imported(fake: FakeChartMogul, api: Client, ds: str) -> None:
    api.ok("POST", "/plans", {**PLAN, "data_source_uuid": ds}, 201)
    details = api.run(ds, {"plans": [{**PLAN, "name": "Renamed"}]})["status_details"]
    assert details == {"plans": IMPORTED}
    assert [p["name"] for p in api.ok("GET", "/plans", data_source_uuid=ds)["plans"]] == ["Pro"]


# ---------------------------------------------------------------------- switches

FAILED_INVOICE_BODY = {"customers": [customer("c-1")], "invoices": [invoice("inv-1", "c-1", currency="usd")],
                       "line_items": [item("inv-1", "li-1")]}


@pytest.mark.parametrize(("detail", "invoices", "line_items"), [
    ("errors",
     {"status": "failed", "errors": [{"external_id": "inv-1", "errors": {"currency": "is invalid"}}]},
     {"status": "failed", "errors": [{"external_id": "li-1", "errors": NOT_IMPORTED}]}),
    ("message",
     {"status": "failed", "message": "1 invoice failed: inv-1: currency is invalid"},
     {"status": "failed", "message": "1 line item failed: li-1: invoice_external_id invoice was not imported"}),
    ("bare", {"status": "failed"}, {"status": "failed"}),
])
def test_failure_detail(fake: FakeChartMogul, api: Client, ds: str, detail: str, invoices: Any, line_items: Any) -> None:
    fake.json_imports.failure_detail = detail
    details = api.run(ds, FAILED_INVOICE_BODY)["status_details"]
    assert details == {"c-1": {"status": "failed", "invoices": invoices, "customers": IMPORTED, "line_items": line_items}}


def test_failure_message_counts_and_joins_objects(fake: FakeChartMogul, api: Client, ds: str) -> None:
    fake.json_imports.failure_detail = "message"
    body = {"invoices": [invoice("inv-1", "c-9"), invoice("inv-2", "c-9", currency="usd", date="soon")]}
    details = api.run(ds, body)["status_details"]
    assert details["c-9"]["invoices"] == {"status": "failed", "message": (
        "2 invoices failed: inv-1: customer_external_id Customer not found; "
        "inv-2: customer_external_id Customer not found")}


def test_status_shape_counts(fake: FakeChartMogul, api: Client, ds: str) -> None:
    fake.json_imports.status_shape = "counts"
    fake.json_imports.paused = True
    created = api.submit(ds, {**FAILED_INVOICE_BODY, "plans": [PLAN]})
    assert list(created) == ["id", "data_source_uuid", "status", "external_id", "processed_count", "error_count",
                             "created_at", "updated_at"]
    assert (created["processed_count"], created["error_count"]) == (0, 0)
    fake.json_imports.paused = False
    done = api.poll(ds, created["id"])
    assert "status_details" not in done
    assert (done["status"], done["processed_count"], done["error_count"]) == ("completed", 2, 2)


def test_fail_customers(fake: FakeChartMogul, api: Client, ds: str) -> None:
    fake.json_imports.fail_customers = {"c-2"}
    body = {"plans": [PLAN], "customers": [customer("c-1"), customer("c-2")],
            "invoices": [invoice("inv-1", "c-1"), invoice("inv-2", "c-2")],
            "line_items": [item("inv-1", "li-1"), item("inv-2", "li-2")],
            "transactions": [payment("inv-2", "tx-2")],
            "subscription_events": [{"external_id": "ev-2", "customer_external_id": "c-2"}]}
    details = api.run(ds, body)["status_details"]

    def failed(ext: str) -> dict[str, Any]:
        return {"status": "failed", "errors": [{"external_id": ext, "errors": FAIL_SWITCH}]}

    assert details == {
        "plans": IMPORTED,
        "c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED},
        "c-2": {"status": "failed", "invoices": failed("inv-2"), "customers": failed("c-2"), "line_items": failed("li-2"),
                "transactions": failed("tx-2"), "subscription_events": failed("ev-2")},
    }
    assert fake.find_customers(ds, "c-2") == [] and fake.find_invoice(ds, "inv-2") is None
    assert fake.find_invoice(ds, "inv-1") is not None


@pytest.mark.parametrize(("mode", "name", "invoices"), [("update", "New", 1), ("keep", "Old", 1), ("fail", "Old", 0)])
def test_existing_customer(fake: FakeChartMogul, api: Client, ds: str, mode: str, name: str, invoices: int) -> None:
    fake.json_imports.existing_customer = mode
    api.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "c-1", "name": "Old", "city": "Oslo"}, 201)
    body = {"customers": [{"external_id": "c-1", "name": "New"}], "invoices": [invoice("inv-1", "c-1")],
            "line_items": [item("inv-1", "li-1")]}
    details = api.run(ds, body)["status_details"]

    [stored] = api.ok("GET", "/customers", data_source_uuid=ds)["entries"]
    assert (stored["name"], stored["city"]) == (name, "Oslo")
    assert len(api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"]) == invoices
    if mode == "fail":
        assert details == {"c-1": {"status": "failed",
                                   "invoices": {"status": "failed", "errors": [{"external_id": "inv-1", "errors": TAKEN}]},
                                   "customers": {"status": "failed", "errors": [{"external_id": "c-1", "errors": TAKEN}]},
                                   "line_items": {"status": "failed", "errors": [{"external_id": "li-1", "errors": TAKEN}]}}}
    else:
        assert details == {"c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED}}


def test_paused_imports_never_leave_processing(fake: FakeChartMogul, api: Client, ds: str) -> None:
    fake.json_imports.paused = True
    created = api.submit(ds, {"customers": [customer("c-1")]})["id"]
    for _ in range(3):
        assert api.poll(ds, created)["status"] == "processing"
    fake.json_imports.advance()
    assert fake.find_customers(ds, "c-1") == [] and fake.json_imports.completed_ids() == []
    fake.json_imports.paused = False
    assert api.poll(ds, created)["status"] == "completed"
    assert len(fake.find_customers(ds, "c-1")) == 1


def test_pausing_stops_the_clock(fake: FakeChartMogul, api: Client, ds: str, clock: Clock) -> None:
    fake.json_imports.per_object_seconds = 2.0
    created = api.submit(ds, {"customers": [customer("c-1")]})["id"]  # processing 0 .. 2
    clock.now += 1.0
    fake.json_imports.paused = True
    clock.now += 100.0
    assert api.poll(ds, created)["status"] == "processing"
    fake.json_imports.paused = False
    clock.now += 0.5
    assert api.poll(ds, created)["status"] == "processing"
    clock.now += 0.5
    assert api.poll(ds, created)["status"] == "completed"


@pytest.mark.parametrize("shape", ["details", "counts"])
def test_whole_import_failure(fake: FakeChartMogul, api: Client, ds: str, shape: str) -> None:
    fake.json_imports.status_shape = shape
    fake.json_imports.whole_import_failure = "Import failed: internal error"
    done = api.run(ds, one_customer_body())
    assert done["status"] == "failed"
    assert done["status_details"] == {"error": "Import failed: internal error"}
    if shape == "counts":
        assert (done["processed_count"], done["error_count"]) == (0, 4)
    assert api.ok("GET", "/customers", data_source_uuid=ds)["entries"] == []
    assert fake.json_imports.completed_ids() == []


# ---------------------------------------------------------------------- refusals


def raw_post(api: Client, ds: str, data: bytes) -> requests.Response:
    return api.session.post(f"{api.url}/data_sources/{ds}/json_imports", data=data,
                            headers={"Content-Type": "application/json"}, timeout=30)


def body_of_size(size: int) -> bytes:
    """A valid import body of exactly ``size`` bytes."""
    empty = len(b'{"external_id": ""}')
    return b'{"external_id": "' + b"x" * (size - empty) + b'"}'


TOO_LARGE = {"code": 413, "message": "Request body exceeds 5 MB", "param": None}


def test_a_body_over_5_000_000_bytes_answers_413(fake: FakeChartMogul, api: Client, ds: str) -> None:
    """The reference's "5MB" as bytes: 5,000,000 is accepted, one byte more is not. (This test pinned
    5 MiB, 5,242,880 bytes, before; the limit is now the max_body_bytes switch, default 5,000,000.)
    """
    at_limit = raw_post(api, ds, body_of_size(MAX_BODY))
    assert at_limit.status_code == 200, at_limit.text
    over = raw_post(api, ds, body_of_size(MAX_BODY + 1))
    assert (over.status_code, over.json()) == (413, TOO_LARGE)
    mebibytes = raw_post(api, ds, body_of_size(5 * 1024 * 1024))
    assert (mebibytes.status_code, mebibytes.json()) == (413, TOO_LARGE)
    assert len(fake.json_imports.submitted) == 1
    assert [r.size for r in fake.requests if r.method == "POST"] == [MAX_BODY, MAX_BODY + 1, 5 * 1024 * 1024]


JAPANESE = "請求書の顧客"  # 3 bytes a character in UTF-8


def japanese_import(name: str) -> bytes:
    """A one-customer import, UTF-8 as sent (not escaped)."""
    body = {"external_id": "jp-1", "customers": [{"external_id": "c-jp", "name": name}]}
    return json.dumps(body, ensure_ascii=False).encode()


def japanese_name(size: int) -> str:
    """The Japanese name (plus at most two ASCII letters) that makes :func:`japanese_import` ``size`` bytes."""
    room = size - len(japanese_import(""))
    return (JAPANESE * (room // 18 + 1))[: room // 3] + "x" * (room % 3)


@pytest.mark.parametrize(("size", "status"), [(MAX_BODY, 200), (MAX_BODY + 1, 413)])
def test_the_limit_counts_bytes_not_characters(fake: FakeChartMogul, api: Client, ds: str, size: int, status: int) -> None:
    name = japanese_name(size)
    data = japanese_import(name)
    assert len(data) == size and len(data.decode()) < 1_700_000  # bytes at the limit, a third as many characters
    response = raw_post(api, ds, data)
    assert response.status_code == status, response.text
    if status == 413:
        assert response.json() == TOO_LARGE
        assert fake.json_imports.submitted == [] and fake.find_customers(ds, "c-jp") == []
        return
    assert api.poll(ds, "jp-1")["status"] == "completed"
    [stored] = fake.find_customers(ds, "c-jp")
    assert stored["name"] == name and stored["name"].startswith(JAPANESE)  # decoded as UTF-8, every character kept


@pytest.mark.parametrize(("limit", "size", "status"), [(1000, 1000, 200), (1000, 1001, 413), (6_000_000, 5_500_000, 200)])
def test_max_body_bytes(fake: FakeChartMogul, api: Client, ds: str, limit: int, size: int, status: int) -> None:
    fake.json_imports.max_body_bytes = limit
    response = raw_post(api, ds, body_of_size(size))
    assert response.status_code == status, response.text
    assert len(fake.json_imports.submitted) == (1 if status == 200 else 0)


@pytest.mark.parametrize(("body", "message", "param"), [
    ([{"customers": []}], "The request body must be a JSON object", None),
    ({"customers": {"external_id": "c-1"}}, '"customers" must be an array', "customers"),
    ({"plans": None}, '"plans" must be an array', "plans"),
    ({"invoices": [1]}, 'every entry of "invoices" must be an object', "invoices"),
    ({"customers": [customer(f"c-{n}") for n in range(1001)]}, "An import may hold at most 1000 customers", "customers"),
    ({"external_id": 7}, '"external_id" must be a string', "external_id"),
])
def test_a_malformed_body_answers_422(fake: FakeChartMogul, api: Client, ds: str, body: Any, message: str,
                                      param: str | None) -> None:
    response = api.call("POST", f"/data_sources/{ds}/json_imports", body)
    assert (response.status_code, response.json()) == (422, {"code": 422, "message": message, "param": param})
    assert fake.json_imports.submitted == [] and fake.json_imports.imports == {}


def test_a_thousand_customers_are_accepted(fake: FakeChartMogul, api: Client, ds: str) -> None:
    done = api.run(ds, {"customers": [{"external_id": f"c-{n}"} for n in range(1000)]})
    assert done["status"] == "completed" and len(done["status_details"]) == 1000


def test_unknown_data_source_and_unknown_import_answer_404(fake: FakeChartMogul, api: Client, ds: str) -> None:
    unknown_ds = api.call("GET", "/data_sources/ds_missing").json()
    assert unknown_ds == {"error": "Data source not found"}
    post = api.call("POST", "/data_sources/ds_missing/json_imports", {"customers": []})
    get = api.call("GET", "/data_sources/ds_missing/json_imports/whatever")
    assert (post.status_code, post.json()) == (get.status_code, get.json()) == (404, unknown_ds)

    missing = {"code": 404, "message": "Import not found", "param": None}
    unknown = api.call("GET", f"/data_sources/{ds}/json_imports/4815d987-abcd-11ee-a987-978df45c5114")
    assert (unknown.status_code, unknown.json()) == (404, missing)
    other = str(fake.add_data_source("other")["uuid"])
    created = api.submit(other, {})["id"]
    wrong_ds = api.call("GET", f"/data_sources/{ds}/json_imports/{created}")
    assert (wrong_ds.status_code, wrong_ds.json()) == (404, missing)


def test_auth_and_faults_apply_as_on_every_route(fake: FakeChartMogul, api: Client, ds: str) -> None:
    stranger = Client(fake, key="wrong")
    refused = stranger.call("POST", f"/data_sources/{ds}/json_imports", one_customer_body())
    stranger.session.close()
    assert refused.status_code == 401
    fake.inject(Fault("error_after", path_regex="json_imports$", status=502))
    lost = api.call("POST", f"/data_sources/{ds}/json_imports", one_customer_body())
    assert lost.status_code == 502  # applied, but the answer was lost
    assert len(fake.json_imports.submitted) == 1
    assert api.ok("GET", "/customers", data_source_uuid=ds)["entries"][0]["external_id"] == "c-1"


# ---------------------------------------------------------------------- observations


def test_submitted_polls_and_imports(fake: FakeChartMogul, api: Client, ds: str) -> None:
    body = one_customer_body()
    created = api.submit(ds, body)["id"]
    for _ in range(3):
        api.poll(ds, created)
    api.call("GET", f"/data_sources/{ds}/json_imports/nope")
    assert fake.json_imports.submitted == [body]
    assert fake.json_imports.polls == {created: 3, "nope": 1}
    record = fake.json_imports.imports[created]
    assert (record.status, record.data_source_uuid, record.objects, record.customers) == ("completed", ds, 4, {"c-1"})
    assert fake.json_imports.completed_ids() == [created]


def test_violations_for_a_customer_in_two_unfinished_imports(fake: FakeChartMogul, api: Client, ds: str,
                                                             clock: Clock) -> None:
    fake.json_imports.queue_delay = 10.0
    first = api.submit(ds, one_customer_body("c-1"))["id"]
    api.submit(ds, one_customer_body("c-2"))  # another customer: fine
    api.submit(str(fake.add_data_source("other")["uuid"]), one_customer_body("c-1"))  # another data source: fine
    assert fake.json_imports.violations == []

    late_payment = api.submit(ds, {"transactions": [payment("inv-c-1", "tx-9")]})["id"]  # c-1's, through first's invoice
    assert fake.json_imports.violations == [
        f"import {late_payment} sent customers ['c-1'] while import {first} with them was still queued"]


def test_no_violation_once_the_earlier_import_completed(fake: FakeChartMogul, api: Client, ds: str) -> None:
    api.run(ds, one_customer_body("c-1"))
    api.run(ds, {"transactions": [payment("inv-c-1", "tx-9")]})
    api.run(ds, {"customers": [customer("c-1", name="Renamed")]})
    assert fake.json_imports.violations == []
    assert len(fake.json_imports.completed_ids()) == 3


# ---------------------------------------------------------------------- switches are checked; the command line


def test_switch_values_are_checked(fake: FakeChartMogul) -> None:
    imports = fake.json_imports
    for name, value in [("status_shape", "full"), ("failure_detail", "verbose"), ("existing_customer", "merge"),
                        ("queue_delay", -1), ("per_object_seconds", "1"), ("poll_by", "uuid"), ("poll_by", None),
                        ("forget_imports", "yes"), ("forget_imports", 1), ("validation", "later"),
                        ("bulk_attributes", "merge"), ("max_body_bytes", 0), ("max_body_bytes", 5.5),
                        ("max_body_bytes", True), ("duplicate_external_id", "replace"), ("unstored", "c-1"),
                        ("unstored", [""]), ("unstored", [1]), ("unstored", None)]:
        with pytest.raises(ValueError, match=name):
            setattr(imports, name, value)
        with pytest.raises(ValueError, match=name):
            JsonImports(fake.store, **{name: value})
    assert imports.unstored == set() and imports.max_body_bytes == 5_000_000  # refused values changed nothing
    defaults = JsonImports(fake.store)
    assert (defaults.queue_delay, defaults.per_object_seconds, defaults.status_shape, defaults.failure_detail,
            defaults.fail_customers, defaults.existing_customer, defaults.paused, defaults.whole_import_failure) == (
        0.0, 0.0, "details", "errors", set(), "update", False, None)
    assert (defaults.background, defaults.poll_by, defaults.forget_imports, defaults.validation, defaults.unstored,
            defaults.bulk_attributes, defaults.max_body_bytes, defaults.duplicate_external_id) == (
        False, "both", False, "sync", set(), "kept", 5_000_000, "refuse")
    chosen = JsonImports(fake.store, background=True, poll_by="id", forget_imports=True, validation="async",
                         unstored=("c-1", "inv-1"), bulk_attributes="ignored", max_body_bytes=10,
                         duplicate_external_id="accept")
    assert (chosen.background, chosen.poll_by, chosen.forget_imports, chosen.validation, chosen.unstored,
            chosen.bulk_attributes, chosen.max_body_bytes, chosen.duplicate_external_id) == (
        True, "id", True, "async", {"c-1", "inv-1"}, "ignored", 10, "accept")


@pytest.mark.subprocess  # the fake's command line
def test_command_line_bulk_delays(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_chartmogul", "--port", "0", "--api-key", "k", "--data-source-uuid", "ds_cli",
         "--bulk-queue-delay", "30", "--bulk-per-object-seconds", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]
        created = requests.post(url + "/data_sources/ds_cli/json_imports", json={}, auth=("k", ""), timeout=5).json()
        polled = requests.get(f"{url}/data_sources/ds_cli/json_imports/{created['id']}", auth=("k", ""), timeout=5)
        assert polled.json()["status"] == "queued"
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_submitted_bodies_are_copies(fake: FakeChartMogul, api: Client, ds: str) -> None:
    body = one_customer_body()
    created = api.submit(ds, body)["id"]
    fake.json_imports.submitted[0]["customers"].clear()
    assert fake.json_imports.imports[created].body == copy.deepcopy(body)


# ---------------------------------------------------------------------- the reference's example; poll_by, forget_imports

DOCS_CUSTOMER = "scus_0001"


def docs_body(external_id: str = "ds_import_1") -> dict[str, Any]:
    """An import with a plan and one customer holding every kind of object, as the reference's example has."""
    return {"external_id": external_id, "plans": [PLAN], "customers": [customer(DOCS_CUSTOMER)],
            "invoices": [invoice("inv-1", DOCS_CUSTOMER)], "line_items": [subscription_item("inv-1", "li-1")],
            "transactions": [payment("inv-1", "tx-1")],
            "subscription_events": [{**EVENT, "customer_external_id": DOCS_CUSTOMER, "currency": "USD"}]}


def test_the_reference_example_polled_by_external_id(fake: FakeChartMogul, api: Client) -> None:
    """ChartMogul's documented Track Import Status example [D]: the request path as documented (import_id is
    the import's external_id), and the answer in the documented keys, order, types and status_details.
    """
    documented = load("json_import_status_docs")
    assert documented.evidence == "docs"
    [exchange] = documented.exchanges
    ds = exchange.path.split("/")[2]
    fake.add_data_source("documented", uuid=ds)
    created = api.submit(ds, docs_body())

    answer = api.call(exchange.method, exchange.path)  # GET /data_sources/ds_1fm3…/json_imports/ds_import_1
    assert answer.status_code == exchange.status == 200
    done = answer.json()
    assert list(done) == list(exchange.response_body)
    assert differences(exchange.response_body, done) == []
    assert done["status_details"] == exchange.response_body["status_details"]
    assert json.dumps(done["status_details"]) == json.dumps(exchange.response_body["status_details"])  # key order too
    assert (done["status"], done["external_id"], done["id"]) == ("completed", "ds_import_1", created["id"])
    assert UUID4.match(done["id"]) and done["id"] != done["external_id"]
    assert fake.json_imports.polls == {"ds_import_1": 1}


@pytest.mark.parametrize(("mode", "by_id", "by_external_id"), [
    ("both", 200, 200), ("external_id", 404, 200), ("id", 200, 404)])
def test_poll_by(fake: FakeChartMogul, api: Client, ds: str, mode: str, by_id: int, by_external_id: int) -> None:
    fake.json_imports.poll_by = mode
    created = api.submit(ds, {**one_customer_body(), "external_id": "batch-1"})
    other = str(fake.add_data_source("other")["uuid"])

    answers = {name: api.call("GET", f"/data_sources/{ds}/json_imports/{name}") for name in (created["id"], "batch-1")}
    assert [answers[created["id"]].status_code, answers["batch-1"].status_code] == [by_id, by_external_id]
    for response in answers.values():
        if response.status_code == 200:
            assert response.json()["id"] == created["id"] and response.json()["status"] == "completed"
            assert response.json()["external_id"] == "batch-1"
        else:
            assert response.json() == IMPORT_NOT_FOUND
    for name in (created["id"], "batch-1"):  # never found through another data source
        wrong_ds = api.call("GET", f"/data_sources/{other}/json_imports/{name}")
        assert (wrong_ds.status_code, wrong_ds.json()) == (404, IMPORT_NOT_FOUND)
    assert fake.json_imports.polls == {created["id"]: 2, "batch-1": 2}
    assert fake.find_customers(ds, "c-1") != []  # applied whatever the polls found


def test_polling_by_external_id_answers_exactly_what_polling_by_id_does(fake: FakeChartMogul, api: Client, ds: str,
                                                                        clock: Clock) -> None:
    fake.json_imports.queue_delay = 1.0
    fake.json_imports.failure_detail = "message"
    created = api.submit(ds, {**FAILED_INVOICE_BODY, "external_id": "batch-1"})
    assert api.poll(ds, "batch-1") == api.poll(ds, created["id"]) == created  # queued
    clock.now += 1.0
    done = api.poll(ds, "batch-1")
    assert done == api.poll(ds, created["id"])
    assert done["status"] == "completed" and done["status_details"]["c-1"]["status"] == "failed"


@pytest.mark.parametrize("poll_by", ["both", "external_id", "id"])
def test_forget_imports(fake: FakeChartMogul, api: Client, ds: str, clock: Clock, poll_by: str) -> None:
    fake.json_imports.poll_by = poll_by
    fake.json_imports.forget_imports = True
    fake.json_imports.queue_delay = 1.0
    created = api.submit(ds, {**one_customer_body(), "external_id": "batch-1"})
    assert created["status"] == "queued"  # the create answer is as always

    def polls() -> list[tuple[int, Any]]:
        return [(r.status_code, r.json()) for r in
                (api.call("GET", f"/data_sources/{ds}/json_imports/{name}") for name in (created["id"], "batch-1"))]

    assert polls() == [(404, IMPORT_NOT_FOUND)] * 2
    assert fake.find_customers(ds, "c-1") == []
    clock.now += 1.0
    assert polls() == [(404, IMPORT_NOT_FOUND)] * 2
    assert [c["name"] for c in fake.find_customers(ds, "c-1")] == ["Name c-1"]  # still applied on its schedule
    stored = fake.find_invoice(ds, "inv-c-1")
    assert stored is not None and [t["external_id"] for t in stored["transactions"]] == ["tx-c-1"]
    assert fake.json_imports.completed_ids() == [created["id"]]
    assert fake.json_imports.polls == {created["id"]: 2, "batch-1": 2}
    fake.json_imports.forget_imports = False  # the fake itself still knows it
    found = api.poll(ds, "batch-1" if poll_by != "id" else created["id"])
    assert (found["id"], found["status"]) == (created["id"], "completed")


# ---------------------------------------------------------------------- validation

MIXED_BODY = {"plans": [PLAN, {"external_id": "pl-bad", "name": "Bad", "interval_count": 1, "interval_unit": "week"}],
              "customers": [customer("c-1"), customer("c-2", country="Norway")],
              "invoices": [invoice("inv-1", "c-1", currency="usd"), invoice("inv-2", "c-1")],
              "line_items": [item("inv-1", "li-1"), item("inv-2", "li-2")],
              "transactions": [payment("inv-2", "tx-2")]}
SYNC_DETAILS = {
    "plans": {"status": "failed", "errors": [{"external_id": "pl-bad",
                                              "errors": {"interval_unit": "is not included in the list"}}]},
    "c-1": {"status": "failed",
            "invoices": {"status": "failed", "errors": [{"external_id": "inv-1", "errors": {"currency": "is invalid"}}]},
            "customers": IMPORTED,
            "line_items": {"status": "failed", "errors": [{"external_id": "li-1", "errors": NOT_IMPORTED}]},
            "transactions": IMPORTED},
    "c-2": {"status": "failed", "customers": {"status": "failed", "errors": [
        {"external_id": "c-2", "errors": {"country": "Country is invalid"}}]}},
}
ASYNC_DETAILS = {"plans": IMPORTED,
                 "c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED,
                         "transactions": IMPORTED},
                 "c-2": {"status": "imported", "customers": IMPORTED}}


@pytest.mark.parametrize(("validation", "details", "counts"), [("sync", SYNC_DETAILS, (5, 4)),
                                                               ("async", ASYNC_DETAILS, (9, 0))])
def test_validation(fake: FakeChartMogul, api: Client, ds: str, validation: str, details: Any,
                    counts: tuple[int, int]) -> None:
    fake.json_imports.validation = validation
    created = api.submit(ds, MIXED_BODY)
    done = api.poll(ds, created["id"])
    assert (done["status"], done["status_details"]) == ("completed", details)
    fake.json_imports.status_shape = "counts"
    counted = api.poll(ds, created["id"])
    assert (counted["processed_count"], counted["error_count"]) == counts

    # whatever was reported, the same objects were stored
    assert [c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]] == ["c-1"]
    assert [p["external_id"] for p in api.ok("GET", "/plans", data_source_uuid=ds)["plans"]] == ["pl-1"]
    [stored] = api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"]
    assert (stored["external_id"], [t["external_id"] for t in stored["transactions"]]) == ("inv-2", ["tx-2"])
    outcomes = fake.json_imports.imports[created["id"]].outcomes  # the truth, in both modes
    assert [o.external_id for o in outcomes if o.failed] == ["pl-bad", "c-2", "inv-1", "li-1"]


def test_validation_is_read_when_an_import_is_applied(fake: FakeChartMogul, api: Client, ds: str, clock: Clock) -> None:
    fake.json_imports.queue_delay = 1.0
    created = api.submit(ds, FAILED_INVOICE_BODY)
    fake.json_imports.validation = "async"
    clock.now += 1.0
    assert api.poll(ds, created["id"])["status_details"]["c-1"] == {
        "status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED}
    fake.json_imports.validation = "sync"  # an applied import keeps how it was reported
    assert api.poll(ds, created["id"])["status_details"]["c-1"]["status"] == "imported"
    assert fake.find_invoice(ds, "inv-1") is None


# ---------------------------------------------------------------------- unstored

UNSTORED_EVENT = {key: value for key, value in EVENT.items() if key != "external_id"}


def test_unstored_objects_of_every_kind_are_reported_imported_and_never_stored(fake: FakeChartMogul, api: Client,
                                                                              ds: str) -> None:
    fake.json_imports.unstored = {"pl-2", "c-2", "inv-2", "li-1b", "ev-2"}
    body = {"plans": [PLAN, {**PLAN, "external_id": "pl-2", "name": "Two"}],
            "customers": [customer("c-full"), customer("c-2")],
            "invoices": [invoice("inv-1", "c-full"), invoice("inv-2", "c-full")],
            "line_items": [item("inv-1", "li-1"), item("inv-1", "li-1b"), item("inv-2", "li-2")],
            "transactions": [payment("inv-1", "tx-1"), payment("inv-2", "tx-2")],
            "subscription_events": [{**UNSTORED_EVENT, "external_id": "ev-1"},
                                    {**UNSTORED_EVENT, "external_id": "ev-2", "event_date": "2024-01-02T00:00:00Z"}]}
    created = api.submit(ds, body)
    everything = {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED,
                  "transactions": IMPORTED, "subscription_events": IMPORTED}
    assert api.poll(ds, created["id"])["status_details"] == {
        "plans": IMPORTED, "c-full": everything, "c-2": {"status": "imported", "customers": IMPORTED}}
    outcomes = fake.json_imports.imports[created["id"]].outcomes
    assert [o.external_id for o in outcomes if o.unstored] == ["pl-2", "c-2", "li-1b", "inv-2", "li-2", "tx-2", "ev-2"]
    assert not any(o.failed for o in outcomes)

    assert [p["external_id"] for p in api.ok("GET", "/plans", data_source_uuid=ds)["plans"]] == ["pl-1"]
    assert [c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]] == ["c-full"]
    [stored] = api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"]
    assert stored["external_id"] == "inv-1"
    assert [li["external_id"] for li in stored["line_items"]] == ["li-1"]  # li-1b left out of its invoice
    assert [t["external_id"] for t in stored["transactions"]] == ["tx-1"]
    events = api.ok("GET", "/subscription_events", data_source_uuid=ds)["subscription_events"]
    assert [e["external_id"] for e in events] == ["ev-1"]

    # valid, and nothing of them stored: the same objects written through REST afterwards are accepted
    full = fake.find_customers(ds, "c-full")[0]
    api.ok("POST", "/plans", {**PLAN, "external_id": "pl-2", "name": "Two", "data_source_uuid": ds}, 201)
    api.ok("POST", "/customers", {**customer("c-2"), "data_source_uuid": ds}, 201)
    inv_2 = {key: value for key, value in invoice("inv-2", "c-full").items() if key != "customer_external_id"}
    rest_items = [{key: value for key, value in item("inv-2", "li-2").items() if key != "invoice_external_id"}]
    rest_txs = [{key: value for key, value in payment("inv-2", "tx-2").items() if key != "invoice_external_id"}]
    api.ok("POST", f"/import/customers/{full['uuid']}/invoices",
           {"invoices": [{**inv_2, "line_items": rest_items, "transactions": rest_txs}]}, 201)
    api.ok("POST", "/subscription_events", {"subscription_event": {
        **UNSTORED_EVENT, "external_id": "ev-2", "event_date": "2024-01-02T00:00:00Z", "data_source_uuid": ds}}, 201)


def test_an_unstored_transaction_for_a_stored_invoice(fake: FakeChartMogul, api: Client, ds: str) -> None:
    api.run(ds, one_customer_body("c-1"))
    fake.json_imports.unstored = {"tx-late"}
    late = api.run(ds, {"transactions": [payment("inv-c-1", "tx-late", date="2024-01-09T00:00:00Z")]})
    assert late["status_details"] == {"c-1": {"status": "imported", "transactions": IMPORTED}}
    stored = fake.find_invoice(ds, "inv-c-1")
    assert stored is not None and [t["external_id"] for t in stored["transactions"]] == ["tx-c-1"]
    rest = {key: value for key, value in payment("inv-c-1", "tx-late").items() if key != "invoice_external_id"}
    api.ok("POST", f"/import/invoices/{stored['uuid']}/transactions", rest, 201)


@pytest.mark.parametrize(("validation", "details"), [
    ("sync", {"c-1": {"status": "failed",
                      "invoices": {"status": "failed", "errors": [{"external_id": "inv-c-1", "errors": NO_CUSTOMER}]},
                      "customers": IMPORTED,
                      "line_items": {"status": "failed", "errors": [{"external_id": "li-c-1", "errors": NOT_IMPORTED}]},
                      "transactions": {"status": "failed", "errors": [{"external_id": "tx-c-1", "errors": NOT_IMPORTED}]},
                      "subscription_events": {"status": "failed", "errors": [
                          {"external_id": "ev-c-1", "errors": NO_CUSTOMER}]}}}),
    ("async", {"c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED,
                       "transactions": IMPORTED, "subscription_events": IMPORTED}}),
])
def test_an_unstored_customer_takes_its_objects_with_it(fake: FakeChartMogul, api: Client, ds: str, validation: str,
                                                        details: Any) -> None:
    fake.json_imports.validation = validation
    fake.json_imports.unstored = {"c-1"}
    api.ok("POST", "/plans", {**PLAN, "data_source_uuid": ds}, 201)
    event = {**UNSTORED_EVENT, "external_id": "ev-c-1", "customer_external_id": "c-1"}
    done = api.run(ds, {**one_customer_body("c-1"), "subscription_events": [event]})
    assert done["status_details"] == details
    assert api.ok("GET", "/customers", data_source_uuid=ds)["entries"] == []
    assert api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"] == []
    assert api.ok("GET", "/subscription_events", data_source_uuid=ds)["subscription_events"] == []
    api.ok("POST", "/customers", {**customer("c-1"), "data_source_uuid": ds}, 201)  # it was valid


# ---------------------------------------------------------------------- bulk_attributes

ATTRIBUTES = {"tags": ["vip", "Beta"],
              "custom": [{"type": "Integer", "key": "seats", "value": 5, "source": "crm"},
                         {"type": "Timestamp", "key": "renewal", "value": "2024-03-01"},
                         {"type": "Boolean", "key": "pilot", "value": "t"},
                         {"type": "Decimal", "key": "score", "value": 4.5},
                         {"type": "String", "key": "channel", "value": "Twitter"}]}
KEPT = {"tags": ["vip", "Beta"], "custom": {"seats": 5, "renewal": "2024-03-01T00:00:00.000Z", "pilot": True,
                                           "score": 4.5, "channel": "Twitter"}}
KEPT_TYPES = {"seats": "Integer", "renewal": "Timestamp", "pilot": "Boolean", "score": "Decimal", "channel": "String"}
# Every other field Create a Customer takes.
CREATE_FIELDS = {"name": "Acme", "email": "billing@acme.test", "company": "Acme Inc", "country": "US", "state": "US-CA",
                 "city": "Springfield", "zip": "12345", "lead_created_at": "2024-01-02T03:04:05Z",
                 "free_trial_started_at": "2024-01-05", "website_url": "https://acme.test", "owner": "owner@acme.test",
                 "status": "Working Lead",
                 "primary_contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.test",
                                     "title": "CFO", "phone": "+1 555 0100", "linked_in": "https://linkedin.test/ada",
                                     "twitter": "@ada", "notes": "prefers email"}}


@pytest.mark.parametrize(("mode", "details", "attributes"), [
    ("kept", {"c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED}}, KEPT),
    ("ignored", {"c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED}},
     {"tags": [], "custom": {}}),
    ("refused", {"c-1": {"status": "failed",
                         "invoices": {"status": "failed", "errors": [{"external_id": "inv-1", "errors": NO_CUSTOMER}]},
                         "customers": {"status": "failed", "errors": [{"external_id": "c-1", "errors": NOT_IN_BULK}]},
                         "line_items": {"status": "failed", "errors": [{"external_id": "li-1", "errors": NOT_IMPORTED}]}}},
     None),
])
def test_bulk_attributes(fake: FakeChartMogul, api: Client, ds: str, mode: str, details: Any, attributes: Any) -> None:
    fake.json_imports.bulk_attributes = mode
    body = {"customers": [{"external_id": "c-1", **CREATE_FIELDS, "attributes": ATTRIBUTES}],
            "invoices": [invoice("inv-1", "c-1")], "line_items": [item("inv-1", "li-1")]}
    assert api.run(ds, body)["status_details"] == details
    found = api.ok("GET", "/customers", data_source_uuid=ds)["entries"]
    if attributes is None:
        assert found == [] and fake.find_invoice(ds, "inv-1") is None
        return
    [answer] = found
    assert api.ok("GET", f"/customers/{answer['uuid']}/attributes") == {**attributes, "stripe": {}}
    assert fake.store.custom_attribute_types(answer["uuid"]) == (KEPT_TYPES if mode == "kept" else {})
    assert (answer["name"], answer["website_url"], answer["owner"], answer["status"]) == (
        "Acme", "https://acme.test", "owner@acme.test", "Working Lead")
    assert fake.store.customers[answer["uuid"]]["primary_contact"] == CREATE_FIELDS["primary_contact"]
    assert fake.find_invoice(ds, "inv-1") is not None


def customer_made(fake: FakeChartMogul, api: Client, ds: str, external_id: str) -> dict[str, Any]:
    """What the fake holds of one customer (the record, its answers, its custom attribute types), ids left out."""
    [answer] = api.ok("GET", "/customers", data_source_uuid=ds, external_id=external_id)["entries"]
    uuid = answer["uuid"]
    with fake.lock:
        record = copy.deepcopy(fake.store.customers[uuid])
    return {"record": {k: v for k, v in record.items() if k not in ("id", "uuid", "data_source_uuid", "data_source_uuids")},
            "answer": stable(api.ok("GET", f"/customers/{uuid}")), "listed": stable(answer),
            "attributes": api.ok("GET", f"/customers/{uuid}/attributes"),
            "types": fake.store.custom_attribute_types(uuid)}


@pytest.mark.parametrize(("mode", "bulk_sends", "rest_sends"), [
    ("kept", True, True),  # attributes sent both ways, applied both ways
    ("ignored", True, False),  # sent in bulk and dropped: as a REST customer without them
    ("refused", False, False),  # a bulk customer with attributes fails: compare one without
])
def test_bulk_and_rest_make_identical_customers(fake: FakeChartMogul, api: Client, mode: str, bulk_sends: bool,
                                                rest_sends: bool) -> None:
    fake.json_imports.bulk_attributes = mode
    rest, bulk = (str(fake.add_data_source(name)["uuid"]) for name in ("rest", "bulk"))
    sent = {"external_id": "c-1", **CREATE_FIELDS}
    api.ok("POST", "/customers", {**sent, "data_source_uuid": rest, **({"attributes": ATTRIBUTES} if rest_sends else {})},
           201)
    done = api.run(bulk, {"customers": [{**sent, **({"attributes": ATTRIBUTES} if bulk_sends else {})}]})
    assert done["status_details"] == {"c-1": {"status": "imported", "customers": IMPORTED}}

    by_rest, by_bulk = customer_made(fake, api, rest, "c-1"), customer_made(fake, api, bulk, "c-1")
    assert by_bulk == by_rest
    assert by_bulk["record"]["primary_contact"] == CREATE_FIELDS["primary_contact"]
    assert (by_bulk["record"]["website_url"], by_bulk["record"]["owner"], by_bulk["record"]["status"]) == (
        "https://acme.test", "owner@acme.test", "Working Lead")
    assert by_bulk["attributes"]["tags"] == (["vip", "Beta"] if mode == "kept" else [])
    assert by_bulk["types"] == (KEPT_TYPES if mode == "kept" else {})


@pytest.mark.parametrize(("mode", "name", "attributes", "types"), [
    ("kept", "New", {"tags": ["new"], "custom": {"seats": 3}, "stripe": {}}, {"seats": "Integer"}),
    ("ignored", "New", {"tags": ["old"], "custom": {"plan": "x"}, "stripe": {}}, {"plan": "String"}),
    ("refused", "Old", {"tags": ["old"], "custom": {"plan": "x"}, "stripe": {}}, {"plan": "String"}),
])
def test_bulk_attributes_of_an_existing_customer(fake: FakeChartMogul, api: Client, ds: str, mode: str, name: str,
                                                 attributes: Any, types: Any) -> None:
    """existing_customer="update": sent tags and typed custom attributes replace the customer's (kept)."""
    fake.json_imports.bulk_attributes = mode
    made = api.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "c-1", "name": "Old", "attributes": {
        "tags": ["old"], "custom": [{"type": "String", "key": "plan", "value": "x"}]}}, 201)
    sent = {"external_id": "c-1", "name": "New",
            "attributes": {"tags": ["new"], "custom": [{"type": "Integer", "key": "seats", "value": "3"}]}}
    details = api.run(ds, {"customers": [sent]})["status_details"]
    assert details == ({"c-1": {"status": "failed", "customers": {"status": "failed", "errors": [
        {"external_id": "c-1", "errors": NOT_IN_BULK}]}}} if mode == "refused" else
        {"c-1": {"status": "imported", "customers": IMPORTED}})
    assert api.ok("GET", f"/customers/{made['uuid']}")["name"] == name
    assert api.ok("GET", f"/customers/{made['uuid']}/attributes") == attributes
    assert fake.store.custom_attribute_types(made["uuid"]) == types


def test_kept_attributes_are_checked_as_post_customers_checks_them(fake: FakeChartMogul, api: Client, ds: str) -> None:
    bad = {"external_id": "c-1", "attributes": {"custom": [{"type": "Integer", "key": "seats", "value": "many"}]}}
    rest = api.call("POST", "/customers", {**bad, "data_source_uuid": ds})
    assert rest.status_code == 422
    details = api.run(ds, {"customers": [bad]})["status_details"]
    assert details == {"c-1": {"status": "failed", "customers": {"status": "failed", "errors": [
        {"external_id": "c-1", "errors": rest.json()["errors"]}]}}}
    assert fake.find_customers(ds, "c-1") == []


# ---------------------------------------------------------------------- duplicate_external_id; lost answers


def test_duplicate_external_id_refused(fake: FakeChartMogul, api: Client, ds: str) -> None:
    first = api.submit(ds, {**one_customer_body("c-1"), "external_id": "batch-1"})
    again = api.call("POST", f"/data_sources/{ds}/json_imports", {**one_customer_body("c-2"), "external_id": "batch-1"})
    assert (again.status_code, again.json()) == (422, EXTERNAL_ID_TAKEN)
    assert list(fake.json_imports.imports) == [first["id"]]
    assert [b["external_id"] for b in fake.json_imports.submitted] == ["batch-1"]
    assert fake.find_customers(ds, "c-2") == []  # nothing of the refused body was applied

    other = str(fake.add_data_source("other")["uuid"])  # external ids are per data source
    assert api.submit(other, {**one_customer_body("c-2"), "external_id": "batch-1"})["status"] == "queued"
    no_ids = [api.submit(ds, {"customers": [customer(f"c-{n}")]})["id"] for n in (3, 4)]  # no external_id: no duplicate
    assert len(set(no_ids)) == 2
    assert api.poll(ds, "batch-1")["id"] == first["id"]


def test_duplicate_external_id_accepted(fake: FakeChartMogul, api: Client, ds: str, clock: Clock) -> None:
    fake.json_imports.duplicate_external_id = "accept"
    fake.json_imports.queue_delay = 10.0
    first = api.submit(ds, {**one_customer_body("c-1"), "external_id": "batch-1"})["id"]
    second = api.submit(ds, {"customers": [customer("c-1", name="Renamed")], "external_id": "batch-1"})["id"]
    assert first != second and list(fake.json_imports.imports) == [first, second]
    assert fake.json_imports.violations == [
        f"import {second} sent customers ['c-1'] while import {first} with them was still queued"]
    assert api.poll(ds, "batch-1")["id"] == second  # the external id names the newest import
    assert api.poll(ds, first)["id"] == first
    clock.now += 10.0
    assert (api.poll(ds, "batch-1")["status"], api.poll(ds, first)["status"]) == ("completed", "completed")
    assert [c["name"] for c in fake.find_customers(ds, "c-1")] == ["Renamed"]


@pytest.mark.parametrize("kind", ["drop_after", "error_after"])
@pytest.mark.parametrize("duplicates", ["refuse", "accept"])
def test_a_lost_answer_leaves_an_import_that_its_external_id_finds(fake: FakeChartMogul, api: Client, ds: str,
                                                                   kind: str, duplicates: str) -> None:
    fake.json_imports.duplicate_external_id = duplicates
    body = {**one_customer_body("c-1"), "external_id": "batch-1"}
    fake.inject(Fault(kind, method="POST", path_regex="/json_imports$"))
    if kind == "drop_after":
        with pytest.raises(requests.ConnectionError):
            api.call("POST", f"/data_sources/{ds}/json_imports", body)
    else:
        lost = api.call("POST", f"/data_sources/{ds}/json_imports", body)
        assert (lost.status_code, lost.text) == (502, "502 Bad Gateway")
    [record] = [r for r in fake.requests if r.method == "POST"]
    assert (record.fault, record.applied_status) == (kind, 200)  # created, its answer lost

    [created] = fake.json_imports.imports
    found = api.poll(ds, "batch-1")  # through HTTP, by the only name the client has
    assert (found["id"], found["external_id"], found["status"]) == (created, "batch-1", "completed")
    assert [c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]] == ["c-1"]

    resent = api.call("POST", f"/data_sources/{ds}/json_imports", body)
    if duplicates == "refuse":
        assert (resent.status_code, resent.json()) == (422, EXTERNAL_ID_TAKEN)
        assert list(fake.json_imports.imports) == [created]
        return
    assert resent.status_code == 200 and resent.json()["id"] != created
    assert api.poll(ds, "batch-1")["id"] == resent.json()["id"]
    again = api.poll(ds, resent.json()["id"])["status_details"]["c-1"]
    assert (again["status"], again["customers"], again["invoices"]["errors"]) == (
        "failed", IMPORTED, [{"external_id": "inv-c-1", "errors": {"external_id": DUP_INVOICE}}])
    assert len(api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"]) == 1


# ---------------------------------------------------------------------- background; command lines


def test_new_switches_in_the_background(fake: FakeChartMogul, api: Client, ds: str) -> None:
    """The worker applies imports with the same switches as a request would."""
    imports = fake.json_imports
    imports.background = True
    imports.queue_delay = 0.1
    imports.validation = "async"
    imports.unstored = {"inv-c-2"}
    imports.poll_by = "external_id"
    created = api.submit(ds, {"external_id": "bg-1", **one_customer_body("c-1", currency="usd"),
                              "customers": [customer("c-1"), customer("c-2")],
                              "invoices": [invoice("inv-c-1", "c-1", currency="usd"), invoice("inv-c-2", "c-2")]})
    deadline = time.monotonic() + 5.0
    while imports.completed_ids() == [] and time.monotonic() < deadline:
        time.sleep(0.02)  # no request: only the worker can apply it (the deadline only stops a hung test)
    assert imports.completed_ids() == [created["id"]] and imports.polls == {}
    assert {c["external_id"] for c in api.ok("GET", "/customers", data_source_uuid=ds)["entries"]} == {"c-1", "c-2"}
    assert api.ok("GET", "/invoices", data_source_uuid=ds)["invoices"] == []  # inv-c-1 failed, inv-c-2 unstored
    details = api.poll(ds, "bg-1")["status_details"]
    assert details == {"c-1": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED, "line_items": IMPORTED,
                               "transactions": IMPORTED},
                       "c-2": {"status": "imported", "invoices": IMPORTED, "customers": IMPORTED}}


def test_command_line_bulk_switches() -> None:
    """``python -m tests.fake_chartmogul`` takes every switch as a ``--bulk-…`` option."""
    args = fake_main.parse_args(["--api-key", "k", "--bulk-queue-delay", "2", "--bulk-per-object-seconds", "0.5",
                                 "--bulk-poll-by", "id", "--bulk-forget-imports", "--bulk-validation", "async",
                                 "--bulk-unstored", "c-1, inv-1,,", "--bulk-attributes", "refused",
                                 "--bulk-max-body-bytes", "1234", "--bulk-duplicate-external-id", "accept"])
    imports = JsonImports(Store())
    apply_switch_options(imports, args)
    assert (imports.queue_delay, imports.per_object_seconds, imports.poll_by, imports.forget_imports, imports.validation,
            imports.unstored, imports.bulk_attributes, imports.max_body_bytes, imports.duplicate_external_id) == (
        2.0, 0.5, "id", True, "async", {"c-1", "inv-1"}, "refused", 1234, "accept")
    defaults = JsonImports(Store())
    apply_switch_options(defaults, fake_main.parse_args(["--api-key", "k"]))
    assert (defaults.poll_by, defaults.forget_imports, defaults.validation, defaults.unstored, defaults.bulk_attributes,
            defaults.max_body_bytes, defaults.duplicate_external_id) == (
        "both", False, "sync", set(), "kept", 5_000_000, "refuse")


@pytest.mark.subprocess  # the fake's command line
def test_the_benchmarks_fake_takes_the_switches() -> None:
    """``bench/fake_server.py`` (benchmarks) over real HTTP: poll_by and max_body_bytes from its command line."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_server.py"), "--api-key", "k", "--bulk-poll-by", "external_id",
         "--bulk-max-body-bytes", "200", "--bulk-duplicate-external-id", "accept"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = json.loads(proc.stdout.readline())
        base = f"{hello['url']}/data_sources/{hello['data_source_uuid']}/json_imports"
        created = [requests.post(base, json={"external_id": "b-1"}, auth=("k", ""), timeout=5) for _ in range(2)]
        assert [r.status_code for r in created] == [200, 200]  # duplicates accepted
        too_big = requests.post(base, json={"external_id": "x" * 200}, auth=("k", ""), timeout=5)
        assert too_big.status_code == 413
        by_id = requests.get(f"{base}/{created[1].json()['id']}", auth=("k", ""), timeout=5)
        by_external_id = requests.get(f"{base}/b-1", auth=("k", ""), timeout=5)
        assert (by_id.status_code, by_external_id.status_code) == (404, 200)
        assert by_external_id.json()["id"] == created[1].json()["id"]
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
