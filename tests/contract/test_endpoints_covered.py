"""Every endpoint the target calls has a real recorded exchange behind the fake's answer.

A workload that walks every write path (create, update, tags and custom attributes
added and removed, deletes, plans, invoices, refunds, late payments, a lost memory,
matching by email, invoice corrections and voids, transaction updates and deletes) runs
against the fake; each (method, route) it called must appear in a recording (not a mock)
among the contract fixtures, except the few that only client mocks show (MOCK_ONLY, each
with its mock fixture). Subscription events are also compared by how a PATCH or DELETE
names its event (by id or by data source and external id, in the query or the body).
"""

from __future__ import annotations

import copy
import re
import typing as t
from decimal import Decimal

from tests.billing import (
    CUSTOMERS,
    INVOICE_PROPS,
    INVOICES,
    PLANS,
    REFUNDS,
    REFUNDS_STREAM,
    billing_config,
    billing_messages,
    customers_messages,
    invoices_messages,
    plans_messages,
    refunds_messages,
    transactions_by_external_id,
)
from tests.contract.recordings import all_recordings, load
from tests.fake_chartmogul import FakeChartMogul
from tests.fake_chartmogul.server import route
from tests.helpers import fresh_memory
from tests.running import run_target
from tests.singer_messages import INTEGER, STRING, customers_stream, record
from tests.subscription_rows import (
    EVENTS_STREAM,
    PEOPLE_STREAM,
    event_rows,
    events_messages,
    people_messages,
    people_rows,
)

STREAM = "public-customers"
STATUS_PATH = r"^/data_sources/(?P<ds>[^/]+)/invoices/(?P<ext>[^/]+)/status$"
TRANSACTION = r"^/transactions/(?P<id>[^/]+)$"
# Endpoints the target calls that no recording shows: the mock fixtures that do, and why no better evidence exists.
MOCK_ONLY: dict[tuple[str, str], tuple[str, str]] = {
    ("PUT", STATUS_PATH): ("invoice_endpoints_mock", "python and node mocks only; every library sends PUT"),
    ("PATCH", TRANSACTION): ("transactions_external_id_mock", "python and node mocks only"),
    ("DELETE", TRANSACTION): ("transactions_external_id_mock", "python and node mocks only"),
}


def endpoint(method: str, path: str) -> tuple[str, str]:
    """(method, the fake's route pattern) naming one endpoint whatever ids the path holds."""
    found = route(method, path)
    assert found is not None, f"the fake has no route for {method} {path}"
    return method, found[1].re.pattern


def recorded_endpoints(evidence: str = "recording") -> set[tuple[str, str]]:
    """Every (method, route) the fixtures of this evidence show (and the fake serves)."""
    recorded = set()
    for recording in all_recordings():
        if recording.evidence != evidence:
            continue
        for exchange in recording.exchanges:
            if route(exchange.method, exchange.path) is not None:
                recorded.add(endpoint(exchange.method, exchange.path))
    return recorded


def test_mock_only_endpoints_have_their_mocks_and_still_no_recording():
    for (method, pattern), (fixture, _) in MOCK_ONLY.items():
        assert any(e.method == method and re.match(pattern, e.path) for e in load(fixture).exchanges), fixture
    assert set(MOCK_ONLY) <= recorded_endpoints("mock")
    assert not set(MOCK_ONLY) & recorded_endpoints(), "a recording appeared: take the endpoint out of MOCK_ONLY"


def walk_invoice_changes(config: dict[str, t.Any]) -> None:
    """After import: a refund updated and one deleted, an invoice corrected and another voided."""
    refunds = {**config, "streams": {**config["streams"], REFUNDS_STREAM: {"object": "transactions",
                                                                           "delete_missing": True}}}
    run_target(refunds, [*refunds_messages([{**REFUNDS[1], "result": "successful"}]),
                         record(REFUNDS_STREAM, {"external_id": REFUNDS[0]["external_id"], "invoice_ref": "inv-1",
                                                 "_sdc_deleted_at": "2024-06-01T00:00:00Z"})])
    corrected = copy.deepcopy(INVOICES[1])
    corrected["line_items"][1]["amount_in_cents"] = Decimal("700")
    voided = {**INVOICES[3], "status": "voided"}
    run_target(config, invoices_messages([corrected, voided], props={**INVOICE_PROPS, "status": STRING}))


def walk_every_write_path(fake: FakeChartMogul, base_config: dict[str, t.Any], tmp_path: t.Any) -> None:
    extra = {"seats": INTEGER, "plan": STRING}
    options = {"custom_attributes": ["seats", "plan"], "remove_null_custom_attributes": True, "delete_missing": True}
    config = {**billing_config(base_config), "streams": {STREAM: options, "billing-refunds": {"object": "transactions"}}}
    rows = [{"external_id": "c-1", "name": "One", "tags": ["a", "b"], "seats": 1, "plan": "x"},
            {"external_id": "c-2", "name": "Two", "tags": ["a"], "seats": 2, "plan": "y"}]
    run_target(config, customers_stream(STREAM, rows, extra))
    changed = [{**rows[0], "tags": ["a", "c"], "seats": 5, "plan": None, "city": "Oslo"}]
    run_target(config, [*customers_stream(STREAM, changed, extra),
                        record(STREAM, {"external_id": "c-2", "_sdc_deleted_at": "2024-05-01T00:00:00Z"})])
    run_target(config, billing_messages())
    renamed = [{"external_id": "pl-basic", "name": "Basic renamed", "interval_count": 1, "interval_unit": "month"}]
    run_target(config, plans_messages(renamed))
    late = {**INVOICES[0], "transactions": [*INVOICES[0]["transactions"], {
        "type": "payment", "result": "successful", "date": "2024-01-09T00:00:00Z", "external_id": "late-1",
        "amount_in_cents": Decimal("10")}]}
    run_target(fresh_memory(config, tmp_path, "lost"), [*billing_messages(("plans", "customers")),
                                                       *invoices_messages([late])])
    late_2 = {**INVOICES[1], "transactions": [*INVOICES[1]["transactions"], {
        "type": "payment", "result": "successful", "date": "2024-02-09T00:00:00Z", "external_id": "late-2",
        "amount_in_cents": Decimal("10")}]}
    run_target(config, invoices_messages([late_2]))  # the memory knows it: read by uuid
    run_target(config, customers_stream(STREAM, [{**changed[0], "plan": "z"}], extra))  # a custom attribute again
    adopted = fresh_memory(config, tmp_path, "adopted")  # the listing adopts every object, then one is compared
    run_target(adopted, [*customers_messages(CUSTOMERS[:1]), *plans_messages(PLANS[:1])])
    run_target(adopted, [*customers_messages(CUSTOMERS[1:2]), *plans_messages(PLANS[1:])])
    by_email = {**base_config, "streams": {STREAM: {"match_by": "email"}}}
    run_target(by_email, customers_stream(STREAM, [{"external_id": "c-9", "name": "Nine", "email": "billing@acme.test"}]))
    walk_invoice_changes(config)


def test_every_endpoint_the_target_calls_is_recorded(fake, ds, base_config, tmp_path):
    walk_every_write_path(fake, base_config, tmp_path)
    called = {endpoint(r.method, r.path) for r in fake.requests}

    assert called - recorded_endpoints() == set(MOCK_ONLY)
    with fake.lock:
        assert [i["external_id"] for i in fake.invoices.values() if i.get("status") == "voided"] == ["inv-4"]
    held = transactions_by_external_id(fake)
    assert "ref-1" not in held and [tx["result"] for tx in held["ref-3"]] == ["successful"]
    # the walk reached the paths it is meant to reach, and no other
    assert called == {
        ("GET", r"^/ping$"),
        ("GET", r"^/data_sources/(?P<id>[^/]+)$"),
        ("GET", r"^/customers$"),
        ("GET", r"^/customers/(?P<id>[^/]+)$"),
        ("GET", r"^/customers/search$"),
        ("GET", r"^/plans$"),
        ("GET", r"^/plans/(?P<id>[^/]+)$"),
        ("GET", r"^/invoices$"),
        ("GET", r"^/invoices/(?P<id>[^/]+)$"),
        ("POST", r"^/customers$"),
        ("PATCH", r"^/customers/(?P<id>[^/]+)$"),
        ("DELETE", r"^/customers/(?P<id>[^/]+)$"),
        ("POST", r"^/customers/(?P<id>[^/]+)/attributes/tags$"),
        ("DELETE", r"^/customers/(?P<id>[^/]+)/attributes/tags$"),
        ("POST", r"^/customers/(?P<id>[^/]+)/attributes/custom$"),
        ("PUT", r"^/customers/(?P<id>[^/]+)/attributes/custom$"),
        ("DELETE", r"^/customers/(?P<id>[^/]+)/attributes/custom$"),
        ("POST", r"^/plans$"),
        ("PATCH", r"^/plans/(?P<id>[^/]+)$"),
        ("POST", r"^/import/customers/(?P<id>[^/]+)/invoices$"),
        ("POST", r"^/import/invoices/(?P<id>[^/]+)/transactions$"),
        ("DELETE", r"^/invoices/(?P<id>[^/]+)$"),  # a correction: the invoice is deleted and imported again
        ("PUT", STATUS_PATH),  # a void
        ("PATCH", TRANSACTION),  # a refund's result changed
        ("DELETE", TRANSACTION),  # a refund deleted in the source
    }


def event_naming(method: str, query: t.Mapping[str, str], body: t.Any) -> str:
    """How a PATCH or DELETE /subscription_events names its event, e.g. ``DELETE query id`` or ``PATCH body id``."""
    prefix = "subscription_event["
    in_query = {key[len(prefix):-1]: value for key, value in query.items() if key.startswith(prefix)}
    in_body = body.get("subscription_event") if isinstance(body, dict) else None
    where, named = ("query", in_query) if in_query else ("body", in_body if isinstance(in_body, dict) else {})
    if named.get("id") not in (None, ""):
        return f"{method} {where} id"
    keys = "+".join(key for key in ("data_source_uuid", "external_id") if named.get(key) not in (None, ""))
    return f"{method} {where} {keys or 'nothing'}"


def recorded_event_namings() -> set[str]:
    """How the recordings (not the mocks) name the event of each PATCH and DELETE."""
    return {event_naming(e.method, e.query, e.request_body) for r in all_recordings() if r.evidence == "recording"
            for e in r.exchanges if e.method in ("PATCH", "DELETE") and e.path == "/subscription_events"}


def test_event_namings_are_told_apart():
    assert recorded_event_namings() == {"PATCH body id", "DELETE query id"}
    assert event_naming("DELETE", {}, {"subscription_event": {"id": 7}}) == "DELETE body id"
    both = {"subscription_event": {"data_source_uuid": "ds_1", "external_id": "ev-1", "quantity": 2}}
    assert event_naming("PATCH", {}, both) == "PATCH body data_source_uuid+external_id"


def walk_events_and_contacts(fake: FakeChartMogul, base_config: dict[str, t.Any], tmp_path: t.Any) -> None:
    """Create, change, delete, a lost memory and a refused create, for subscription events and contacts."""
    events = event_rows(1)
    people = people_rows()[:3]
    config = {**base_config, "streams": {
        EVENTS_STREAM: {"object": "subscription_events", "delete_missing": True},
        PEOPLE_STREAM: {"object": "contacts", "delete_missing": True, "custom_attributes": ["champion"]}}}
    run_target(config, [*plans_messages(), *customers_messages(), *events_messages(events), *people_messages(people)])
    changed_events = [{**events[2], "quantity": 5}, *events[3:]]
    changed_people = [{**people[0], "title": "CEO"}, *people[1:2]]
    run_target(config, [*events_messages(changed_events), *people_messages(changed_people),
                        record(EVENTS_STREAM, {"external_id": events[0]["external_id"], "_sdc_deleted_at": "2024-06-01"}),
                        record(PEOPLE_STREAM, {"external_id": people[2]["external_id"], "_sdc_deleted_at": "2024-06-01"})])
    lost = fresh_memory(config, tmp_path, "lost-people")
    run_target(lost, [*events_messages([{**events[3], "quantity": 6}]), *people_messages([{**people[1], "title": "VP"}])])
    refused = fresh_memory(config, tmp_path, "refused")  # will know the data source's events, but not the next one
    run_target(refused, events_messages(events[5:6]))
    late = {**events[5], "external_id": "ev-late"}
    run_target(config, events_messages([late]))  # another worker writes it: this memory's create is refused
    run_target(refused, events_messages([{**late, "quantity": 8}]))
    assert [r.status for r in fake.requests if r.method == "POST" and r.path == "/subscription_events"][-1] == 422


def test_every_endpoint_events_and_contacts_call_is_recorded(fake, ds, base_config, tmp_path):
    fake.subscription_events.naming = "id"  # only the recorded form: the walk must never need another
    walk_events_and_contacts(fake, base_config, tmp_path)
    called = {endpoint(r.method, r.path) for r in fake.requests}

    assert called - recorded_endpoints() == set()
    namings = {event_naming(r.method, r.query, r.body) for r in fake.requests
               if r.method in ("PATCH", "DELETE") and r.path == "/subscription_events"}
    assert namings == recorded_event_namings()  # each event named as the recordings name it, both forms reached
    assert {c for c in called if "subscription_events" in c[1] or "contacts" in c[1]} == {
        ("GET", r"^/subscription_events$"),
        ("POST", r"^/subscription_events$"),
        ("PATCH", r"^/subscription_events$"),
        ("DELETE", r"^/subscription_events$"),
        ("GET", r"^/contacts$"),
        ("POST", r"^/contacts$"),
        ("PATCH", r"^/contacts/(?P<id>[^/]+)$"),
        ("DELETE", r"^/contacts/(?P<id>[^/]+)$"),
    }
