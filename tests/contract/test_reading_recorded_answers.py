"""Our own reading of ChartMogul's answers, tested on the recorded bodies themselves.

The fake is held to the recordings elsewhere (test_fake_matches_recordings.py); here the
target's code that reads answers (pagination, lookups, error parsing, "changed", the event
id a lost memory names events by, contact matching) meets the recorded bodies directly,
with no fake in between.
"""

from __future__ import annotations

import base64
import copy
import json
import typing as t

import pytest

from target_chartmogul.api.answers import external_ids_in
from target_chartmogul.api.client import ChartMogulClient, Response
from target_chartmogul.api.errors import APIError, is_already_exists, parse_error_body
from target_chartmogul.mapping.contacts import ContactPayload, best_matches, pair
from target_chartmogul.mapping.customers import DATE_FIELDS
from target_chartmogul.mapping.subscription_events import delete_query, known_event_id, map_event
from target_chartmogul.memory.holdings import identified, slim
from target_chartmogul.memory.references import matches
from target_chartmogul.values import compare
from tests.contract.recordings import Exchange, load


class RecordedPages(ChartMogulClient):
    """A client whose GETs are answered by recorded exchanges (matched by path and cursor)."""

    def __init__(self, exchanges: t.Sequence[Exchange]) -> None:
        super().__init__("http://127.0.0.1:9/v1", "unused")
        self.exchanges = list(exchanges)
        self.asked: list[dict[str, t.Any]] = []

    def get(self, path: str, params: dict[str, t.Any] | None = None) -> Response:
        query = dict(params or {})
        self.asked.append(query)
        for exchange in self.exchanges:
            if exchange.path.lstrip("/") == path and exchange.query.get("cursor") == query.get("cursor"):
                return Response(exchange.status, copy.deepcopy(exchange.response_body), 1)
        raise AssertionError(f"no recorded page for {path} {query}")


def test_a_last_page_with_a_string_cursor_ends_the_listing():
    # has_more false, cursor a non-null string; following it would give an empty page (recorded).
    recording = load("customer_invoices_pagination")
    first = recording.find("GET", r"/invoices$")
    assert first.response_body["has_more"] is False and isinstance(first.response_body["cursor"], str)
    client = RecordedPages([first])
    path = first.path.lstrip("/")

    entries = list(client.paginate(path, "invoices"))

    assert [e["external_id"] for e in entries] == [i["external_id"] for i in first.response_body["invoices"]]
    assert len(client.asked) == 1


def test_a_cursor_is_followed_while_has_more():
    recording = load("customer_list_pagination")
    pages = [e for e in recording.exchanges if e.method == "GET"]
    client = RecordedPages(pages)
    seen = []
    for entry in client.paginate("customers", "entries"):
        seen.append(entry["uuid"])
        if len(seen) == len(pages):  # the recording stops after its pages; so do we
            break
    assert seen == [p.response_body["entries"][0]["uuid"] for p in pages]
    assert client.asked[1]["cursor"] == pages[0].response_body["cursor"]


def test_a_lookup_by_external_id_keeps_only_the_customer_of_the_data_source():
    answer = load("customer_find_by_external_id_hit").find("GET", r"^/customers$").response_body
    entries = answer["entries"]
    assert len(entries) == 2  # the same external id in two data sources
    for customer in entries:
        ds = customer["data_source_uuid"]
        assert [c["uuid"] for c in entries if matches(c, ds, "test_cus_ext_id")] == [customer["uuid"]]


def test_merged_customers_pair_external_ids_with_their_data_sources():
    answer = load("customer_list_pagination").find("GET", r"^/customers$").response_body
    merged = answer["entries"][0]
    assert len(merged["external_ids"]) == len(merged["data_source_uuids"]) == 3  # as recorded
    for ext, ds in zip(merged["external_ids"], merged["data_source_uuids"], strict=True):
        assert ext in external_ids_in(merged, ds)


@pytest.mark.parametrize(("name", "path"), [("invoice_list_pagination", r"^/invoices$"),
                                            ("invoice_retrieve", r"^/invoices/")])
def test_invoice_answers_carry_no_data_source_so_the_lookup_filter_is_trusted(name, path):
    answer = load(name).find("GET", path).response_body
    invoice = answer["invoices"][0] if "invoices" in answer else answer
    assert "data_source_uuid" not in invoice
    assert matches(invoice, "ds_any", invoice["external_id"])


@pytest.mark.parametrize(
    ("name", "path", "message", "fields"),
    [
        ("ping_401", r"^/ping$", "No valid API key provided", {}),
        ("data_source_404", r"^/data_sources/", "Data source not found", {}),
        ("data_source_422", r"^/data_sources$", "name: A name is required for each data source.",
         {"name": "A name is required for each data source."}),
        ("data_source_400", r"^/data_sources$", 'Parameter "name" is missing', {"name": 'Parameter "name" is missing'}),
        ("customer_search_404", r"^/customers/search$", 'Can\'t find any customers with email: "no@email.com"',
         {"email": 'Can\'t find any customers with email: "no@email.com"'}),
        ("ping_500", r"^/ping$", "500 Internal Server Error", {}),
        ("ping_504", r"^/ping$", "504 Gateway Timeout Error", {}),
    ],
)
def test_recorded_error_bodies_are_read(name, path, message, fields):
    exchange = load(name).find(exchange_method(name), path)
    text = exchange.response_body if isinstance(exchange.response_body, str) else _json(exchange.response_body)
    parsed_message, parsed_fields, _ = parse_error_body(exchange.status, text)
    assert (parsed_message, parsed_fields) == (message, fields)


def test_the_error_details_shape_names_each_field():
    exchange = load("plan_group_422").find("POST", r"^/plan_groups$")
    _, fields, _ = parse_error_body(exchange.status, _json(exchange.response_body))
    assert set(fields) == {"name", "plan_ids"}
    error = APIError(422, "x", fields=fields)
    assert not is_already_exists(error)


def exchange_method(name: str) -> str:
    return {"data_source_404": "DELETE", "data_source_422": "POST", "data_source_400": "POST"}.get(name, "GET")


def _json(body: t.Any) -> str:
    return json.dumps(body)


# "Changed" on recorded pairs: what was sent, and what ChartMogul answered for it -------------------


@pytest.mark.parametrize("name", ["customer_create", "customer_invoices_create"])
def test_a_customer_as_answered_equals_the_fields_that_created_it(name):
    recording = load(name)
    if name == "customer_create":
        sent = recording.find("POST", r"^/customers$").request_body
        held = recording.find("POST", r"^/customers$").response_body
    else:  # a customer with every date set, as GET answers it
        held = recording.find("GET", r"^/customers/").response_body
        sent = {k: held[k] for k in ("name", "email", "company", "country", "state", "city", "zip")}
        sent |= {"lead_created_at": "2015-11-01 00:00:00", "free_trial_started_at": "2015-11-07T02:20:00+01:00"}
    fields = {k: v for k, v in sent.items() if k not in ("external_id", "data_source_uuid")}
    unset = {"company": None, "country": None, "zip": None, "state": None}  # answered "" or null
    assert compare.customer_changes({**unset, **fields}, held, DATE_FIELDS) == []
    assert compare.customer_changes({**fields, "name": "Other"}, held, DATE_FIELDS) == ["name"]


@pytest.mark.parametrize(
    ("name", "post", "get"),
    [
        ("customer_invoices_create", r"/invoices$", None),
        ("invoices_go", r"/invoices$", None),
        ("invoice_after_merge_go", r"/invoices$", r"^/invoices/inv_"),  # line items answered reversed
        ("invoice_retrieve_go_2017", r"/invoices$", r"^/invoices/inv_"),  # 2017 shapes
    ],
)
def test_an_invoice_as_answered_equals_the_body_that_imported_it(name, post, get):
    recording = load(name)
    exchange = recording.find("POST", r"^/import/customers/.*" + post)
    answers = exchange.response_body["invoices"]
    if get is not None:
        answers = [recording.find("GET", get).response_body]
    for sent, held in zip(exchange.request_body["invoices"], answers, strict=True):
        assert compare.invoice_changes(sent, held) == []
        assert compare.missing_transactions(sent.get("transactions") or [], held["transactions"]) == ([], [])
        corrected = copy.deepcopy(sent)
        corrected["line_items"][0]["amount_in_cents"] += 100
        ext = corrected["line_items"][0].get("external_id")
        expected = ([f"line_items[{ext}].amount_in_cents"] if ext else
                    ["line_items[0] (no such line item in ChartMogul)", "1 line item(s) only in ChartMogul"])
        assert compare.invoice_changes(corrected, held) == expected


def test_a_transaction_as_answered_equals_the_body_that_created_it():
    exchange = load("transaction_create").find("POST", r"/transactions$")
    assert compare.transaction_changes(exchange.request_body, exchange.response_body) == []
    assert compare.transaction_changes({**exchange.request_body, "amount_in_cents": 400}, exchange.response_body) == [
        "amount_in_cents"]


def test_a_plan_as_answered_equals_the_body_that_created_it():
    exchange = load("plan_create").find("POST", r"^/plans$")
    assert compare.plan_changes(exchange.request_body, exchange.response_body) == {}


def test_tags_chartmogul_added_itself_are_not_ours_to_remove():
    answer = load("customer_tags_add").find("POST", r"/attributes/tags$").response_body
    held = answer["tags"]
    assert "auto-churned-delinquent-subscription" in held and "merged-customer" in held
    assert compare.tag_changes([], held, ["test-tag"], exact=False) == ([], ["test-tag"])
    assert compare.tag_changes(["TEST-TAG"], held, ["test-tag"], exact=False) == ([], [])


# Subscription events: what the events sink compares, and the id it names an event by ------------------

EVENT_POSTS = [("subscription_event_create", 0), ("subscription_event_update", 0), ("subscription_event_list", 0),
               ("subscription_events_go", 0), ("subscription_events_go", 1)]


def _as_a_tap_sends_it(sent: dict[str, t.Any]) -> dict[str, t.Any]:
    """The recorded event body as a source row: the ruby client sends "" where a tap sends NULL."""
    return {key: None if value == "" else value for key, value in sent.items()}


@pytest.mark.parametrize(("name", "index"), EVENT_POSTS)
def test_an_event_as_answered_and_listed_equals_the_row_that_created_it(name, index):
    # Unset fields come back "" (ruby, which sent "") or null (go); dates come back as ...Z.
    exchange = load(name).find("POST", r"^/subscription_events$", index)
    payload = map_event(_as_a_tap_sends_it(exchange.request_body["subscription_event"]), None, amount_unit="cents")
    listed = [e for x in load(name).exchanges if x.method == "GET" and x.response_body
              for e in x.response_body["subscription_events"] if e["id"] == exchange.response_body["id"]]
    for held in [exchange.response_body, *listed]:
        assert compare.event_changes(payload.fields, held) == []
        assert compare.event_changes({**payload.fields, "effective_date": "2021-01-01T00:00:00Z"}, held) == [
            "effective_date"]
        assert compare.event_changes({**payload.fields, "quantity": 3}, held) == ["quantity"]


@pytest.mark.parametrize("name", ["subscription_event_create", "subscription_event_update", "subscription_event_list"])
def test_a_listing_gives_a_lost_memory_the_id_the_recorded_changes_name(name):
    # The sink names a PATCH/DELETE by the id a listing gave the memory (as uuid); the recording deleted by that id.
    recording = load(name)
    listed = recording.find("GET", r"^/subscription_events$").response_body["subscription_events"][0]
    kept = slim(identified(listed))  # what the memory adopts and the holdings keep: no "id", a text "uuid"
    deleted = recording.find("DELETE", r"^/subscription_events$")
    assert "id" not in kept and known_event_id(kept["uuid"]) == listed["id"]
    assert delete_query(listed["id"]) == deleted.query


def test_event_pages_are_followed_by_cursor_past_the_deprecated_meta():
    pages = load("subscription_event_pagination").exchanges
    client = RecordedPages(pages)
    params = {"customer_uuid": pages[0].query["customer_uuid"], "per_page": "1"}
    seen = []
    for event in client.paginate("subscription_events", "subscription_events", params):
        seen.append(event["id"])
        if len(seen) == len(pages):
            break
    assert seen == [p.response_body["subscription_events"][0]["id"] for p in pages]
    assert "meta" in pages[0].response_body and client.asked[1]["cursor"] == pages[0].response_body["cursor"]


# Contacts: what the contacts sink compares and matches (read-only use of its helpers) -----------------

CONTACT_FIELDS = ("position", "first_name", "last_name", "title", "email", "phone", "linked_in", "twitter", "notes")


def _contact(sent: t.Mapping[str, t.Any], custom: dict[str, tuple[str, t.Any]] | None = None) -> ContactPayload:
    """A payload with the fields a recorded request sent (the way the contacts mapper keeps them)."""
    return ContactPayload(data_source_uuid=str(sent.get("data_source_uuid") or "ds_any"),
                          external_id=sent.get("external_id"), customer_external_id=None,
                          customer_uuid=sent.get("customer_uuid"),
                          fields={k: sent[k] for k in CONTACT_FIELDS if k in sent}, custom=custom or {})


@pytest.mark.parametrize(("name", "method", "index"), [("contact_create", "POST", 0), ("contact_update", "PATCH", 0),
                                                       ("contacts_go", "POST", 0), ("contacts_go", "PATCH", 0)])
def test_a_contact_as_answered_equals_the_fields_that_wrote_it(name, method, index):
    exchange = load(name).find(method, r"^/contacts", index)
    fields = _contact(exchange.request_body).fields
    # a create's null columns are answered null; a PATCH leaves what it did not send as it was (notes, here)
    unset = {k: None for k in CONTACT_FIELDS if k not in fields and k != "position"} if method == "POST" else {}
    assert compare.contact_changes({**unset, **fields}, exchange.response_body) == []
    assert compare.contact_changes({**fields, "title": "Chief"}, exchange.response_body) == ["title"]


def test_custom_sent_as_a_list_is_read_back_from_a_map():
    exchange = load("contact_update").find("PATCH", r"^/contacts/")
    assert exchange.request_body["custom"] == [{"key": "Toggle", "value": False}]
    held = exchange.response_body["custom"]
    assert held == {"Toggle": False}
    assert compare.contact_custom_changes({"Toggle": ("Boolean", False)}, held) == []
    assert compare.contact_custom_changes({"Toggle": ("Boolean", True)}, held) == ["Toggle"]
    # go 2023: keys the account does not define are dropped silently; read back, they are not there
    dropped = load("contacts_go").find("PATCH", r"^/contacts/")
    sent = {entry["key"]: ("String", entry["value"]) for entry in dropped.request_body["custom"]}
    assert dropped.response_body["custom"] == {}
    assert compare.contact_custom_changes(sent, dropped.response_body["custom"]) == sorted(sent)
    assert compare.contact_custom_changes({key: ("String", None) for key in sent}, {}) == []


def test_listed_contacts_without_external_ids_are_matched_by_email_then_name():
    # No recorded contact read answers external_id: a lost memory pairs rows by what is answered.
    entries = [e.response_body["entries"][0] for e in load("contact_list_pagination").exchanges]
    assert all("external_id" not in e for e in entries)
    renamed = _contact({"external_id": "row-1", "email": "CONTACT2@example.com", "first_name": "Foo", "last_name": "Bar"})
    by_name = _contact({"external_id": "row-2", "first_name": "foo", "last_name": "bar"})
    other = _contact({"external_id": "row-3", "email": "test@example.com"})
    assert best_matches(renamed, entries) == [entries[0]]
    assert best_matches(by_name, entries) == [entries[0]]
    assert pair([by_name, other, renamed], entries) == {2: 0, 1: 1}  # the surer match takes the contact


def test_a_contact_answering_another_external_id_is_someone_else():
    answer = load("contact_create").find("POST", r"^/contacts$").response_body
    assert answer["external_id"] == "contact_external_id_001"
    same_email = _contact({"external_id": "row-9", "email": answer["email"]})
    assert best_matches(same_email, [answer]) == []
    assert best_matches(_contact({"external_id": "contact_external_id_001"}), [answer]) == [answer]


def _cursor_keys(name: str, root: str) -> list[tuple[str, str]]:
    """(the key a page's cursor names, the last object's uuid or id) per recorded page of a listing."""
    found = []
    for exchange in load(name).exchanges:
        body = exchange.response_body
        text = base64.b64decode(body["cursor"]).decode()
        stamp, _, last = text.partition("&")
        found.append((stamp, last))
        assert last == str(body[root][-1].get("uuid") or body[root][-1]["id"])  # the keyset names the page's last
    return found


@pytest.mark.parametrize(("name", "root"), [("invoice_list_pagination", "invoices"),
                                             ("subscription_event_pagination", "subscription_events")])
def test_invoices_and_events_are_listed_newest_first_behind_a_keyset_cursor(name, root):
    """What the bulk lane's walks rest on (target_chartmogul/bulk/walks.py): each recorded page's cursor is the
    creation time and uuid (or id) of its last object, and the times go down from page to page: newest first."""
    keys = _cursor_keys(name, root)
    assert len(keys) == 2
    assert keys[0][0] > keys[1][0]
