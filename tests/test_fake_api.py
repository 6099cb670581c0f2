"""Tests of the fake ChartMogul API itself, through real HTTP with requests.

The target's tests trust this fake, so its documented behaviour is pinned here.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.helpers import FakeApi

KEY = "test-key"
ROOT = Path(__file__).resolve().parent.parent
DEMO_ARGS = ("--data-source-uuid", "ds_demo", "--dump")


@pytest.fixture
def fake() -> Iterator[FakeChartMogul]:
    with FakeChartMogul(api_key=KEY) as server:
        yield server


@pytest.fixture
def api(fake: FakeChartMogul) -> Iterator[Api]:
    client = Api(fake)
    yield client
    client.session.close()


class Api(FakeApi):
    """The fake's HTTP client with this module's key."""

    def __init__(self, fake: FakeChartMogul, key: str = KEY) -> None:
        super().__init__(fake, key)


CUSTOMER_KEYS = [
    "id",
    "uuid",
    "external_id",
    "name",
    "email",
    "status",
    "customer-since",
    "attributes",
    "data_source_uuid",
    "data_source_uuids",
    "external_ids",
    "company",
    "country",
    "state",
    "city",
    "zip",
    "lead_created_at",
    "free_trial_started_at",
    "address",
    "mrr",
    "arr",
    "billing-system-url",
    "chartmogul-url",
    "billing-system-type",
    "currency",
    "currency-sign",
    "owner",
    "website_url",
]
SUBSCRIPTION_ITEM_KEYS = [
    "uuid",
    "external_id",
    "type",
    "subscription_uuid",
    "subscription_external_id",
    "prorated",
    "proration_type",
    "service_period_start",
    "service_period_end",
    "plan_uuid",
    "amount_in_cents",
    "quantity",
    "discount_code",
    "discount_amount_in_cents",
    "tax_amount_in_cents",
    "transaction_fees_in_cents",
    "account_code",
    "transaction_fees_currency",
    "discount_description",
    "event_order",
]
ONE_TIME_ITEM_KEYS = [
    "uuid",
    "external_id",
    "type",
    "description",
    "amount_in_cents",
    "quantity",
    "discount_code",
    "discount_amount_in_cents",
    "tax_amount_in_cents",
    "transaction_fees_in_cents",
    "account_code",
    "transaction_fees_currency",
    "discount_description",
    "event_order",
]
TRANSACTION_KEYS = [
    "uuid",
    "external_id",
    "amount_in_cents",
    "type",
    "date",
    "result",
    "transaction_fees_in_cents",
    "transaction_fees_currency",
]


def make_ds(api: Api, name: str = "src") -> str:
    return str(api.ok("POST", "/data_sources", {"name": name}, status=201)["uuid"])


def make_customer(api: Api, ds: str, ext: str = "c1", **fields: Any) -> dict[str, Any]:
    body = {"data_source_uuid": ds, "external_id": ext, **fields}
    return dict(api.ok("POST", "/customers", body, status=201))


def make_plan(api: Api, ds: str, ext: str = "p1") -> str:
    body = {"data_source_uuid": ds, "name": "Gold", "interval_count": 1, "interval_unit": "month", "external_id": ext}
    return str(api.ok("POST", "/plans", body, status=201)["uuid"])


def invoice(ext: str, plan_uuid: str, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": ext,
        "date": "2024-01-01 00:00:00",
        "currency": "USD",
        "line_items": [
            {
                "type": "subscription",
                "subscription_external_id": "sub-1",
                "plan_uuid": plan_uuid,
                "service_period_start": "2024-01-01",
                "service_period_end": "2024-02-01",
                "amount_in_cents": 1000,
                "quantity": 1,
                "external_id": f"{ext}-li",
            }
        ],
        **extra,
    }


# ---------------------------------------------------------------------- basics


def test_ping_and_auth(fake: FakeChartMogul, api: Api) -> None:
    assert fake.url is not None
    assert api.ok("GET", "/ping") == {"data": "pong!"}
    unauth = {"code": 401, "message": "No valid API key provided", "param": None}
    response = requests.get(fake.url + "/ping", timeout=5)
    assert response.status_code == 401
    assert response.json() == unauth
    assert response.headers["Content-Type"] == "application/json"
    assert requests.get(fake.url + "/ping", auth=("nope", ""), timeout=5).status_code == 401
    assert requests.get(fake.url + "/ping", auth=("", KEY), timeout=5).status_code == 200
    assert [r.authorized for r in fake.requests] == [True, False, False, True]
    assert fake.count("GET", r"^/ping$", 401) == 2
    assert fake.count(path_regex=r"/v1/ping") == 4


def test_unknown_route_and_bad_json(fake: FakeChartMogul, api: Api) -> None:
    assert fake.url is not None
    response = api.get("/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not found", "param": None}
    assert requests.get(fake.url.replace("/v1", "") + "/ping", auth=(KEY, ""), timeout=5).status_code == 404
    bad = api.session.post(fake.url + "/customers", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert bad.status_code == 400
    assert bad.json() == {"code": 400, "message": "Invalid JSON", "param": None}


def test_keep_alive_reuses_one_connection(fake: FakeChartMogul, api: Api) -> None:
    for _ in range(5):
        assert api.get("/ping").status_code == 200
    assert fake.connections_opened == 1


# ---------------------------------------------------------------------- data sources


def test_data_sources(fake: FakeChartMogul, api: Api) -> None:
    created = api.ok("POST", "/data_sources", {"name": "web"}, status=201)
    assert created["uuid"].startswith("ds_")
    assert created["system"] == "Custom"
    assert created["status"] == "idle"
    assert set(created) == {"uuid", "name", "system", "created_at", "status"}
    dup = api.post("/data_sources", {"name": "web"})
    assert dup.status_code == 422
    assert dup.json() == {"errors": {"name": "Has already been taken."}}
    missing = api.post("/data_sources", {})
    assert missing.status_code == 400
    assert missing.json() == {"code": 400, "message": 'Parameter "name" is missing', "param": "name"}
    null_name = api.post("/data_sources", {"name": None})
    assert null_name.status_code == 422
    assert null_name.json() == {"errors": {"name": "A name is required for each data source."}}
    direct = fake.add_data_source("other")
    listed = api.ok("GET", "/data_sources")["data_sources"]
    assert [d["uuid"] for d in listed] == [created["uuid"], direct["uuid"]]
    assert api.ok("GET", f"/data_sources/{created['uuid']}") == created
    flags = {"with_processing_status": "true", "with_auto_churn_subscription_setting": "true"}
    flagged = api.ok("GET", f"/data_sources/{created['uuid']}", **flags, with_invoice_handling_setting="true")
    assert flagged["processing_status"] == {"processed": 0, "failed": 0, "pending": 0}
    assert flagged["auto_churn_subscription_setting"] == {"enabled": False, "interval": 30}
    assert set(flagged["invoice_handling_setting"]) == {"manual", "automatic"}
    assert api.call("DELETE", f"/data_sources/{created['uuid']}").status_code == 204
    gone = api.get(f"/data_sources/{created['uuid']}")
    assert gone.status_code == 404
    assert gone.json() == {"error": "Data source not found"}


# ---------------------------------------------------------------------- customers


def test_create_customer_shape_and_rules(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    other = make_ds(api, "other")
    customer = make_customer(
        api,
        ds,
        "c1",
        name="Ann",
        email="ann@example.com",
        country="DE",
        city="Berlin",
        zip="10115",
        lead_created_at="2024-03-01T12:00:00+02:00",
        primary_contact={"first_name": "Ann"},
        attributes={
            "tags": ["VIP", "vip", "Beta"],
            "custom": [
                {"type": "Integer", "key": "seats", "value": "12"},
                {"type": "Boolean", "key": "paying", "value": "T", "source": "db"},
            ],
        },
    )
    assert isinstance(customer["id"], int)
    assert customer["uuid"].startswith("cus_")
    assert list(customer) == CUSTOMER_KEYS  # recorded keys: never primary_contact
    assert customer["external_ids"] == ["c1"]
    assert customer["data_source_uuids"] == [ds]
    assert (customer["name"], customer["email"], customer["company"]) == ("Ann", "ann@example.com", "")
    assert (customer["country"], customer["state"], customer["city"], customer["zip"]) == ("DE", None, "Berlin", "10115")
    assert customer["address"] == {"country": "DE", "state": None, "city": "Berlin", "address_zip": "10115"}
    assert customer["lead_created_at"] == "2024-03-01T10:00:00.000Z"
    assert customer["free_trial_started_at"] is None
    assert customer["attributes"] == {
        "custom": {"seats": 12, "paying": True},
        "clearbit": {},
        "stripe": {},
        "tags": ["VIP", "Beta"],  # kept as sent (tag_case "keep"), unique ignoring case
    }
    assert (customer["status"], customer["customer-since"]) == ("New Lead", None)
    assert (customer["mrr"], customer["arr"], customer["owner"], customer["website_url"]) == (0, 0, None, None)
    assert customer["billing-system-type"] == "Custom"
    assert customer["chartmogul-url"] == f"https://app.chartmogul.com/#/customers/{customer['id']}-Ann"
    assert fake.custom_attribute_types(customer["uuid"]) == {"seats": "Integer", "paying": "Boolean"}
    with fake.lock:
        stored = fake.customers[customer["uuid"]]
        assert stored["email"] == "ann@example.com"
        assert stored["primary_contact"] == {"first_name": "Ann"}  # kept, never answered
    bare = make_customer(api, ds, "bare")
    assert {k: bare[k] for k in ("name", "email", "company", "country", "state", "city", "zip")} == {
        "name": "",
        "email": "",
        "company": "",
        "country": None,
        "state": None,
        "city": "",
        "zip": None,
    }
    assert bare["address"] == {"country": None, "state": None, "city": "", "address_zip": None}
    foreign = make_customer(api, ds, "foreign", country="DE", state="NY")
    assert foreign["state"] is None  # recorded: a US state sent with country DE came back null

    dup = api.post("/customers", {"data_source_uuid": ds, "external_id": "c1"})
    assert dup.status_code == 422
    assert dup.json() == {"errors": {"external_id": "The external ID for this customer already exists in our system."}}
    make_customer(api, other, "c1")  # same external_id, other data source
    make_customer(api, ds, "c2", email="ann@example.com")  # emails are not unique
    assert len(fake.find_customers(ds, "c1")) == 1

    missing = api.post("/customers", {"data_source_uuid": ds})
    assert missing.status_code == 400
    assert missing.json()["param"] == "external_id"
    unknown = api.post("/customers", {"data_source_uuid": "ds_nope", "external_id": "x"})
    assert unknown.status_code == 422
    assert unknown.json() == {"errors": {"data_source_uuid": "Data source not found"}}
    bad_country = api.post("/customers", {"data_source_uuid": ds, "external_id": "x", "country": "Germany"})
    assert bad_country.json() == {"errors": {"country": "Country is invalid"}}
    bad_date = api.post("/customers", {"data_source_uuid": ds, "external_id": "x", "lead_created_at": "soon"})
    assert bad_date.status_code == 422
    assert bad_date.json() == {"errors": {"lead_created_at": "is invalid"}}
    assert fake.find_customers(ds, "x") == []


def test_list_and_search_customers_with_paging(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    for i in range(5):
        make_customer(api, ds, f"c{i}", email="same@example.com")
    seen: list[str] = []
    cursor: str | None = None
    pages: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"data_source_uuid": ds, "per_page": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.ok("GET", "/customers", **params)
        pages.append(page)
        seen += [c["external_id"] for c in page["entries"]]
        cursor = page["cursor"]
        assert isinstance(cursor, str)  # even on the last page, as recorded
        if not page["has_more"]:
            break
    assert len(pages) == 3
    assert seen == [f"c{i}" for i in range(5)]
    # Only the first page (no cursor sent) carries the old page-number fields, as recorded.
    assert list(pages[0]) == ["entries", "current_page", "total_pages", "has_more", "per_page", "page", "cursor"]
    assert (pages[0]["current_page"], pages[0]["total_pages"], pages[0]["per_page"], pages[0]["page"]) == (1, 3, 2, 1)
    assert [list(p) for p in pages[1:]] == [["entries", "cursor", "has_more"]] * 2
    past_the_end = api.ok("GET", "/customers", data_source_uuid=ds, per_page=2, cursor=cursor)
    assert past_the_end == {"entries": [], "cursor": None, "has_more": False}
    fake.last_page_cursor = "null"
    last = api.ok("GET", "/customers", data_source_uuid=ds, per_page=2, cursor=pages[1]["cursor"])
    assert (len(last["entries"]), last["cursor"], last["has_more"]) == (1, None, False)
    fake.last_page_cursor = "string"
    one = api.ok("GET", "/customers", data_source_uuid=ds, external_id="c3")
    assert [c["external_id"] for c in one["entries"]] == ["c3"]
    assert api.ok("GET", "/customers", data_source_uuid=ds, external_id="zz") == {
        "entries": [],
        "current_page": 1,
        "total_pages": 1,
        "has_more": False,
        "per_page": 200,
        "page": 1,
        "cursor": None,
    }
    assert len(api.ok("GET", "/customers", per_page=500)["entries"]) == 5
    assert api.get("/customers", cursor="garbage!").status_code == 400

    found = api.ok("GET", "/customers/search", email="same@example.com", per_page=4)
    assert len(found["entries"]) == 4
    assert found["has_more"] is True
    assert found["total_pages"] is None  # search answers null here, as recorded
    assert list(found["entries"][0]) == CUSTOMER_KEYS
    none = api.get("/customers/search", email="x@y")
    assert none.status_code == 404
    assert none.json() == {"code": 404, "message": 'Can\'t find any customers with email: "x@y"', "param": "email"}


def test_get_patch_delete_customer(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    customer = make_customer(api, ds, attributes={"tags": ["a"], "custom": [{"type": "Integer", "key": "n", "value": 1}]})
    path = f"/customers/{customer['uuid']}"
    assert api.ok("GET", path) == customer
    patched = api.ok(
        "PATCH",
        path,
        {
            "name": "New",
            "country": "FR",
            "free_trial_started_at": "2024-05-05",
            "attributes": {"tags": ["X"], "custom": {"n": "7", "plan": {"value": "pro", "source": "db"}}},
        },
    )
    assert patched["name"] == "New"
    assert patched["address"]["country"] == "FR"
    assert patched["free_trial_started_at"] == "2024-05-05T00:00:00.000Z"
    assert patched["attributes"]["tags"] == ["X"]
    assert patched["attributes"]["custom"] == {"n": 7, "plan": "pro"}
    assert fake.custom_attribute_types(customer["uuid"]) == {"n": "Integer", "plan": "String"}
    cleared = api.ok("PATCH", path, {"name": None, "email": None, "company": None, "city": None, "zip": None})
    assert (cleared["name"], cleared["email"], cleared["company"], cleared["city"], cleared["zip"]) == ("", "", "", "", None)
    with fake.lock:
        assert fake.customers[customer["uuid"]]["name"] is None
    bad = api.call("PATCH", path, {"country": "fr"})
    assert bad.status_code == 422
    assert bad.json() == {"errors": {"country": "Country is invalid"}}
    assert api.call("DELETE", path).status_code == 204
    missing = api.get(path)
    assert missing.status_code == 404
    assert missing.json() == {"error": "Customer not found"}
    assert api.call("PATCH", path, {"name": "x"}).status_code == 404


def test_custom_attributes_and_tags(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    base = f"/customers/{cus}/attributes"
    added = api.ok(
        "POST",
        base + "/custom",
        {
            "custom": [
                {"type": "String", "key": "channel", "value": "Ads"},
                {"type": "Integer", "key": "seats", "value": 3},
                {"type": "Decimal", "key": "score", "value": "2.5"},
                {"type": "Boolean", "key": "paid", "value": "false"},
                {"type": "Timestamp", "key": "signed", "value": "2016-01-31"},
                {"type": "String", "key": "empty", "value": None},
            ]
        },
    )
    assert added == {
        "custom": {
            "channel": "Ads",
            "seats": 3,
            "score": 2.5,
            "paid": False,
            "signed": "2016-01-31T00:00:00.000Z",
            "empty": None,
        }
    }
    for entry, key in [
        ({"type": "String", "key": "long", "value": "x" * 256}, "long"),
        ({"type": "Integer", "key": "n", "value": "1.5"}, "n"),
        ({"type": "Boolean", "key": "b", "value": "yes"}, "b"),
        ({"type": "Timestamp", "key": "t", "value": "nope"}, "t"),
        ({"type": "Money", "key": "m", "value": 1}, "m"),
        ({"type": "String", "key": "bad-key", "value": "v"}, "bad-key"),
    ]:
        response = api.post(base + "/custom", {"custom": [entry]})
        assert response.status_code == 422, entry
        assert key in response.json()["errors"]
    too_long = api.post(base + "/custom", {"custom": [{"type": "String", "key": "s", "value": "x" * 256}]})
    assert too_long.json() == {"errors": {"s": "is too long (maximum is 255 characters)"}}

    updated = api.ok("PUT", base + "/custom", {"custom": {"seats": "9", "paid": 1, "fresh": 5, "channel": None}})
    custom = updated["custom"]
    assert (custom["seats"], custom["paid"], custom["fresh"], custom["channel"]) == (9, True, "5", None)
    assert fake.custom_attribute_types(cus)["fresh"] == "String"
    assert api.call("PUT", base + "/custom", {"custom": {"seats": "many"}}).status_code == 422

    assert api.call("DELETE", base + "/custom", {"custom": ["score", "nope"]}).status_code == 204
    assert "score" not in api.ok("GET", base)["custom"]
    assert "score" not in fake.custom_attribute_types(cus)

    assert api.ok("POST", base + "/tags", {"tags": ["A", "b"]}) == {"tags": ["A", "b"]}
    assert api.ok("POST", base + "/tags", {"tags": ["B", "C"]}) == {"tags": ["A", "b", "C"]}
    assert api.ok("DELETE", base + "/tags", {"tags": ["a"]}) == {"tags": ["b", "C"]}
    attributes = api.ok("GET", base)
    assert list(attributes) == ["tags", "stripe", "custom"]  # recorded: no clearbit here
    assert attributes["tags"] == ["b", "C"]
    assert api.get("/customers/cus_nope/attributes").json() == {"error": "Customer not found"}


def test_tag_switches_and_tags_set_in_the_app(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    plan = make_plan(api, ds)
    cus = make_customer(api, ds, attributes={"tags": ["VIP"]})["uuid"]
    api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [invoice("a", plan)]}, 201)
    assert api.ok("GET", f"/customers/{cus}")["attributes"]["tags"] == ["VIP"]  # auto_tags is off by default

    fake.tag_case = "lower"
    fake.auto_tags = True
    other = make_customer(api, ds, "c2", attributes={"tags": ["VIP", "Beta"]})["uuid"]
    assert api.ok("GET", f"/customers/{other}")["attributes"]["tags"] == ["vip", "beta"]
    api.ok("POST", f"/import/customers/{other}/invoices", {"invoices": [invoice("b", plan)]}, 201)
    tags = api.ok("GET", f"/customers/{other}")["attributes"]["tags"]
    assert tags == ["vip", "beta", "auto-churned-delinquent-subscription"]
    assert api.ok("DELETE", f"/customers/{other}/attributes/tags", {"tags": ["auto-churned-delinquent-subscription"]})
    api.ok("POST", f"/import/customers/{other}/invoices", {"invoices": [invoice("c", plan)]}, 201)
    assert api.ok("GET", f"/customers/{other}")["attributes"]["tags"] == ["vip", "beta"]  # only the first import tags

    # No HTTP; planted as given even while the API lower-cases, and unique ignoring case.
    assert fake.tag_in_app(other, "Prio1", "VIP") == ["vip", "beta", "Prio1"]
    fake.tag_case = "keep"
    assert fake.count(path_regex="attributes/tags") == 1
    assert api.ok("POST", f"/customers/{other}/attributes/tags", {"tags": ["prio1", "New"]}) == {
        "tags": ["vip", "beta", "Prio1", "New"]
    }
    with pytest.raises(ValueError, match="tag_case"):
        fake.tag_case = "upper"


def test_merge_customers(fake: FakeChartMogul, api: Api) -> None:
    fake.auto_tags = True
    ds = make_ds(api)
    plan = make_plan(api, ds)
    gone = make_customer(api, ds, "old", attributes={"tags": ["a"]})["uuid"]
    kept = make_customer(api, ds, "new")["uuid"]
    api.ok("POST", f"/import/customers/{gone}/invoices", {"invoices": [invoice("i1", plan)]}, 201)
    merge = {"from": {"customer_uuid": gone}, "into": {"data_source_uuid": ds, "external_id": "new"}}
    assert api.ok("POST", "/customers/merges", merge, status=202) == {}
    survivor = api.ok("GET", f"/customers/{kept}")
    assert survivor["external_ids"] == ["new", "old"]
    assert survivor["data_source_uuids"] == [ds, ds]  # one entry per external id, as recorded
    assert survivor["attributes"]["tags"] == ["a", "auto-churned-delinquent-subscription", "merged-customer"]
    assert (survivor["status"], survivor["customer-since"]) == ("Active", "2024-01-01T00:00:00+00:00")
    assert api.get(f"/customers/{gone}").status_code == 404
    assert [c["uuid"] for c in fake.find_customers(ds, "old")] == [kept]
    # After a merge, invoices for the merged-in customer go to the survivor with its external id.
    body = invoice("i2", plan, customer_external_id="old")
    api.ok("POST", f"/import/customers/{kept}/invoices", {"invoices": [body]}, 201)
    stored = fake.find_invoice(ds, "i2")
    assert stored is not None and stored["customer_external_id"] == "old"
    listed = api.ok("GET", f"/import/customers/{kept}/invoices")["invoices"]
    assert sorted(i["external_id"] for i in listed) == ["i1", "i2"]
    lead = make_customer(api, ds, "lead")["uuid"]
    assert [c["uuid"] for c in api.get("/customers", status="Active").json()["entries"]] == [kept]  # derived status
    assert [c["uuid"] for c in api.get("/customers", status="New_Lead").json()["entries"]] == [lead]
    unknown = api.post("/customers/merges", {"from": {"customer_uuid": "cus_nope"}, "into": {"customer_uuid": kept}})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Customer not found"})


def test_unset_city_switch() -> None:
    with FakeChartMogul(api_key=KEY, unset_city=None) as server:
        client = Api(server)
        ds = make_ds(client)
        customer = make_customer(client, ds)
        assert (customer["city"], customer["address"]["city"]) == (None, None)  # as in the 2025 recording
        server.unset_city = ""
        assert client.ok("GET", f"/customers/{customer['uuid']}")["city"] == ""
        with pytest.raises(ValueError, match="unset_city"):
            server.unset_city = "n/a"
        client.session.close()


# ---------------------------------------------------------------------- plans


def test_plans(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    body = {"data_source_uuid": ds, "name": "Gold", "interval_count": 1, "interval_unit": "month", "external_id": "g"}
    plan = api.ok("POST", "/plans", body, status=201)
    assert plan["uuid"].startswith("pl_")
    assert set(plan) == {"external_id", "name", "interval_count", "interval_unit", "data_source_uuid", "uuid"}
    dup = api.post("/plans", body)
    assert dup.status_code == 422
    assert dup.json() == {"errors": {"external_id": "A plan with this identifier already exists in our system."}}
    bad = api.post("/plans", {**body, "external_id": "h", "interval_unit": "week"})
    assert bad.json() == {"errors": {"interval_unit": "is not included in the list"}}
    generated = api.ok("POST", "/plans", {k: v for k, v in body.items() if k != "external_id"}, status=201)
    assert generated["external_id"]
    listed = api.ok("GET", "/plans", data_source_uuid=ds, external_id="g")
    assert isinstance(listed["cursor"], str)  # the last page's cursor is a string, as recorded
    assert listed == {"plans": [plan], "current_page": 1, "total_pages": 1, "cursor": listed["cursor"], "has_more": False}
    assert api.ok("GET", "/plans", data_source_uuid=ds, external_id="g", cursor=listed["cursor"]) == {
        "plans": [],
        "cursor": None,
        "has_more": False,
    }
    assert fake.find_plan(ds, "g") == plan
    patched = api.ok("PATCH", f"/plans/{plan['uuid']}", {"name": "Platinum"}, status=202)
    assert patched["name"] == "Platinum"
    assert api.ok("GET", f"/plans/{plan['uuid']}")["name"] == "Platinum"
    assert api.call("DELETE", f"/plans/{plan['uuid']}").status_code == 204
    assert api.get(f"/plans/{plan['uuid']}").json() == {"error": "Plan not found"}
    assert fake.find_plan(ds, "g") is None


# ---------------------------------------------------------------------- invoices


def test_import_invoices_success(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    plan = make_plan(api, ds)
    first = invoice(
        "inv-1",
        plan,
        due_date="2024-01-15T00:00:00Z",
        collection_method="manual",
        customer_external_id="c1",
        data_source_uuid=ds,
        transactions=[{"type": "payment", "result": "successful", "date": "2024-01-02", "external_id": "t1"}],
    )
    first["line_items"][0].update(plan_external_id="p1", subscription_set_external_id="set-1", cancelled_at="2024-01-20")
    second = invoice("inv-2", plan)
    second["line_items"].append({"type": "one_time", "amount_in_cents": 50, "description": "setup"})
    second["line_items"].append({"type": "one_time", "amount_in_cents": -25})  # a credit: negative amounts are accepted
    body = api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [first, second]}, status=201)
    assert list(body) == ["invoices"]
    saved = body["invoices"]
    import_keys = ["uuid", "external_id", "date", "due_date", "currency", "errors", "line_items", "transactions"]
    assert [list(i) for i in saved] == [import_keys, import_keys]  # no customer_uuid / data_source_uuid
    assert [i["external_id"] for i in saved] == ["inv-1", "inv-2"]
    assert all(i["errors"] == {} and i["uuid"].startswith("inv_") for i in saved)
    assert (saved[0]["date"], saved[0]["due_date"], saved[1]["due_date"]) == (
        "2024-01-01T00:00:00.000Z",
        "2024-01-15T00:00:00.000Z",
        None,
    )
    item = saved[0]["line_items"][0]
    assert item["uuid"].startswith("li_")
    assert item["subscription_uuid"].startswith("sub_")
    set_keys = [*SUBSCRIPTION_ITEM_KEYS[:9], "subscription_set_external_id", *SUBSCRIPTION_ITEM_KEYS[9:]]
    assert list(item) == set_keys  # no plan_external_id, no cancelled_at
    assert {k: item[k] for k in set_keys if k not in ("uuid", "subscription_uuid")} == {
        "external_id": "inv-1-li",
        "type": "subscription",
        "subscription_external_id": "sub-1",
        "prorated": False,
        "proration_type": None,
        "service_period_start": "2024-01-01T00:00:00.000Z",
        "service_period_end": "2024-02-01T00:00:00.000Z",
        "subscription_set_external_id": "set-1",
        "plan_uuid": plan,
        "amount_in_cents": 1000,
        "quantity": 1,
        "discount_code": "",
        "discount_amount_in_cents": 0,
        "tax_amount_in_cents": 0,
        "transaction_fees_in_cents": 0,
        "account_code": "",
        "transaction_fees_currency": None,
        "discount_description": None,
        "event_order": None,
    }
    assert list(saved[1]["line_items"][0]) == SUBSCRIPTION_ITEM_KEYS
    assert saved[1]["line_items"][0]["subscription_uuid"] == item["subscription_uuid"]
    setup, credit = saved[1]["line_items"][1:]
    assert list(setup) == ONE_TIME_ITEM_KEYS
    assert (setup["description"], setup["quantity"], setup["external_id"]) == ("setup", 1, None)
    assert (credit["description"], credit["amount_in_cents"]) == (None, -25)
    tx = saved[0]["transactions"][0]
    assert list(tx) == TRANSACTION_KEYS
    assert tx["uuid"].startswith("tr_")
    assert (tx["date"], tx["amount_in_cents"], tx["transaction_fees_in_cents"], tx["transaction_fees_currency"]) == (
        "2024-01-02T00:00:00.000Z",
        None,
        None,
        None,
    )
    stored = fake.find_invoice(ds, "inv-1")
    assert stored is not None
    assert stored["date"] == "2024-01-01T00:00:00.000Z"
    assert stored["due_date"] == "2024-01-15T00:00:00.000Z"
    assert stored["customer_uuid"] == cus
    assert stored["customer_external_id"] == "c1"
    assert stored["data_source_uuid"] == ds
    assert stored["collection_method"] == "manual"
    assert stored["line_items"][0]["plan_external_id"] == "p1"  # kept in the store, never answered
    with fake.lock:
        assert tx["uuid"] in fake.transactions
        assert len(fake.invoices) == 2

    listed = api.ok("GET", f"/import/customers/{cus}/invoices", per_page=1)
    assert list(listed) == ["customer_uuid", "invoices", "current_page", "total_pages", "cursor", "has_more"]
    assert (listed["customer_uuid"], listed["current_page"], listed["total_pages"]) == (cus, 1, 2)
    assert listed["has_more"] is True
    rest = api.ok("GET", f"/import/customers/{cus}/invoices", per_page=1, cursor=listed["cursor"])
    assert list(rest) == ["customer_uuid", "invoices", "cursor", "has_more"]
    pages = listed["invoices"] + rest["invoices"]  # one each (their order: tests/test_fake_listing_order.py)
    assert sorted(pages, key=lambda i: i["external_id"]) == saved  # same shape as the import answer
    assert rest["has_more"] is False
    assert isinstance(rest["cursor"], str)
    found = api.ok("GET", "/invoices", data_source_uuid=ds, external_id="inv-2")
    assert list(found) == ["invoices", "total_pages", "current_page", "cursor", "has_more"]
    list_keys = ["uuid", "external_id", "date", "due_date", "currency", "customer_uuid", "errors", "line_items", "transactions"]
    assert [list(i) for i in found["invoices"]] == [list_keys]
    assert found["invoices"][0]["uuid"] == saved[1]["uuid"]
    assert found["invoices"][0]["customer_uuid"] == cus
    assert [li["balance_transfer"] for li in found["invoices"][0]["line_items"]] == [None, None, None]  # as recorded
    one = api.ok("GET", f"/invoices/{saved[0]['uuid']}")
    assert one == {**saved[0], "customer_uuid": cus}
    assert list(one) == list_keys
    assert api.call("DELETE", f"/invoices/{saved[0]['uuid']}").status_code == 204
    assert api.get(f"/invoices/{saved[0]['uuid']}").json() == {"error": "Invoice not found"}
    with fake.lock:
        assert tx["uuid"] not in fake.transactions

    missing = api.post("/import/customers/cus_nope/invoices", {"invoices": [invoice("x", plan)]})
    assert missing.status_code == 404
    assert missing.json() == {"error": "Invoice not found"}


def test_line_item_order_switch(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    plan = make_plan(api, ds)
    body = invoice("a", plan)
    body["line_items"].insert(0, {"type": "one_time", "amount_in_cents": 5, "description": "first"})
    sent = api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [body]}, 201)["invoices"][0]
    assert [li["type"] for li in sent["line_items"]] == ["one_time", "subscription"]
    fake.line_item_order = "reversed"  # as the 2017/2019 recordings answered
    again = api.ok("GET", f"/invoices/{sent['uuid']}")
    assert [li["type"] for li in again["line_items"]] == ["subscription", "one_time"]
    stored = fake.find_invoice(ds, "a")
    assert stored is not None
    assert [li["type"] for li in stored["line_items"]] == ["one_time", "subscription"]  # the store keeps the sent order
    with pytest.raises(ValueError, match="line_item_order"):
        fake.line_item_order = "sorted"


@pytest.mark.parametrize("mode", ["save_valid", "save_none"])
def test_import_invoices_partial_failure(mode: str, fake: FakeChartMogul, api: Api) -> None:
    fake.invoice_batch_mode = mode
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    plan = make_plan(api, ds)
    api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [invoice("old", plan)]}, status=201)
    batch = [
        invoice("new", plan),
        invoice("old", plan),
        invoice("bad-plan", "pl_nope"),
        {**invoice("bad-cur", plan), "currency": "usd", "data_source_uuid": ds, "collection_method": "manual"},
    ]
    response = api.post(f"/import/customers/{cus}/invoices", {"invoices": batch})
    assert response.status_code == 422
    entries = response.json()["invoices"]
    assert [e["external_id"] for e in entries] == ["new", "old", "bad-plan", "bad-cur"]
    assert entries[0]["errors"] == {}
    assert entries[1]["errors"]["external_id"] == "The external ID for this invoice already exists in our system."
    assert "line_items.plan_uuid" in entries[2]["errors"]
    assert "currency" in entries[3]["errors"]
    assert not {"data_source_uuid", "collection_method", "customer_external_id"} & set(entries[3])
    if mode == "save_valid":
        assert entries[0]["uuid"].startswith("inv_")
        assert fake.find_invoice(ds, "new") is not None
    else:
        assert "uuid" not in entries[0]
        assert fake.find_invoice(ds, "new") is None
    assert fake.find_invoice(ds, "bad-plan") is None


def test_invoice_duplicate_line_items_and_transactions(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    plan = make_plan(api, ds)
    tx = {"type": "payment", "result": "successful", "date": "2024-01-02", "external_id": "t1"}
    api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [invoice("a", plan, transactions=[tx])]}, 201)
    reused_li = invoice("b", plan)
    reused_li["line_items"][0]["external_id"] = "a-li"
    reused_tx = invoice("c", plan, transactions=[tx])
    no_sub = invoice("d", plan)
    del no_sub["line_items"][0]["subscription_external_id"]
    response = api.post(f"/import/customers/{cus}/invoices", {"invoices": [reused_li, reused_tx, no_sub]})
    assert response.status_code == 422
    errors = [e["errors"] for e in response.json()["invoices"]]
    assert errors[0] == {"line_items.external_id": "The external ID for this line item already exists in our system."}
    assert errors[1] == {"transactions.external_id": "has already been taken"}
    assert "line_items.subscription_external_id" in errors[2]
    # Duplicates inside one call are caught too.
    twice = api.post(f"/import/customers/{cus}/invoices", {"invoices": [invoice("e", plan), invoice("e", plan)]})
    assert [bool(e["errors"]) for e in twice.json()["invoices"]] == [False, True]


# ---------------------------------------------------------------------- transactions


def test_standalone_transactions(fake: FakeChartMogul, api: Api) -> None:
    ds = make_ds(api)
    cus = make_customer(api, ds)["uuid"]
    plan = make_plan(api, ds)
    inv = api.ok("POST", f"/import/customers/{cus}/invoices", {"invoices": [invoice("a", plan)]}, 201)["invoices"][0]
    path = f"/import/invoices/{inv['uuid']}/transactions"
    body = {"type": "refund", "result": "successful", "date": "2024-02-01 10:00:00", "external_id": "r1"}
    tx = api.ok("POST", path, {**body, "amount_in_cents": 500}, status=201)
    assert tx["uuid"].startswith("tr_")
    assert set(tx) == {
        "uuid",
        "external_id",
        "type",
        "date",
        "result",
        "amount_in_cents",
        "transaction_fees_in_cents",
    }
    assert tx["date"] == "2024-02-01T10:00:00.000Z"
    assert api.ok("GET", f"/transactions/{tx['uuid']}") == tx
    with fake.lock:
        assert fake.transactions[tx["uuid"]]["amount_in_cents"] == 500
        assert [t["uuid"] for t in fake.invoices[inv["uuid"]]["transactions"]] == [tx["uuid"]]
    dup = api.post(path, body)
    assert dup.status_code == 422
    assert dup.json() == {"errors": {"external_id": "has already been taken"}}
    bad = api.post(path, {**body, "external_id": "r2", "type": "chargeback"})
    assert bad.json() == {"errors": {"type": "is not included in the list"}}
    assert api.post("/import/invoices/inv_nope/transactions", body).json() == {"error": "Invoice not found"}
    assert api.call("DELETE", f"/transactions/{tx['uuid']}").status_code == 204
    assert api.get(f"/transactions/{tx['uuid']}").json() == {"error": "Transaction not found"}
    with fake.lock:
        assert fake.invoices[inv["uuid"]]["transactions"] == []


# ---------------------------------------------------------------------- faults


def test_error_faults(fake: FakeChartMogul, api: Api) -> None:
    fake.inject(Fault("error_before", method="POST", path_regex=r"^/data_sources$"))
    fake.inject(Fault("error_after", method="POST", path_regex=r"^/data_sources$"))
    first = api.post("/data_sources", {"name": "a"})
    assert first.status_code == 500
    assert first.text == "500 Internal Server Error"
    assert first.headers["Content-Type"].startswith("text/plain")
    assert fake.data_sources == {}
    second = api.post("/data_sources", {"name": "a"})
    assert second.status_code == 502
    assert second.text == "502 Bad Gateway"
    assert len(fake.data_sources) == 1  # the write happened anyway
    assert api.post("/data_sources", {"name": "a"}).status_code == 422  # faults used up
    assert [r.fault for r in fake.requests] == ["error_before", "error_after", None]
    assert fake.writes() == []
    fake.inject(Fault("error_before", status=504, times=2))
    timeouts = [api.get("/ping") for _ in range(3)]
    assert [r.status_code for r in timeouts] == [504, 504, 200]
    assert timeouts[0].text == "504 Gateway Timeout Error"  # ChartMogul's wording, as recorded


def test_drop_faults(fake: FakeChartMogul, api: Api) -> None:
    fake.inject(Fault("drop_before", method="POST"))
    fake.inject(Fault("drop_after", method="POST"))
    with pytest.raises(requests.ConnectionError):
        api.post("/data_sources", {"name": "a"})
    assert fake.data_sources == {}
    with pytest.raises(requests.ConnectionError):
        api.post("/data_sources", {"name": "a"})
    assert len(fake.data_sources) == 1
    assert fake.requests[-1].status == 0
    assert fake.requests[-1].applied_status == 201
    assert api.get("/ping").status_code == 200  # the session recovers with a new connection


def test_latency_fault_causes_timeout_but_still_writes(fake: FakeChartMogul, api: Api) -> None:
    fake.inject(Fault("latency", method="POST", delay=0.5))
    with pytest.raises(requests.Timeout):
        api.call("POST", "/data_sources", {"name": "slow"}, timeout=0.15)
    deadline = time.monotonic() + 3
    while not fake.data_sources and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.data_sources) == 1


def test_status_faults(fake: FakeChartMogul, api: Api) -> None:
    fake.inject(Fault("status_429", path_regex="ping"))
    fake.inject(Fault("status_429", path_regex="ping", retry_after=7))
    fake.inject(Fault("status_503", path_regex="ping"))
    bare = api.get("/ping")
    assert bare.status_code == 429
    assert "Retry-After" not in bare.headers  # no recorded 429 carries one
    throttled = api.get("/ping")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json() == {
        "code": 429,
        "message": "Your request rate has exceeded our rate limit.",
        "param": None,
    }
    unavailable = api.get("/ping")
    assert unavailable.status_code == 503
    assert unavailable.text == "503 Service Unavailable"
    assert api.get("/ping").status_code == 200
    assert fake.rate_limited_count == 0  # injected 429s are not rate limiting
    fake.retry_after = 2
    fake.inject(Fault("status_429", path_regex="ping"))
    assert api.get("/ping").headers["Retry-After"] == "2"  # the switch fills in for the fault
    with pytest.raises(ValueError, match="retry_after"):
        fake.retry_after = -1


def test_fault_matching_and_clear(fake: FakeChartMogul, api: Api) -> None:
    fake.inject(Fault("error_before", method="DELETE"))
    fake.inject(Fault("error_before", path_regex=r"^/customers"))
    assert api.get("/ping").status_code == 200
    assert api.get("/customers").status_code == 500
    fake.clear_faults()
    assert api.call("DELETE", "/plans/pl_x").status_code == 404
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")


def test_random_faults_are_deterministic() -> None:
    def run(seed: int) -> list[int]:
        with FakeChartMogul(api_key=KEY) as server:
            server.random_faults(rate=0.5, kinds=("error_before", "status_429", "status_503"), seed=seed)
            client = Api(server)
            codes = [client.get("/ping").status_code for _ in range(30)]
            client.session.close()
            return codes

    first = run(7)
    assert first == run(7)
    assert {429, 500, 503} <= set(first)
    assert 200 in first
    # One client, one request at a time: the seeded sequence is exact.
    assert collections.Counter(first) == {200: 11, 503: 9, 500: 8, 429: 2}


# ---------------------------------------------------------------------- limits and concurrency


def test_rate_limit_sends_429_without_retry_after_unless_asked() -> None:
    with FakeChartMogul(api_key=KEY, rate_limit=5) as server:
        client = Api(server)
        codes = [client.get("/ping") for _ in range(8)]
        assert [r.status_code for r in codes] == [200] * 5 + [429] * 3
        assert "Retry-After" not in codes[-1].headers
        assert codes[-1].json()["message"] == "Your request rate has exceeded our rate limit."
        assert server.rate_limited_count == 3
        server.retry_after = 1.5
        assert client.get("/ping").headers["Retry-After"] == "1.5"
        time.sleep(1.05)
        assert client.get("/ping").status_code == 200
        server.set_rate_limit(None)
        assert all(client.get("/ping").status_code == 200 for _ in range(10))
        client.session.close()


def _parallel(server: FakeChartMogul, workers: int, calls: int) -> list[int]:
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(workers)

    def work() -> None:
        client = Api(server)
        barrier.wait()
        for _ in range(calls):
            code = client.get("/ping").status_code
            with lock:
                codes.append(code)
        client.session.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return codes


def test_connection_limit_returns_503() -> None:
    with FakeChartMogul(api_key=KEY, max_connections=2, latency=0.3) as server:
        codes = _parallel(server, workers=5, calls=1)
        assert len(codes) == 5
        assert set(codes) == {200, 503}
        # How many of the five overlap depends on thread timing: bounds only.
        assert codes.count(503) >= 1
        assert codes.count(200) >= 2
        assert server.max_concurrent_seen >= 3
        assert server.count(status=503) == codes.count(503)


def test_many_concurrent_keep_alive_clients() -> None:
    with FakeChartMogul(api_key=KEY, max_connections=100, latency=0.05) as server:
        codes = _parallel(server, workers=25, calls=4)
        assert codes == [200] * 100
        assert 10 <= server.max_concurrent_seen <= 25  # thread timing: a range, at most one per worker


def test_state_changes_are_thread_safe() -> None:
    with FakeChartMogul(api_key=KEY) as server:
        ds = server.add_data_source("src")["uuid"]
        results: list[int] = []

        def create(i: int) -> None:
            client = Api(server)
            results.append(client.post("/customers", {"data_source_uuid": ds, "external_id": f"c{i % 10}"}).status_code)
            client.session.close()

        threads = [threading.Thread(target=create, args=(i,)) for i in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results.count(201) == 10
        assert results.count(422) == 20
        assert len(server.writes()) == 10
        assert server.count("POST", r"^/customers$") == 30
        server.clear_requests()
        assert server.requests == []


def test_stop_is_prompt_with_idle_keep_alive_connections() -> None:
    server = FakeChartMogul(api_key=KEY)
    server.start()
    client = Api(server)
    assert client.get("/ping").status_code == 200  # leaves an idle keep-alive connection
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0  # wall-clock time: a bound
    with pytest.raises(requests.ConnectionError):
        client.get("/ping")
    client.session.close()


@pytest.mark.subprocess  # the fake's command line (python -m tests.fake_chartmogul)
def test_command_line_runner(tmp_path: Path) -> None:
    dump = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_chartmogul",
            "--port",
            "0",
            "--api-key",
            "k",
            "--tag-case",
            "lower",
            "--retry-after",
            "3",
            *DEMO_ARGS,
            str(dump),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_CHARTMOGUL_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        assert url.endswith("/v1")
        assert requests.get(url + "/data_sources/ds_demo", auth=("k", ""), timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:  # closed here, not left to the garbage collector (warnings are errors)
            proc.stdout.close()
    state = json.loads(dump.read_text())
    assert [d["uuid"] for d in state["data_sources"]] == ["ds_demo"]
