"""The bulk import under every behaviour ChartMogul's reference leaves open: the target ends exact under each.

Each fake switch (tests/fake_chartmogul/json_imports.py) plays one plausible behaviour: polls answered by external
id only, by id only, or neither; objects reported imported but never stored; a bulk body's customer attributes kept,
ignored or refused; the 5,000,000-byte limit; a lost answer to `POST json_imports`. Each scenario runs through the
bulk lane and the REST lane (tests/lanes.py) and must leave ChartMogul the same, with no reject, and cost exactly the
requests the switch makes necessary.
"""

from __future__ import annotations

import re
import typing as t

import pytest

from tests import first_load
from tests.fake_chartmogul import FakeChartMogul, Fault
from tests.lanes import Run, assert_same_in_both_lanes, differences, json_import_switches, rest_writes_per_customer, run_lane

BULK = re.compile(r"^/data_sources/[^/]+/json_imports$")
POLL = re.compile(r"^/data_sources/[^/]+/json_imports/(?P<key>[^/]+)$")
CUSTOMERS = 12


def scenario() -> Run:
    """12 customers with every field, attributes of every type and tags; invoices with lines and payments; plans
    last (tap-postgres order)."""
    return first_load.nested_invoices_scenario(CUSTOMERS)


def polls(fake: FakeChartMogul) -> list[tuple[str, int]]:
    """(identifier asked, status answered) of each poll, in order."""
    return [(found["key"], r.status) for r in fake.requests if r.method == "GET" and (found := POLL.match(r.path))]


def writes(fake: FakeChartMogul, path: str) -> list[t.Any]:
    return [r for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE") and re.search(path, r.path)]


def rest_imported(fake: FakeChartMogul) -> list[str]:
    """Invoices imported through REST, by external id."""
    return sorted(inv["external_id"] for r in writes(fake, r"^/import/customers/[^/]+/invoices$") for inv in r.body["invoices"])


def with_status() -> list[str]:
    """Invoices the scenario voids or writes off: they go through REST (a bulk body cannot set a status)."""
    rows = [first_load.account_row(i) for i in range(CUSTOMERS)]
    return sorted(inv["external_id"] for inv in first_load.nested_invoices(first_load.ids(rows))
                  if inv["status"] in ("voided", "written_off"))


@pytest.mark.parametrize("poll_by", ["external_id", "id", "both"])
def test_imports_are_polled_by_external_id_and_by_id_where_only_that_works(poll_by, tmp_path):
    lanes = assert_same_in_both_lanes(scenario, tmp_path, configure=json_import_switches(poll_by=poll_by))

    fake = lanes.bulk.fake
    external_ids = [body["external_id"] for body in fake.json_imports.submitted]
    ids = list(fake.json_imports.imports)
    assert len(external_ids) == 2  # one customer with attributes first (are they kept?), then the others
    asked = polls(fake)
    if poll_by == "id":  # the reference's way once (404), then ChartMogul's id, learnt for every later poll
        assert asked[:2] == [(external_ids[0], 404), (ids[0], 200)]
        assert all((key in ids, status) == (True, 200) for key, status in asked[2:])
    else:  # as the reference polls: by the external id the import was sent with, never by id
        assert asked and all((key in external_ids, status) == (True, 200) for key, status in asked)
    # nothing went through REST but the invoices it voids or writes off: bulk speed whichever identifier works
    assert writes(fake, r"^/customers") == []
    assert rest_imported(fake) == with_status()
    assert fake.json_imports.violations == []


def test_imports_chartmogul_no_longer_knows_are_verified_through_its_listings(tmp_path):
    lanes = assert_same_in_both_lanes(scenario, tmp_path, configure=json_import_switches(forget_imports=True))

    fake = lanes.bulk.fake
    assert {status for _, status in polls(fake)} == {404}  # never answered: "unknown", never taken as completed
    # the listings show everything the imports carried: nothing is written again, and the first import still told
    # that ChartMogul keeps a bulk body's attributes (the customer it carried is listed with them)
    assert writes(fake, r"^/customers") == []
    assert rest_imported(fake) == with_status()
    assert [len(body["customers"]) for body in fake.json_imports.submitted] == [1, CUSTOMERS - 1]
    counts = lanes.bulk.results[0].counts(first_load.ACCOUNTS)
    assert (counts["imported"], counts["created"]) == (CUSTOMERS, 0)


@pytest.mark.parametrize("listing_order", ["recorded", "created"])
@pytest.mark.parametrize("validation", ["sync", "async"])
def test_objects_reported_imported_but_never_stored_go_through_rest_in_the_same_run(validation, listing_order,
                                                                                   tmp_path):
    lost = {"acct-0003", "inv-5", "inv-12"}  # a customer (with its invoices), and two invoices of other customers

    def configure(fake: FakeChartMogul) -> None:
        fake.listing_order = listing_order
        json_import_switches(unstored=set(lost), validation=validation)(fake)

    lanes = assert_same_in_both_lanes(scenario, tmp_path, configure=configure)

    fake = lanes.bulk.fake
    created = sorted(r.body["external_id"] for r in writes(fake, r"^/customers$"))
    theirs = ["inv-7", "inv-8"]  # acct-0003's
    assert created == ["acct-0003"]
    assert rest_imported(fake) == sorted({"inv-5", "inv-12", *theirs, *with_status()})
    counts = lanes.bulk.results[0].counts(first_load.ACCOUNTS)
    assert (counts["imported"], counts["created"]) == (CUSTOMERS - 1, 1)


def test_an_invalid_object_the_import_took_is_refused_with_chartmogul_s_own_reason_as_rest_refuses_it(tmp_path):
    def with_a_line_id_used_twice() -> Run:
        rows = [first_load.account_row(i) for i in range(CUSTOMERS)]
        invoices = first_load.nested_invoices(first_load.ids(rows))
        inv_4 = next(invoice for invoice in invoices if invoice["external_id"] == "inv-4")
        assert inv_4["line_items"][0]["external_id"] == "li-4-1"
        inv_4["line_items"][0]["external_id"] = "li-3-1"  # inv-3's first line's: ChartMogul refuses inv-4
        return Run([*first_load.accounts_messages(rows), *first_load.nested_messages(invoices),
                    *first_load.plans_messages()], scenario().config)

    switches = json_import_switches(validation="async")  # the import reports it imported; it is not there
    bulk = run_lane(with_a_line_id_used_twice, "always", tmp_path / "bulk", "ds_same", switches)
    rest = run_lane(with_a_line_id_used_twice, "never", tmp_path / "rest", "ds_same", switches)

    assert differences(bulk.snapshot, rest.snapshot) == []
    assert "inv-4" not in bulk.snapshot["invoices"] and "inv-3" in bulk.snapshot["invoices"]
    refused = [(r["stream"], r["key"], r["reason"]) for r in bulk.first_rejects()]
    assert refused == [(r["stream"], r["key"], r["reason"]) for r in rest.first_rejects()]
    [(stream, key, reason)] = refused
    assert (stream, key) == (first_load.NESTED, {"external_id": "inv-4"})
    assert "already exists" in reason, reason


@pytest.mark.parametrize("attributes", ["kept", "ignored", "refused"])
def test_attributes_ride_at_bulk_speed_where_kept_and_cost_one_rest_create_where_not(attributes, tmp_path):
    lanes = assert_same_in_both_lanes(first_load.first_load_scenario, tmp_path,
                                      configure=json_import_switches(bulk_attributes=attributes))

    fake = lanes.bulk.fake
    customers = len(lanes.bulk.snapshot["customers"])
    per_customer = rest_writes_per_customer(lanes.bulk)
    first = fake.json_imports.submitted[0]["customers"]
    assert len(first) == 1 and "attributes" in first[0]  # one customer with attributes tells what ChartMogul does
    probe = first[0]["external_id"]
    if attributes == "kept":  # every customer carries them in its bulk body: no REST write at all
        assert per_customer == {}
        assert all("attributes" in c for body in fake.json_imports.submitted for c in body["customers"]
                   if c["external_id"] in with_attributes(lanes))
    else:  # the first gets them by REST (custom and tags: 2 writes); each other customer with them: one create
        assert per_customer.pop(probe) == (2 if attributes == "ignored" else 1)
        assert set(per_customer.values()) == {1}
        assert sorted(per_customer) == sorted(set(with_attributes(lanes)) - {probe})
        assert not any("attributes" in c for body in fake.json_imports.submitted[1:] for c in body["customers"])
    assert sum(rest_writes_per_customer(lanes.bulk).values()) <= 1.1 * customers


def with_attributes(lanes: t.Any) -> list[str]:
    """Customers that have custom attributes or tags (as ChartMogul holds them)."""
    return [ext for ext, c in lanes.rest.snapshot["customers"].items() if c["custom"] or c["tags"]]


def test_japanese_text_every_request_within_5_000_000_bytes_and_exact(tmp_path):
    def long_japanese_descriptions() -> Run:
        rows = [first_load.account_row(i) for i in range(60)]
        invoices = first_load.nested_invoices(first_load.ids(rows), each=4)
        for n, invoice in enumerate(invoices):  # 6,000 characters, 18,000 bytes per line description
            for line in invoice["line_items"]:
                line["description"] = (f"請求明細{n}・" + "月額利用料金・標準プラン・" * 500)[:6000]
        return Run([*first_load.accounts_messages(rows), *first_load.nested_messages(invoices),
                    *first_load.plans_messages()], {"streams": {**first_load.accounts_config(),
                                                                 **first_load.nested_config()}})

    lanes = assert_same_in_both_lanes(long_japanese_descriptions, tmp_path)

    sizes = [r.size for r in lanes.bulk.requests if r.method == "POST" and BULK.match(r.path)]
    assert all(size <= 5_000_000 for size in sizes), sizes
    assert max(sizes) > 4_000_000  # the limit is used: counted in bytes, a request is not a third full
    assert len(sizes) == 3 and sum(sizes) > 9_000_000  # the probe, then two near the limit; none refused
    assert {r.status for r in lanes.bulk.requests if r.method == "POST" and BULK.match(r.path)} == {200}


@pytest.mark.parametrize("duplicates", ["refuse", "accept"])
@pytest.mark.parametrize("kind", ["drop_after", "error_after"])
def test_a_lost_answer_to_post_json_imports_is_looked_up_never_sent_twice(duplicates, kind, tmp_path):
    def configure(fake: FakeChartMogul) -> None:
        fake.json_imports.duplicate_external_id = duplicates
        fake.inject(Fault(kind, method="POST", path_regex=BULK.pattern, times=1, status=502))

    lanes = assert_same_in_both_lanes(scenario, tmp_path, configure=configure)

    fake = lanes.bulk.fake
    posted = [r for r in fake.requests if r.method == "POST" and BULK.match(r.path)]
    assert len(posted) == len(fake.json_imports.submitted) == 2  # the first taken, its answer lost: not sent again
    first = fake.json_imports.submitted[0]["external_id"]
    assert polls(fake)[0] == (first, 200)  # looked up by its external id at once
    assert fake.json_imports.violations == []
    assert writes(fake, r"^/customers") == []
    assert rest_imported(fake) == with_status()


def test_a_record_mapped_while_the_attributes_probe_is_processing_is_refused_once(tmp_path):
    """The first customers' invoices are mapped while the probe import is processing (bulk/lane.py `_prepare`): an
    invoice refused by the mapping there is refused once, with its reason, as the REST lane refuses it."""
    def with_an_invoice_without_lines() -> Run:
        rows = [first_load.account_row(i) for i in range(CUSTOMERS)]
        invoices = first_load.nested_invoices(first_load.ids(rows))
        inv_3 = next(invoice for invoice in invoices if invoice["external_id"] == "inv-3")
        inv_3["line_items"] = []
        return Run([*first_load.accounts_messages(rows), *first_load.nested_messages(invoices),
                    *first_load.plans_messages()], scenario().config)

    bulk = run_lane(with_an_invoice_without_lines, "always", tmp_path / "bulk", "ds_same", None)
    rest = run_lane(with_an_invoice_without_lines, "never", tmp_path / "rest", "ds_same", None)

    assert differences(bulk.snapshot, rest.snapshot) == []
    assert [len(body["customers"]) for body in bulk.fake.json_imports.submitted] == [1, CUSTOMERS - 1]  # a probe
    refused = [(r["record"]["external_id"], r["reason"]) for r in bulk.results[0].rejects]
    assert refused == [("inv-3", "field 'line_items' must hold at least one line item")]
    assert refused == [(r["record"]["external_id"], r["reason"]) for r in rest.results[0].rejects]
