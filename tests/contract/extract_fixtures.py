"""Rebuild the *recording* fixtures from the official clients' recorded HTTP exchanges.

A maintainer tool, not a test: run it when a client library publishes new recordings.
It reads the cassettes straight out of bare git clones (no work tree needed) and writes
``fixtures/<name>.json`` in the format ``recordings.py`` loads. Mock fixtures (evidence
``"mock"``) are hand-transcribed and left alone.

    python -m tests.contract.extract_fixtures \\
        --ruby /work/.mirror/chartmogul+chartmogul-ruby/repo \\
        --go /work/.mirror/chartmogul+chartmogul-go/repo \\
        --python /work/.mirror/chartmogul+chartmogul-python/repo

Only bodies, statuses, paths, queries and the content-type / retry-after headers are
kept: authorization and every other header are dropped on purpose.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import pathlib
import subprocess
import typing as t
from urllib.parse import parse_qs, urlsplit

import yaml

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
API_PREFIX = "/v1"
KEPT_HEADERS = ("content-type", "retry-after")
REPOS = {"ruby": "chartmogul/chartmogul-ruby", "go": "chartmogul/chartmogul-go", "python": "chartmogul/chartmogul-python"}
RB = "spec/fixtures/vcr_cassettes/"
GO = "integration_tests/fixtures/"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One fixture: which recording, which of its exchanges, and what it shows."""

    name: str
    repo: str  # key of REPOS
    path: str
    note: str
    keep: tuple[int, ...] | None = None  # indices of the exchanges to keep; None keeps all


SPECS: tuple[Spec, ...] = (
    # ping and error bodies
    Spec("ping_ok", "ruby", RB + "ChartMogul_Ping/pings/when_credentials_correct.yml", "GET /ping answers 200 {data: pong!}"),
    Spec(
        "ping_401",
        "ruby",
        RB + "ChartMogul_Ping/pings/and_fails_on_incorrect_credentials.yml",
        "a refused key answers 401 {code, message, param: null}",
    ),
    Spec(
        "ping_500",
        "ruby",
        RB + "ChartMogul_Ping/pings/and_fails_with_500_internal_server_error.yml",
        "a 500 is text/plain '500 Internal Server Error', not JSON",
    ),
    Spec(
        "ping_504",
        "ruby",
        RB + "ChartMogul_Ping/pings/and_fails_with_504_gateway_timeout_error.yml",
        "a 504 is text/plain '504 Gateway Timeout Error', not JSON",
    ),
    # data sources
    Spec(
        "data_source_lifecycle",
        "ruby",
        RB + "ChartMogul_DataSource/API_Interactions/correctly_interracts_with_the_API.yml",
        "2025: create 201 (system Custom, status idle), list and get with the with_* flags, delete 204, empty list",
    ),
    Spec(
        "data_source_retrieve_2016",
        "ruby",
        RB + "ChartMogul_DataSource/API_Interactions/retrieves_existing_data_source_matching_uuid.yml",
        "2016: the create answer had no system key; GET by uuid shows system 'Import API', status never_imported",
    ),
    Spec(
        "data_source_404",
        "ruby",
        RB + "ChartMogul_DataSource/API_Interactions/correctly_raises_errors_on_404.yml",
        "an unknown data source answers 404 {error: 'Data source not found'} (recorded on DELETE)",
    ),
    Spec(
        "data_source_422",
        "ruby",
        RB + "ChartMogul_DataSource/API_Interactions/correctly_raises_errors_on_422.yml",
        "name null answers 422 {errors: {name: message}}",
    ),
    Spec(
        "data_source_400",
        "python",
        "test/integration/fixtures/delete_invoice.yaml",
        "a missing name answers 400 {code, message, param} (2023)",
    ),
    # customers
    Spec(
        "customer_create",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/creates_the_customer_correctly.yml",
        "create 201: unset company '' and country/state/zip null, owner echoed, no primary_contact key",
    ),
    Spec(
        "customer_find_by_external_id_hit",
        "ruby",
        RB + "ChartMogul_Customer/_find_by_external_id/returns_matching_user_if_exists.yml",
        "GET /customers?external_id without data_source_uuid returns two customers from two data sources",
    ),
    Spec(
        "customer_find_by_external_id_miss",
        "ruby",
        RB + "ChartMogul_Customer/_find_by_external_id/returns_nil_if_customer_does_not_exist.yml",
        "an unknown external_id answers 200 with empty entries and a null cursor",
    ),
    Spec(
        "customer_search",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/searches_for_customers_correctly.yml",
        "search by email: last page has_more false with a string cursor; total_pages null",
    ),
    Spec(
        "customer_search_404",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/raises_a_HTTP_404_if_searching_for_customers_does_not_find_any.yml",
        "search with no match answers 404 {code, message, param: 'email'}",
    ),
    Spec(
        "customer_retrieve",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/retrieves_the_customer_correctly.yml",
        "GET one customer with every field set; address carries full country and state names",
    ),
    Spec(
        "customer_update",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/updates_customer_correctly_with_the_class_method.yml",
        "PATCH 200 with the whole customer (a custom Toggle sent false came back true)",
    ),
    Spec(
        "customer_update_all_fields",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/updates_the_customer_correctly_with_the_instance_method.yml",
        "GET then PATCH of every field: state NY sent with country DE came back null; dates as .000Z",
    ),
    Spec(
        "customer_delete",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/destroys_the_customer_correctly.yml",
        "DELETE a customer answers 204 with no body",
    ),
    Spec(
        "customer_custom_add",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/adds_custom_attributes_correctly.yml",
        "POST typed custom attributes answers 200 {custom: map}; Timestamp comes back .000Z",
    ),
    Spec(
        "customer_custom_update",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/updates_custom_attributes_correctly.yml",
        "PUT custom attributes as a map answers 200 {custom: map}",
    ),
    Spec(
        "customer_custom_remove",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/removes_custom_attributes_correctly.yml",
        "DELETE custom attributes by key answers 204",
    ),
    Spec(
        "customer_tags_add",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/adds_tags_correctly.yml",
        "POST tags answers the full set, including tags ChartMogul set itself",
    ),
    Spec(
        "customer_tags_remove",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/removes_tags_correctly.yml",
        "DELETE tags answers 200 with the remaining set",
    ),
    Spec(
        "customer_attributes",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/retrieves_the_customer_attributes_correctly.yml",
        "GET attributes answers {tags, stripe, custom} (no clearbit)",
    ),
    Spec(
        "customer_merge",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/merges_customers_correctly_with_the_instance_method.yml",
        "two customers before a merge (one already merged, tagged merged-customer); merge answers 202 {}",
    ),
    Spec(
        "customer_list_pagination",
        "ruby",
        RB + "ChartMogul_Customer/API_Actions/with_pagination/paginates_correctly.yml",
        "GET /customers pages: first page adds current_page/total_pages/per_page/page, the next only cursor/has_more",
    ),
    Spec(
        "customers_go",
        "go",
        GO + "customers.yaml",
        "2023: three creates (two share an email), list by data source, search, get, patch",
    ),
    # plans
    Spec(
        "plan_create",
        "ruby",
        RB + "ChartMogul_Plan/API_Actions/creates_the_plan_correctly.yml",
        "create 201 without external_id: the server makes one up",
    ),
    Spec("plan_retrieve", "ruby", RB + "ChartMogul_Plan/API_Actions/retrieves_the_plan_correctly.yml", "GET one plan"),
    Spec(
        "plan_update",
        "ruby",
        RB + "ChartMogul_Plan/API_Actions/updates_the_plan_correctly_with_the_class_method.yml",
        "PATCH a plan answers 202 with the plan",
    ),
    Spec("plan_delete", "ruby", RB + "ChartMogul_Plan/API_Actions/destroys_the_plan_correctly.yml", "DELETE a plan answers 204"),
    Spec(
        "plan_list_pagination",
        "ruby",
        RB + "ChartMogul_Plan/API_Actions/with_pagination/paginates_correctly.yml",
        "GET /plans pages: first page adds current_page/total_pages, the next only cursor/has_more",
    ),
    Spec("plans_go", "go", GO + "plans.yaml", "2023: three creates, list by data source (2 per page), get, patch 202, get"),
    Spec(
        "plan_group_422",
        "ruby",
        RB + "ChartMogul_PlanGroup/API_Actions/correctly_handles_a_422_error.yml",
        "the newer 422 shape: {field: [messages], error_details: [{param, code, message}]}",
    ),
    # invoices and transactions
    Spec(
        "customer_invoices_create",
        "ruby",
        RB + "ChartMogul_CustomerInvoices/API_Actions/creates_the_customer_invoice_correctly.yml",
        "lookups, the empty invoice list, then import 201: no customer_uuid/data_source_uuid in the invoice answer",
    ),
    Spec(
        "customer_invoices_pagination",
        "ruby",
        RB + "ChartMogul_CustomerInvoices/API_Actions/with_pagination/paginates_correctly.yml",
        "last page has_more false with a STRING cursor; following it gives an empty page with a null cursor",
    ),
    Spec(
        "invoices_go",
        "go",
        GO + "invoices.yaml",
        "2023: two invoices in one import, line items answered in the order sent, then paging",
    ),
    Spec(
        "invoice_after_merge_go",
        "go",
        GO + "create_invoice.yaml",
        "2019: merge, import to the survivor with the merged customer's external id; line items answered reversed",
    ),
    Spec(
        "invoice_retrieve_go_2017",
        "go",
        GO + "retrieve_invoice.yaml",
        "2017: import then GET; no errors/customer_uuid keys yet, '' for unset currency/description, items reversed",
    ),
    Spec(
        "invoice_delete_go_2017",
        "go",
        GO + "delete_invoice.yaml",
        "2017: delete an invoice 204, then the empty list without cursor/has_more",
    ),
    Spec(
        "invoice_retrieve",
        "ruby",
        RB + "ChartMogul_Invoice/API_Actions/retrieves_the_invoice_correctly.yml",
        "GET /invoices/{uuid} (2023): customer_uuid and errors {} present, no data_source_uuid",
    ),
    Spec(
        "invoice_list_pagination",
        "ruby",
        RB + "ChartMogul_Invoice/API_Actions/with_pagination/paginates_correctly.yml",
        "GET /invoices pages with string cursors; line items here also carry balance_transfer: null",
    ),
    Spec(
        "invoice_delete",
        "ruby",
        RB + "ChartMogul_Invoice/API_Actions/destroys_the_invoice_correctly_with_instance_method.yml",
        "GET a one-time invoice with payment and refund, then DELETE 204",
    ),
    Spec(
        "transaction_create",
        "ruby",
        RB + "ChartMogul_Transactions_Payment/API_Interactions/correctly_interracts_with_the_API.yml",
        "2025: data source, customer (city null, no clearbit), one-time invoice, standalone payment 201",
    ),
    # subscription events (fixtures only: the fake does not serve them yet)
    Spec(
        "subscription_event_create",
        "ruby",
        RB + "ChartMogul_SubscriptionEvent/API_interactions/create/creates_a_new_subscription_event.yml",
        "2022: create 201 (integer id, errors {}), list with meta, delete by ?subscription_event[id]= 204",
    ),
    Spec(
        "subscription_event_update",
        "ruby",
        RB + "ChartMogul_SubscriptionEvent/API_interactions/update/updates_the_subscription_event.yml",
        "PATCH /subscription_events with the envelope and id answers 200 with the event",
    ),
    Spec(
        "subscription_event_delete",
        "ruby",
        RB + "ChartMogul_SubscriptionEvent/API_interactions/deletes_the_subscription_event.yml",
        "delete 204, after which the list is empty (meta page 0)",
    ),
    Spec(
        "subscription_event_list",
        "ruby",
        RB + "ChartMogul_SubscriptionEvent/API_interactions/lists_all_subscription_events.yml",
        "2023 list: meta plus cursor/has_more; '' echoed where the client sent ''",
    ),
    Spec(
        "subscription_event_pagination",
        "ruby",
        RB + "ChartMogul_SubscriptionEvent/API_interactions/should_paginate_using_cursor_when_called_with_next.yml",
        "list by customer_uuid: first page has meta, the next only cursor/has_more",
    ),
    Spec(
        "subscription_events_go",
        "go",
        GO + "subscription_events.yaml",
        "2023: unset quantity/amount come back null (not ''), dates as ...Z without milliseconds",
        keep=(4, 5, 6),
    ),
    # contacts (fixtures only)
    Spec(
        "contact_create",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/creates_the_contact_correctly.yml",
        "create 201; unset text fields null; the answer carries the external_id sent",
    ),
    Spec(
        "contact_create_without_external_id",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/without_external_id/creates_the_contact_correctly.yml",
        "create without external_id: the answer carries external_id null",
    ),
    Spec(
        "contact_retrieve", "ruby", RB + "ChartMogul_Contact/API_Actions/retrieves_the_contact_correctly.yml", "GET one contact"
    ),
    Spec(
        "contact_update",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/updates_the_contact_correctly_with_the_class_method.yml",
        "PATCH with custom as [{key, value}] answers custom as a map",
    ),
    Spec(
        "contact_update_null_external_id",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/updates_the_contact_with_null_external_id_correctly.yml",
        "PATCH external_id null answers external_id null",
    ),
    Spec(
        "contact_delete",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/destroys_the_contact_correctly.yml",
        "DELETE answers 200 {}",
    ),
    Spec(
        "contact_list_pagination",
        "ruby",
        RB + "ChartMogul_Contact/API_Actions/with_pagination/paginates_correctly.yml",
        "GET /contacts pages: entries, cursor, has_more only",
    ),
    Spec(
        "contacts_go",
        "go",
        GO + "contacts.yaml",
        "2023: create, list, get, patch, create, merge 200, delete 200 {}",
        keep=(2, 3, 4, 5, 6, 7, 8, 9),
    ),
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that understands the ``!binary`` tag VCR uses for some bodies."""


def _binary(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    return base64.b64decode(str(loader.construct_scalar(t.cast("yaml.ScalarNode", node))))


_Loader.add_constructor("!binary", _binary)
_Loader.add_constructor("tag:yaml.org,2002:binary", _binary)


def _text(value: t.Any) -> str:
    """Body text from the three cassette dialects (plain, {string}, {base64_string}, bytes)."""
    if isinstance(value, dict):
        if value.get("base64_string") is not None:
            return base64.b64decode(value["base64_string"]).decode()
        value = value.get("string")
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _headers(raw: t.Any) -> dict[str, str]:
    """Only content-type and retry-after, lower-cased, first value."""
    kept: dict[str, str] = {}
    for name, value in (raw or {}).items():
        if name.lower() in KEPT_HEADERS:
            kept[name.lower()] = str(value[0] if isinstance(value, list) else value)
    return kept


def _json_or_text(text: str, content_type: str) -> t.Any:
    if text == "":
        return None
    if content_type.startswith("text/"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _status(response: dict[str, t.Any]) -> int:
    if isinstance(response.get("code"), int):
        return int(response["code"])
    status = response["status"]
    return int(status["code"] if isinstance(status, dict) else str(status).split()[0])


def exchange(interaction: dict[str, t.Any]) -> dict[str, t.Any]:
    """One cassette interaction in fixture form."""
    request, response = interaction["request"], interaction["response"]
    url = urlsplit(request.get("uri") or request["url"])
    path = url.path[len(API_PREFIX) :] if url.path.startswith(API_PREFIX + "/") else url.path
    headers = _headers(response.get("headers"))
    return {
        "method": str(request["method"]).upper(),
        "path": path,
        "query": {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()},
        "request_body": _json_or_text(_text(request.get("body")), "application/json"),
        "status": _status(response),
        "response_headers": headers,
        "response_body": _json_or_text(_text(response.get("body")), headers.get("content-type", "")),
    }


def build(spec: Spec, repo_dir: pathlib.Path) -> dict[str, t.Any]:
    """The fixture document for one spec."""
    raw = subprocess.run(["git", "-C", str(repo_dir), "show", f"HEAD:{spec.path}"], capture_output=True, check=True).stdout
    document = yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    interactions = document.get("http_interactions") or document.get("interactions") or []
    chosen = interactions if spec.keep is None else [interactions[i] for i in spec.keep]
    return {
        "source": f"{REPOS[spec.repo]}:{spec.path}",
        "evidence": "recording",
        "note": spec.note,
        "exchanges": [exchange(i) for i in chosen],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for key, repo in REPOS.items():
        parser.add_argument(f"--{key}", type=pathlib.Path, required=True, help=f"bare git clone of {repo}")
    args = parser.parse_args(argv)
    FIXTURES.mkdir(exist_ok=True)
    for spec in SPECS:
        document = build(spec, getattr(args, spec.repo))
        (FIXTURES / f"{spec.name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(SPECS)} recording fixtures to {FIXTURES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
