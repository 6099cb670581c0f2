"""Contacts against the fake in recorded shapes: on the right customers, one write per change, no duplicates.

The stream is a `people` table: two or three people per customer, with three custom
attributes of different types (Boolean, Integer, a date).
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tests.billing import CUSTOMERS, customers_messages, one_customer_uuid, raw_record
from tests.fake_chartmogul.contacts import EXTERNAL_IDS
from tests.helpers import fresh_memory, logged_writes, reads, request_log, write_calls
from tests.running import API_KEY, run_target
from tests.singer_messages import BOOLEAN, INTEGER, STRING, record, schema, state
from tests.subscription_rows import (
    PEOPLE_STREAM,
    assert_contacts_are,
    held_contacts,
    people_config,
    people_messages,
    people_rows,
    readme_recipe,
)

DELETED_AT = "2024-06-01T00:00:00Z"


def load(config: dict[str, t.Any], rows: list[dict[str, t.Any]]) -> t.Any:
    return run_target(config, [*customers_messages(), *people_messages(rows)])


def test_contacts_land_on_the_right_customers_with_their_custom_fields(fake, ds, base_config):
    rows = people_rows()

    result = load(people_config(base_config), rows)

    assert result.rejects == []
    assert_contacts_are(fake, ds, rows)
    assert result.counts(PEOPLE_STREAM)["created"] == len(rows) == 7
    assert fake.count("POST", r"^/contacts$") == 7
    first = next(r.body for r in write_calls(fake) if r.path == "/contacts" and r.body["external_id"] == "person-0-0")
    assert first["custom"] == [{"key": "champion", "value": True}, {"key": "seats_owned", "value": 10},
                               {"key": "birthday", "value": "1980-01-10T00:00:00Z"}]
    assert "linked_in" not in first  # unset fields are left out of a create


def test_a_contact_names_its_customer_by_uuid_too(fake, ds, base_config):
    run_target(base_config, customers_messages())
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    row = {**people_rows()[0], "customer_external_id": None, "customer_uuid": acct_2}
    props = {**people_messages([])[0]["schema"]["properties"], "customer_uuid": {"type": ["string", "null"]}}

    result = run_target(people_config(base_config), people_messages([row], props=props))

    assert result.rejects == []
    assert [c["customer_uuid"] for c in held_contacts(fake).values()] == [acct_2]


def test_changes_including_values_set_to_null_cost_one_write_each(fake, ds, base_config):
    config = people_config(base_config)
    rows = people_rows()
    load(config, rows)
    fake.clear_requests()
    changed = [dict(row) for row in rows]
    changed[0].update(title="CEO", phone=None)  # a field that became null is cleared
    changed[3].update(champion=None, seats_owned=11)  # so is a custom attribute
    changed[5].update(position=9, notes="Met at the conference")

    result = run_target(config, people_messages(changed))

    assert result.rejects == []
    uuids = {ext: c["uuid"] for ext, c in held_contacts(fake).items()}
    assert sorted((r.method, r.path) for r in write_calls(fake)) == sorted(
        ("PATCH", f"/contacts/{uuids[changed[i]['external_id']]}") for i in (0, 3, 5))
    patched = {r.path: r.body for r in write_calls(fake)}
    first = patched[f"/contacts/{uuids['person-0-0']}"]
    assert (first["title"], first["phone"]) == ("CEO", None)
    assert {"key": "champion", "value": None} in patched[f"/contacts/{uuids[changed[3]['external_id']]}"]["custom"]
    assert reads(fake) == reads(fake, r"^/(ping|data_sources/)")  # no lookup: the memory knew each contact
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["updated"], counts["unchanged"], counts["created"]) == (3, 4, 0)
    assert_contacts_are(fake, ds, changed)
    held = held_contacts(fake)
    assert held["person-0-0"]["phone"] is None
    assert "champion" not in held[changed[3]["external_id"]]["custom"]


def test_deleted_people_are_deleted_and_answer_200(fake, ds, base_config):
    config = people_config(base_config, delete_missing=True)
    rows = people_rows()
    load(config, rows)
    uuids = {ext: c["uuid"] for ext, c in held_contacts(fake).items()}
    fake.clear_requests()
    gone = ["person-1-1", "person-2-0"]

    result = run_target(config, [*people_messages([r for r in rows if r["external_id"] not in gone]),
                                 *(record(PEOPLE_STREAM, {"external_id": ext, "_sdc_deleted_at": DELETED_AT}) for ext in gone)])

    assert result.rejects == []
    assert sorted((r.method, r.path, r.status) for r in write_calls(fake)) == sorted(
        ("DELETE", f"/contacts/{uuids[ext]}", 200) for ext in gone)
    assert result.counts(PEOPLE_STREAM)["deleted"] == 2
    assert_contacts_are(fake, ds, [r for r in rows if r["external_id"] not in gone])


def test_matched_by_email_a_contact_is_the_same_person_only_within_its_customer(fake, ds, base_config):
    run_target(base_config, customers_messages())
    acct_1 = one_customer_uuid(fake, ds, "acct-1")
    made_in_app = fake.contacts.create({"customer_uuid": acct_1, "data_source_uuid": ds, "email": "Ops@Shared.test",
                                        "first_name": "Old"})
    rows = [{"customer_external_id": c["external_id"], "email": "ops@shared.test", "first_name": "Ops",
             "last_name": c["name"]} for c in CUSTOMERS]
    config = people_config(base_config, match_by="email", custom_attributes=[])

    result = run_target(config, people_messages(rows, key=("customer_external_id", "email")))

    assert result.rejects == []
    by_customer = {c["customer_uuid"]: c for c in fake.contacts.items.values()}
    assert len(fake.contacts.items) == len(by_customer) == 3  # one per customer: the app's contact was updated
    assert by_customer[acct_1]["uuid"] == made_in_app["uuid"]
    assert (by_customer[acct_1]["first_name"], by_customer[acct_1]["last_name"]) == ("Ops", "Acme GmbH")
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["created"], counts["updated"]) == (2, 1)
    assert [r.query for r in reads(fake, r"^/contacts$")] == [{"data_source_uuid": ds, "per_page": "200"}]
    fake.clear_requests()
    key = ("customer_external_id", "email")
    assert run_target(config, people_messages(rows, key=key)).counts(PEOPLE_STREAM)["unchanged"] == 3
    assert fake.count() == 0
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    newcomers = [{**rows[1], "email": "new@beta.test"}, {**rows[1], "email": "other@beta.test"}]

    later = run_target(config, people_messages(newcomers, key=key))

    assert later.counts(PEOPLE_STREAM)["created"] == 2
    assert [r.query for r in reads(fake, r"^/contacts$")] == [  # the memory knows the data source: that customer's, once
        {"customer_uuid": acct_2, "data_source_uuid": ds, "per_page": "200"}]


def test_bad_rows_are_rejected_naming_the_field_while_the_rows_around_them_land(fake, ds, base_config):
    rows = people_rows()
    no_customer = {**rows[0], "external_id": "no-customer", "customer_external_id": None}
    unknown_customer = {**rows[0], "external_id": "unknown-customer", "customer_external_id": "acct-404"}
    bad_position = {**rows[0], "external_id": "bad-position", "position": 0}
    sent = [*rows[:2], no_customer, *rows[2:4], unknown_customer, bad_position, *rows[4:]]

    result = load(people_config(base_config), sent)

    assert_contacts_are(fake, ds, rows)
    rejected = {r["key"]["external_id"]: (r["field"], r["reason"]) for r in result.rejects}
    assert rejected == {
        "no-customer": ("customer_external_id",
                        "field 'customer_external_id' (or 'customer_uuid') is required: a contact belongs to a customer"),
        "unknown-customer": ("customer_external_id", f'no customer with external_id "acct-404" in data source {ds}'),
        "bad-position": ("position", "field 'position' must be at least 1, got 0"),
    }
    assert (result.counts(PEOPLE_STREAM)["created"], result.counts(PEOPLE_STREAM)["rejected"]) == (7, 3)


def test_contacts_before_their_customers_land_with_one_lookup_per_missing_customer(fake, ds, base_config):
    config = {**people_config(base_config), "batch_size_rows": 2}
    run_target(config, customers_messages([{"external_id": "acct-old", "name": "Old"}]))
    fake.clear_requests()
    rows = people_rows()

    # people before accounts (tap-postgres sends streams alphabetically), drained two at a time
    result = run_target(config, [*people_messages(rows), state({"bookmarks": {"people": 1}}), *customers_messages()])

    assert result.rejects == []
    assert_contacts_are(fake, ds, rows)
    assert sorted(r.query["external_id"] for r in reads(fake, r"^/customers$")) == ["acct-1", "acct-2", "acct-3"]
    assert result.states == [{"bookmarks": {"people": 1}}]


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_rerun_without_the_memory_duplicates_nothing_and_writes_nothing(fake, ds, base_config, tmp_path, external_ids):
    # Recorded contact reads answer no external_id: they are then matched by email within the customer.
    fake.contacts.external_ids = external_ids
    config = people_config(base_config)
    rows = people_rows()
    load(config, rows)
    fake.clear_requests()

    result = run_target(fresh_memory(config, tmp_path, "lost"), people_messages(rows))

    assert write_calls(fake) == []
    assert [r.path for r in fake.requests] == ["/ping", f"/data_sources/{ds}", "/contacts", "/customers"]
    assert result.counts(PEOPLE_STREAM)["unchanged"] == 7
    assert_contacts_are(fake, ds, rows)


def test_a_custom_attribute_chartmogul_does_not_keep_is_warned_once(fake, ds, base_config, caplog):
    fake.contacts.custom_keys = {"champion"}  # the account defines only this one for contacts
    config = people_config(base_config)

    load(config, people_rows())

    warned = sorted(r.getMessage() for r in caplog.records if "did not keep" in r.getMessage())
    assert warned == [f"Stream '{PEOPLE_STREAM}': ChartMogul did not keep the contact custom attribute '{key}'; "
                      "define it for contacts in ChartMogul" for key in ("birthday", "seats_owned")]
    fake.clear_requests()
    assert run_target(config, people_messages(people_rows())).counts(PEOPLE_STREAM)["unchanged"] == 7
    assert fake.count() == 0  # remembered as written: not sent again every run


def test_a_dry_run_reports_what_it_would_write_and_writes_nothing(fake, ds, base_config):
    config = people_config(base_config, delete_missing=True)
    rows = people_rows()
    load(config, rows[:5])
    fake.clear_requests()
    changed = [{**rows[0], "title": "CEO"}, *rows[1:4], *rows[5:]]
    messages = [*people_messages(changed), record(PEOPLE_STREAM, {"external_id": rows[4]["external_id"],
                                                                  "_sdc_deleted_at": DELETED_AT})]

    dry = run_target({**config, "dry_run": True}, messages)

    assert [r for r in fake.requests if r.method != "GET"] == []
    counts = dry.counts(PEOPLE_STREAM)
    assert (counts["created"], counts["updated"], counts["deleted"], counts["unchanged"]) == (2, 1, 1, 3)
    assert_contacts_are(fake, ds, rows[:5])
    real = run_target(config, messages)
    assert {k: real.counts(PEOPLE_STREAM)[k] for k in ("created", "updated", "deleted", "unchanged")} == {
        "created": 2, "updated": 1, "deleted": 1, "unchanged": 3}


def test_the_readme_recipe_for_a_people_table_works(fake, ds, base_config):
    stream = "crm-people"
    props = {"person_id": STRING, "account_code": STRING, "job_title": STRING, "email": STRING,
             "is_champion": BOOLEAN, "seats_owned": INTEGER}
    row = {"person_id": "p-1", "account_code": "acct-2", "job_title": "CFO", "email": "cfo@beta.test",
           "is_champion": True, "seats_owned": 12}

    result = run_target({**base_config, **readme_recipe(stream)},
                        [*customers_messages(), schema(stream, props, ["person_id"]), raw_record(stream, row)])

    assert result.rejects == []
    held = held_contacts(fake)["p-1"]
    assert held["customer_uuid"] == one_customer_uuid(fake, ds, "acct-2")
    assert (held["title"], held["email"], held["custom"]) == ("CFO", "cfo@beta.test", {"is_champion": True,
                                                                                         "seats_owned": 12})


def test_people_absent_from_a_complete_full_table_version_are_deleted(fake, ds, base_config):
    config = people_config(base_config, delete_missing=True, max_delete_fraction=0.5)
    rows = people_rows()

    def version(n: int, kept: list[dict[str, t.Any]]) -> list[t.Any]:
        head, *records = people_messages(kept)
        activate = {"type": "ACTIVATE_VERSION", "stream": PEOPLE_STREAM, "version": n}
        return [head, activate, *({**json.loads(m), "version": n} for m in records), activate]

    run_target(config, [*customers_messages(), *version(1, rows)])
    uuids = {ext: c["uuid"] for ext, c in held_contacts(fake).items()}
    fake.clear_requests()

    result = run_target(config, version(2, rows[2:]))

    assert sorted(r.path for r in write_calls(fake)) == sorted(f"/contacts/{uuids[r['external_id']]}" for r in rows[:2])
    assert result.counts(PEOPLE_STREAM)["deleted"] == 2
    assert_contacts_are(fake, ds, rows[2:])


# A lost sync memory (issue 12): recorded contact reads carry no external_id --------------------------------


def lost_memory_run(fake: t.Any, config: dict[str, t.Any], tmp_path: t.Any, external_ids: str,
                    rows: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Load `rows` with a memory, then clear the fake's log: the returned config has an empty memory."""
    fake.contacts.external_ids = external_ids
    load(config, rows)
    fake.clear_requests()
    return fresh_memory(config, tmp_path, "lost")


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_lost_memory_deletes_a_deleted_person_found_by_email_and_warns_of_one_it_cannot_find(
        fake, ds, base_config, tmp_path, caplog, external_ids):
    rows = people_rows()
    config = people_config(base_config, delete_missing=True)
    lost = lost_memory_run(fake, config, tmp_path, external_ids, rows)
    uuids = {ext: c["uuid"] for ext, c in held_contacts(fake).items()}
    full, bare = rows[3], rows[5]  # a deleted row with all its columns (REPLICA IDENTITY FULL), one with its key only
    kept = [r for r in rows if r not in (full, bare)]

    result = run_target(lost, [*people_messages(kept), record(PEOPLE_STREAM, {**full, "_sdc_deleted_at": DELETED_AT}),
                               record(PEOPLE_STREAM, {"external_id": bare["external_id"], "_sdc_deleted_at": DELETED_AT})])

    findable = [full] if external_ids != "answered" else [full, bare]  # only answered ids find a key-only row
    assert sorted((r.method, r.path) for r in fake.requests) == sorted([
        ("GET", "/ping"), ("GET", f"/data_sources/{ds}"), ("GET", "/contacts"), ("GET", "/customers"),
        *(("DELETE", f"/contacts/{uuids[r['external_id']]}") for r in findable)])
    counts = result.counts(PEOPLE_STREAM)
    assert {k: counts[k] for k in ("deleted", "skipped", "unchanged", "created", "updated")} == {
        "deleted": len(findable), "skipped": 2 - len(findable), "unchanged": 5, "created": 0, "updated": 0}
    assert_contacts_are(fake, ds, [r for r in rows if r not in findable])
    warned = [r.getMessage() for r in caplog.records if "was not deleted" in r.getMessage()]
    assert warned == ([] if external_ids == "answered" else [
        f"Stream '{PEOPLE_STREAM}': contact external_id '{bare['external_id']}' (data source {ds}) deleted in the source "
        "was not deleted in ChartMogul: no contact ChartMogul holds matches it by external id, email or full name "
        "(ChartMogul's contact reads carry no external id; a deleted row carrying only its key cannot be matched)"])
    fake.clear_requests()
    assert run_target(lost, people_messages(kept)).counts(PEOPLE_STREAM)["unchanged"] == 5
    assert fake.count() == 0  # every match was remembered


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_lost_memory_recognises_people_without_an_email_by_their_name(fake, ds, base_config, tmp_path, external_ids):
    rows = [{**row, "email": None} for row in people_rows()]
    config = people_config(base_config)
    lost = lost_memory_run(fake, config, tmp_path, external_ids, rows)

    result = run_target(lost, people_messages(rows))

    assert write_calls(fake) == []
    assert [r.path for r in fake.requests] == ["/ping", f"/data_sources/{ds}", "/contacts", "/customers"]
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (0, 0, 7)
    assert len(fake.contacts.items) == 7
    assert_contacts_are(fake, ds, rows)
    fake.clear_requests()
    assert run_target(lost, people_messages(rows)).counts(PEOPLE_STREAM)["unchanged"] == 7
    assert fake.count() == 0  # every match was remembered


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_lost_memory_updates_a_person_whose_email_changed_instead_of_doubling_them(
        fake, ds, base_config, tmp_path, external_ids):
    rows = people_rows()
    config = people_config(base_config)
    lost = lost_memory_run(fake, config, tmp_path, external_ids, rows)
    uuids = {ext: c["uuid"] for ext, c in held_contacts(fake).items()}
    changed = [dict(row) for row in rows]
    changed[2]["email"] = "Renamed@Acct-2.test"

    result = run_target(lost, people_messages(changed))

    assert [(r.method, r.path, r.body) for r in write_calls(fake)] == [
        ("PATCH", f"/contacts/{uuids[changed[2]['external_id']]}", {"email": "Renamed@Acct-2.test"})]
    assert len(reads(fake)) == 4  # ping, data source, one page of contacts, one of customers
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (0, 1, 6)
    assert len(fake.contacts.items) == 7
    assert_contacts_are(fake, ds, changed)


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_lost_memory_creates_a_new_person_only_when_no_held_contact_could_be_them(
        fake, ds, base_config, tmp_path, external_ids):
    rows = people_rows()
    config = people_config(base_config)
    lost = lost_memory_run(fake, config, tmp_path, external_ids, rows)
    acct_1 = one_customer_uuid(fake, ds, "acct-1")
    stray = fake.contacts.create({"customer_uuid": acct_1, "data_source_uuid": ds, "first_name": "Old",
                                  "last_name": "Timer"})  # made in the app: no external id, no email
    nameless = {**rows[0], "external_id": "person-nameless", "first_name": None, "last_name": None, "email": None}
    newcomer = {**rows[0], "external_id": "person-new", "first_name": "New", "last_name": "Person",
                "email": "new@acct-1.test"}

    result = run_target(lost, people_messages([*rows, nameless, newcomer]))

    assert [(r.method, r.path, r.body["external_id"]) for r in write_calls(fake)] == [
        ("POST", "/contacts", "person-new")]  # the stray could be the nameless person: not created
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["created"], counts["unchanged"], counts["rejected"]) == (1, 7, 1)
    assert [(r["key"], r["field"]) for r in result.rejects] == [({"external_id": "person-nameless"}, "email")]
    assert stray["uuid"] in result.rejects[0]["reason"]
    assert sorted(c["external_id"] or "" for c in fake.contacts.items.values()) == sorted(
        ["", *(r["external_id"] for r in rows), "person-new"])
    fake.clear_requests()

    again = run_target(lost, people_messages([*rows, nameless, newcomer]))  # the memory now knows the data source

    assert write_calls(fake) == []  # still not created: it was remembered as unresolved, so its customer is read
    assert [(r.path, r.query) for r in reads(fake, r"^/contacts")] == [
        ("/contacts", {"customer_uuid": acct_1, "data_source_uuid": ds, "per_page": "200"})]
    assert (again.counts(PEOPLE_STREAM)["rejected"], again.counts(PEOPLE_STREAM)["unchanged"]) == (1, 8)
    fake.clear_requests()

    named = run_target(lost, people_messages([{**nameless, "first_name": "Night", "last_name": "Owl"}]))

    assert [(r.method, r.path) for r in write_calls(fake)] == [("POST", "/contacts")]
    assert named.counts(PEOPLE_STREAM)["created"] == 1
    assert len(fake.contacts.items) == 7 + 3


@pytest.mark.parametrize("external_ids", EXTERNAL_IDS)
def test_a_lost_memory_leaves_people_absent_from_a_full_table_version_it_never_knew(
        fake, ds, base_config, tmp_path, external_ids):
    rows = people_rows()
    config = people_config(base_config, delete_missing=True)
    lost = lost_memory_run(fake, config, tmp_path, external_ids, rows)

    def version(n: int) -> list[t.Any]:
        head, *records = people_messages(rows[2:])
        activate = {"type": "ACTIVATE_VERSION", "stream": PEOPLE_STREAM, "version": n}
        return [head, activate, *({**json.loads(m), "version": n} for m in records), activate]

    result = run_target(lost, version(2))

    assert write_calls(fake) == []  # nothing ties the two missing contacts to this stream any more
    counts = result.counts(PEOPLE_STREAM)
    assert (counts["unchanged"], counts["deleted"], counts["skipped"]) == (5, 0, 0)
    assert_contacts_are(fake, ds, rows)
    fake.clear_requests()

    again = run_target(lost, version(3))

    assert fake.count() == 0 and again.counts(PEOPLE_STREAM)["unchanged"] == 5  # the matches were remembered


def test_a_contact_refused_for_a_missing_customer_lands_when_a_later_run_brings_the_customer(fake, ds, base_config):
    rows = people_rows()
    late = {**rows[0], "external_id": "late-person", "customer_external_id": "acct-late", "email": "late@late.test"}
    first = load(people_config(base_config), [*rows, late])
    assert [(r["key"], r["field"]) for r in first.rejects] == [({"external_id": "late-person"}, "customer_external_id")]

    # the next run brings the customer only: the people stream does not come again, its remembered reject is retried
    second = run_target(people_config(base_config), customers_messages([{"external_id": "acct-late", "name": "Late"}]))

    assert len(second.rejects) == len(first.rejects)  # the file keeps the first run's line; none added
    counts = second.counts(PEOPLE_STREAM)
    assert (counts["retried"], counts["created"], counts["retry_refused"]) == (1, 1, 0)
    assert_contacts_are(fake, ds, [*rows, late])
    third = run_target(people_config(base_config), customers_messages([{"external_id": "acct-late", "name": "Late"}]))
    assert third.counts(PEOPLE_STREAM) == {}  # landed: nothing left to retry


def test_the_request_log_shows_each_contact_write_with_its_body_and_never_the_key(fake, ds, base_config, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    config = {**people_config(base_config), "request_log": str(log_path)}
    rows = people_rows()
    load(config, rows)
    rows[1] = {**rows[1], "title": "CTO"}

    run_target(config, people_messages(rows))  # the second run appends to the same log

    entries = request_log(log_path, API_KEY)
    assert len(entries) == len(fake.requests)  # one line per request of both runs
    creates = logged_writes(entries, "POST", "contacts")
    assert sorted((status, body["external_id"]) for status, body in creates) == sorted(
        (201, row["external_id"]) for row in rows)
    uuid = held_contacts(fake)[rows[1]["external_id"]]["uuid"]
    assert [(status, body["external_id"], body["title"]) for status, body in logged_writes(
        entries, "PATCH", f"contacts/{uuid}")] == [(200, rows[1]["external_id"], "CTO")]
