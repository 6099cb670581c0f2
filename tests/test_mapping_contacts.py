"""Contact records to payloads: fields, custom attributes as [{key, value}] typed by the schema, identity."""

from __future__ import annotations

import logging

import pytest

from target_chartmogul.config.settings import stream_settings
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.contacts import ContactMapper, ContactPayload, could_be, is_copy, pair
from tests.singer_messages import BOOLEAN, DATE, INTEGER, NUMBER, STRING

DS = "ds_1"
SCHEMA = {"properties": {"external_id": STRING, "customer_external_id": STRING, "email": STRING, "champion": BOOLEAN,
                         "seats": INTEGER, "score": NUMBER, "birthday": DATE}}
ROW = {"external_id": "p-1", "customer_external_id": "acct-1", "first_name": "Ada", "last_name": None,
       "email": "ada@acme.test", "position": 2, "champion": "true", "seats": 10, "score": 2.5, "birthday": "1980-01-02"}


def mapper(**options) -> ContactMapper:
    entry = {"object": "contacts", "custom_attributes": ["champion", "seats", "score", "birthday"], **options}
    settings = stream_settings("public-people", {"public-people": entry})
    return ContactMapper(settings, SCHEMA, DS, logging.getLogger("test"))


def test_fields_and_typed_custom_attributes_make_the_create_body():
    payload = mapper().map(ROW)

    assert payload.create_body("cus_1") == {
        "customer_uuid": "cus_1", "data_source_uuid": DS, "external_id": "p-1", "first_name": "Ada",
        "email": "ada@acme.test", "position": 2,
        "custom": [{"key": "champion", "value": True}, {"key": "seats", "value": 10}, {"key": "score", "value": 2.5},
                   {"key": "birthday", "value": "1980-01-02T00:00:00Z"}],
    }
    assert payload.key("external_id") == (DS, "p-1")


def test_a_null_column_clears_its_field_and_a_missing_column_is_left_alone():
    payload = mapper().map({**ROW, "seats": None})

    body = payload.patch_body()
    assert body["last_name"] is None  # present and null: cleared
    assert "title" not in body  # not a column of this stream: untouched
    assert {"key": "seats", "value": None} in body["custom"]


def test_every_other_column_is_a_custom_attribute_with_a_star():
    payload = mapper(custom_attributes="*").map({**ROW, "_sdc_extracted_at": "2024-01-01"})

    assert sorted(payload.custom) == ["birthday", "champion", "score", "seats"]


def test_a_contact_without_a_customer_is_refused_naming_the_field():
    with pytest.raises(RecordRejected) as caught:
        mapper().map({**ROW, "customer_external_id": None})

    assert caught.value.field == "customer_external_id"
    assert caught.value.reason == (
        "field 'customer_external_id' (or 'customer_uuid') is required: a contact belongs to a customer")
    assert mapper().map({**ROW, "customer_external_id": None, "customer_uuid": "cus_9"}).customer_uuid == "cus_9"


def test_by_external_id_an_external_id_is_required_by_email_an_email():
    with pytest.raises(RecordRejected) as by_id:
        mapper().map({**ROW, "external_id": None})
    with pytest.raises(RecordRejected) as by_email:
        mapper(match_by="email").map({**ROW, "email": ""})

    assert (by_id.value.field, by_email.value.field) == ("external_id", "email")


def test_by_email_the_key_is_the_email_within_the_customer():
    by_email = mapper(match_by="email")

    first = by_email.map({**ROW, "external_id": None, "email": "Ada@Acme.test"})
    same = by_email.map({**ROW, "external_id": None, "email": "ada@acme.test"})
    other_customer = by_email.map({**ROW, "external_id": None, "customer_external_id": "acct-2"})

    assert first.key("email") == same.key("email") == (DS, "email:x:acct-1:ada@acme.test")
    assert other_customer.key("email") != first.key("email")


@pytest.mark.parametrize(("column", "value", "field"), [
    ("seats", "many", "seats"), ("position", 0, "position"), ("champion", "maybe", "champion"),
    ("email", {"a": 1}, "email"),
])
def test_a_value_chartmogul_would_refuse_is_refused_naming_the_field(column, value, field):
    with pytest.raises(RecordRejected) as caught:
        mapper().map({**ROW, column: value})

    assert caught.value.field == field


def person(external_id: str, email: str | None, first: str | None, last: str | None) -> ContactPayload:
    fields = {"email": email, "first_name": first, "last_name": last}
    return ContactPayload(DS, external_id, "acct-1", None, fields, {})


def test_rows_pair_with_held_contacts_surest_first_and_each_contact_once():
    rows = [person("p-1", None, "Ada", "Lovelace"),  # name only: must not take the contact p-2 holds by email
            person("p-2", "ADA@acme.test", "Ada", "Lovelace"),
            person("p-3", "new@acme.test", "Bo", "Diddley"),  # email changed: found by name
            person("p-4", "x@acme.test", None, None)]
    held = [{"uuid": "con_a", "email": "ada@acme.test", "first_name": "ada", "last_name": "LOVELACE"},
            {"uuid": "con_b", "email": None, "first_name": "Ada", "last_name": "Lovelace"},
            {"uuid": "con_c", "email": "bo@acme.test", "first_name": "Bo", "last_name": "Diddley"},
            {"uuid": "con_d", "external_id": "p-9", "email": "x@acme.test"}]  # answers another external id

    assert pair(rows, held) == {1: 0, 0: 1, 2: 2}


def test_a_held_contact_could_be_a_row_unless_an_external_id_email_or_name_tells_them_apart():
    row = person("p-1", "ada@acme.test", None, None)

    assert could_be({"uuid": "con_a", "first_name": "Old", "last_name": "Timer"}, row)  # nothing to compare
    assert not could_be({"uuid": "con_b", "email": "bo@acme.test"}, row)
    assert not could_be({"uuid": "con_c", "external_id": "p-2"}, row)
    assert not could_be({"uuid": "con_d", "first_name": "Bo"}, person("p-1", None, "Ada", None))
    assert could_be({"uuid": "con_e"}, person("p-1", None, None, None))


def test_a_copy_left_by_a_retried_create_looks_exactly_like_the_row():
    row = person("p-1", "ada@acme.test", "Ada", None)

    assert is_copy({"email": "Ada@Acme.test", "first_name": "ada", "last_name": None}, row)
    assert not is_copy({"email": "ada@acme.test", "first_name": "Ada", "last_name": "Lovelace"}, row)
    assert is_copy({"external_id": "p-1", "email": None}, row)  # an answered external id decides alone
