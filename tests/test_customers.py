"""Customers through real HTTP against the fake API: modes, match keys, attributes, tags."""

from __future__ import annotations

import typing as t

import pytest

from tests.fake_chartmogul import FakeChartMogul
from tests.running import run_target
from tests.singer_messages import BOOLEAN, DATETIME, INTEGER, NUMBER, STRING, customers_stream, record, schema

STREAM = "public-customers"


def one_customer(fake: FakeChartMogul, ds: str, external_id: str) -> dict[str, t.Any]:
    found = fake.find_customers(ds, external_id)
    assert len(found) == 1, f"expected exactly one customer {external_id}, found {len(found)}"
    return found[0]


def test_upsert_creates_customers_field_by_field(fake, ds, base_config):
    rows = [
        {"external_id": "acct-1", "name": "Acme GmbH", "email": "billing@acme.test", "company": "Acme",
         "country": "de", "city": "Berlin", "zip": "10115", "lead_created_at": "2024-03-01T10:00:00+02:00",
         "website_url": "https://acme.test", "tags": ["Enterprise", "eu"]},
        {"external_id": "acct-2", "name": "Beta LLC", "email": "ops@beta.test", "country": "US", "state": "US-CA",
         "tags": None},
    ]
    result = run_target(base_config, customers_stream(STREAM, rows))

    acme = one_customer(fake, ds, "acct-1")
    assert acme["name"] == "Acme GmbH"
    assert acme["email"] == "billing@acme.test"
    assert acme["company"] == "Acme"
    assert acme["country"] == "DE"
    assert acme["city"] == "Berlin"
    assert acme["zip"] == "10115"
    assert acme["website_url"] == "https://acme.test"
    assert acme["lead_created_at"].startswith("2024-03-01T08:00:00")  # sent in UTC
    assert sorted(acme["attributes"]["tags"]) == ["Enterprise", "eu"]  # sent as written
    beta = one_customer(fake, ds, "acct-2")
    assert (beta["name"], beta["country"], beta["state"]) == ("Beta LLC", "US", "US-CA")
    assert beta["attributes"]["tags"] == []
    assert result.counts(STREAM)["created"] == 2
    assert result.counts(STREAM)["received"] == 2
    assert result.rejects == []


def test_custom_attribute_types_come_from_the_schema(fake, ds, base_config):
    extra = {"seats": INTEGER, "ltv": NUMBER, "trial": BOOLEAN, "renews_at": DATETIME, "plan": STRING,
             "untyped": {}}
    config = {**base_config, "streams": {STREAM: {"custom_attributes": ["seats", "ltv", "trial", "renews_at",
                                                                       "plan", "untyped"]}}}
    row = {"external_id": "c1", "name": "Typed", "seats": 12, "ltv": 5, "trial": False,
           "renews_at": "2025-01-31T00:00:00Z", "plan": "gold", "untyped": 7, "ignored_col": "x"}
    run_target(config, customers_stream(STREAM, [row], extra))

    customer = one_customer(fake, ds, "c1")
    types = fake.custom_attribute_types(customer["uuid"])
    # ltv is declared `number`: Decimal even though this value is whole.
    assert types == {"seats": "Integer", "ltv": "Decimal", "trial": "Boolean", "renews_at": "Timestamp",
                     "plan": "String", "untyped": "Integer"}
    custom = customer["attributes"]["custom"]
    assert custom["seats"] == 12
    assert custom["ltv"] == 5
    assert custom["trial"] is False
    assert custom["renews_at"].startswith("2025-01-31T00:00:00")
    assert custom["plan"] == "gold"
    assert "ignored_col" not in custom


def test_star_sends_every_non_standard_column(fake, ds, base_config):
    extra = {"seats": INTEGER, "segment": STRING}
    config = {**base_config, "streams": {STREAM: {"custom_attributes": "*"}}}
    run_target(config, customers_stream(STREAM, [{"external_id": "c1", "name": "N", "seats": 3, "segment": "smb",
                                                   "city": "Oslo"}], extra))
    customer = one_customer(fake, ds, "c1")
    assert customer["attributes"]["custom"] == {"seats": 3, "segment": "smb"}
    assert customer["city"] == "Oslo"


def test_nested_attributes_shape(fake, ds, base_config):
    props = {"external_id": STRING, "name": STRING,
             "attributes": {"type": "object", "properties": {
                 "custom": {"type": "object", "properties": {"score": NUMBER}},
                 "tags": {"type": "array", "items": {"type": "string"}}}}}
    run_target(base_config, [schema(STREAM, props), record(STREAM, {
        "external_id": "n1", "name": "Nested", "attributes": {"custom": {"score": 9.5, "tier": "a"}, "tags": ["X"]}})])
    customer = one_customer(fake, ds, "n1")
    assert fake.custom_attribute_types(customer["uuid"]) == {"score": "Decimal", "tier": "String"}
    assert customer["attributes"]["custom"] == {"score": 9.5, "tier": "a"}
    assert customer["attributes"]["tags"] == ["X"]


def test_upsert_twice_makes_no_duplicates_and_second_run_changes_what_changed(fake, ds, base_config):
    extra = {"seats": INTEGER, "plan": STRING, "tags": STRING}  # tags as a comma-separated column
    config = {**base_config, "streams": {STREAM: {"custom_attributes": ["seats", "plan"]}}}
    first = [{"external_id": "a", "name": "A", "tags": "one, two", "seats": 1, "plan": "x"},
             {"external_id": "b", "name": "B", "tags": "keep", "seats": 2, "plan": "y"}]
    run_target(config, customers_stream(STREAM, first, extra))
    fake.clear_requests()

    second = [{"external_id": "a", "name": "A renamed", "tags": "two,three", "seats": 5, "plan": "x"},
              {"external_id": "b", "name": "B", "tags": "keep", "seats": 2, "plan": "y"}]
    result = run_target(config, customers_stream(STREAM, second, extra))

    assert len(fake.customers) == 2
    a = one_customer(fake, ds, "a")
    assert a["name"] == "A renamed"
    assert sorted(a["attributes"]["tags"]) == ["three", "two"]  # stale tag "one" removed
    assert a["attributes"]["custom"] == {"seats": 5, "plan": "x"}
    b = one_customer(fake, ds, "b")
    assert b["name"] == "B" and b["attributes"]["custom"] == {"seats": 2, "plan": "y"}
    counts = result.counts(STREAM)
    assert (counts["updated"], counts["unchanged"], counts["created"]) == (1, 1, 0)
    # b changed nothing, so nothing but its create attempt and lookup touched it
    b_writes = [r for r in fake.writes() if b["uuid"] in r.path]
    assert b_writes == []


def test_null_custom_attribute_is_sent_as_null_or_removed(fake, ds, base_config):
    extra = {"plan": STRING}
    rows = [{"external_id": "a", "name": "A", "plan": "gold"}, {"external_id": "b", "name": "B", "plan": "gold"}]
    run_target({**base_config, "streams": {STREAM: {"custom_attributes": ["plan"]}}},
               customers_stream(STREAM, rows, extra))
    nulls = [{"external_id": "a", "name": "A", "plan": None}]
    run_target({**base_config, "streams": {STREAM: {"custom_attributes": ["plan"]}}},
               customers_stream(STREAM, nulls, extra))
    assert one_customer(fake, ds, "a")["attributes"]["custom"] == {"plan": None}

    removal = {**base_config, "streams": {STREAM: {"custom_attributes": ["plan"], "remove_null_custom_attributes": True}}}
    run_target(removal, customers_stream(STREAM, [{"external_id": "b", "name": "B", "plan": None}], extra))
    assert one_customer(fake, ds, "b")["attributes"]["custom"] == {}


def test_insert_leaves_existing_customers_alone(fake, ds, base_config):
    run_target(base_config, customers_stream(STREAM, [{"external_id": "a", "name": "Original"}]))
    config = {**base_config, "streams": {STREAM: {"mode": "insert"}}}
    result = run_target(config, customers_stream(STREAM, [{"external_id": "a", "name": "Changed"},
                                                           {"external_id": "b", "name": "New"}]))
    assert one_customer(fake, ds, "a")["name"] == "Original"
    assert one_customer(fake, ds, "b")["name"] == "New"
    counts = result.counts(STREAM)
    assert (counts["created"], counts["already_present"], counts["rejected"]) == (1, 1, 0)


def test_update_by_external_id_changes_existing_and_rejects_unknown(fake, ds, base_config):
    run_target(base_config, customers_stream(STREAM, [{"external_id": "acct-1", "name": "Before"}]))
    config = {**base_config, "streams": {STREAM: {"mode": "update"}}}
    result = run_target(config, customers_stream(STREAM, [{"external_id": "acct-1", "name": "After"},
                                                           {"external_id": "acct-7", "name": "Ghost"}]))
    assert one_customer(fake, ds, "acct-1")["name"] == "After"
    assert fake.find_customers(ds, "acct-7") == []
    assert len(result.rejects) == 1
    assert result.rejects[0]["reason"] == f'no customer with external_id "acct-7" in data source {ds}'
    assert result.rejects[0]["key"] == {"external_id": "acct-7"}


def test_update_by_uuid(fake, ds, base_config):
    run_target(base_config, customers_stream(STREAM, [{"external_id": "x", "name": "Before", "city": "Rome"}]))
    uuid = one_customer(fake, ds, "x")["uuid"]
    config = {**base_config, "streams": {STREAM: {"mode": "update", "match_by": "uuid"}}}
    props = {"uuid": STRING, "name": STRING, "city": STRING}
    result = run_target(config, [schema(STREAM, props, key=["uuid"]),
                                 record(STREAM, {"uuid": uuid, "name": "After", "city": "Milan"}),
                                 record(STREAM, {"uuid": "cus_does_not_exist", "name": "Nobody", "city": None})])
    customer = fake.customers[uuid]
    assert (customer["name"], customer["city"]) == ("After", "Milan")
    assert [r["reason"] for r in result.rejects] == ['no customer with uuid "cus_does_not_exist"']


def test_email_match_updates_every_customer_with_that_email_and_creates_when_none(fake, ds, base_config):
    run_target(base_config, customers_stream(STREAM, [
        {"external_id": "p1", "name": "Shared one", "email": "team@shared.test"},
        {"external_id": "p2", "name": "Shared two", "email": "team@shared.test"},
    ]))
    config = {**base_config, "streams": {STREAM: {"match_by": "email"}}}
    result = run_target(config, customers_stream(STREAM, [
        {"external_id": "crm-1", "name": "Shared Inc", "email": "team@shared.test", "company": "Shared"},
        {"external_id": "crm-2", "name": "Solo", "email": "solo@new.test"},
    ]))
    for ext in ("p1", "p2"):
        customer = one_customer(fake, ds, ext)
        assert (customer["name"], customer["company"]) == ("Shared Inc", "Shared")
    assert fake.find_customers(ds, "crm-1") == []
    assert one_customer(fake, ds, "crm-2")["email"] == "solo@new.test"
    assert len(fake.customers) == 3
    assert result.counts(STREAM)["updated"] == 1 and result.counts(STREAM)["created"] == 1


def test_bad_records_are_rejected_with_reasons_and_good_ones_land(fake, ds, base_config):
    extra = {"notes": STRING, "score": INTEGER}
    config = {**base_config, "streams": {STREAM: {"custom_attributes": ["notes", "score"]}}}
    rows = [
        {"external_id": "good-1", "name": "Good one"},
        {"name": "No id"},
        {"external_id": "long", "name": "Long", "notes": "x" * 300},
        {"external_id": "baddate", "name": "Bad date", "lead_created_at": "31/02/2024"},
        {"external_id": "germany", "name": "Country", "country": "Germany"},
        {"external_id": "", "name": "Empty id"},
        {"external_id": "noname"},
        {"external_id": "frac", "name": "Frac", "score": 1.5},
        {"external_id": "good-2", "name": "Good two", "notes": "fine", "score": 3},
    ]
    messages = customers_stream(STREAM, rows, extra, key=())
    result = run_target(config, messages)

    assert {c["external_id"] for c in fake.customers.values()} == {"good-1", "good-2"}
    reasons = {r["record"].get("external_id"): (r["field"], r["reason"]) for r in result.rejects}
    assert reasons[None] == ("external_id", "field 'external_id' is required")
    assert reasons["long"][0] == "notes" and "300 characters" in reasons["long"][1]
    assert reasons["baddate"][0] == "lead_created_at" and "ISO-8601" in reasons["baddate"][1]
    assert reasons["germany"][0] == "country" and "'Germany'" in reasons["germany"][1]
    assert reasons[""][0] == "external_id"
    assert reasons["noname"] == ("name", "field 'name' is required")
    assert reasons["frac"][0] == "score"
    assert all(r["stream"] == STREAM and r["time"].endswith("Z") for r in result.rejects)
    assert result.counts(STREAM)["rejected"] == 7


def test_same_key_twice_in_a_batch_the_last_wins(fake, ds, base_config):
    result = run_target(base_config, customers_stream(STREAM, [{"external_id": "d", "name": "First"},
                                                               {"external_id": "d", "name": "Last"}]))
    assert one_customer(fake, ds, "d")["name"] == "Last"
    assert result.counts(STREAM)["superseded"] == 1


def test_record_data_source_overrides_the_setting(fake, ds, base_config):
    other = fake.add_data_source("other")["uuid"]
    props = {"external_id": STRING, "name": STRING, "data_source_uuid": STRING}
    run_target(base_config, [schema(STREAM, props), record(STREAM, {"external_id": "s", "name": "S",
                                                                    "data_source_uuid": other})])
    assert fake.find_customers(ds, "s") == []
    assert len(fake.find_customers(other, "s")) == 1


def test_stream_maps_rename_columns(fake, ds, base_config):
    props = {"account_code": STRING, "account_name": STRING}
    config = {**base_config, "stream_maps": {"public-accounts": {
        "external_id": "account_code", "name": "account_name", "account_code": None, "account_name": None,
        "__key_properties__": ["external_id"]}},
        "streams": {"public-accounts": {"object": "customers"}}}
    run_target(config, [schema("public-accounts", props, key=["account_code"]),
                        record("public-accounts", {"account_code": "m1", "account_name": "Mapped"})])
    assert one_customer(fake, ds, "m1")["name"] == "Mapped"


@pytest.mark.parametrize("name", ["customers", "public-customers", "crm.customers", "CUSTOMERS"])
def test_stream_names_map_to_customers(fake, ds, base_config, name):
    run_target(base_config, customers_stream(name, [{"external_id": "z", "name": "Z"}]))
    assert len(fake.find_customers(ds, "z")) == 1


def test_unknown_streams_are_skipped_and_counted(fake, base_config):
    result = run_target(base_config, [schema("public-audit_log", {"id": INTEGER}, key=["id"]),
                                      record("public-audit_log", {"id": 1}), record("public-audit_log", {"id": 2})])
    assert result.counts("public-audit_log")["skipped"] == 2
    assert fake.count() == 0


def test_records_without_a_key_are_each_rejected_not_merged(fake, ds, base_config):
    result = run_target(base_config, customers_stream(STREAM, [{"name": "One"}, {"name": "Two"},
                                                               {"external_id": "k", "name": "Keyed"}], key=()))
    assert [r["record"]["name"] for r in result.rejects] == ["One", "Two"]
    assert result.counts(STREAM)["superseded"] == 0
    assert len(fake.customers) == 1
