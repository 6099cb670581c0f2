"""Verifying an import costs the fewer reads of two ways: listing the data source (one read per 200 objects it holds)
or looking up each imported object by its external id. A few new rows into a data source the memory knows to be large
are looked up; a first load is listed. Either way, what landed is what ChartMogul shows.
"""

from __future__ import annotations

import logging
import typing as t

import pytest

from tests import backfill
from tests.billing import CUSTOMERS_STREAM, INVOICES_STREAM
from tests.fake_chartmogul import FakeChartMogul
from tests.helpers import write_calls
from tests.running import run_target
from tests.singer_messages import INTEGER, customers_stream

LOADED = 1000  # five listing pages


def customer_reads(fake: FakeChartMogul) -> list[str | None]:
    """The external id each GET /customers asked for (None: a listing page of the whole data source)."""
    return [r.query.get("external_id") for r in fake.requests if r.method == "GET" and r.path == "/customers"]


@pytest.fixture
def loaded(fake: FakeChartMogul, ds: str, base_config: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[t.Any]]:
    """A data source holding 1,000 customers loaded in bulk (verified by listing: the memory held none)."""
    rows = backfill.backfill(LOADED + 7, invoices_each=0).customers
    config = backfill.config(base_config, bulk_import="always")
    run_target(config, customers_stream(CUSTOMERS_STREAM, rows[:LOADED], {"seats": INTEGER}))
    # The first load: the empty data source listed once (the memory held nothing), the attributes probe's customer
    # read back, then the listing of the 1,000 imported, page by page.
    assert customer_reads(fake) == [None, rows[0]["external_id"]] + [None] * (LOADED // 200)
    return config, rows


@pytest.mark.parametrize(("new", "lookups"), [(3, True), (5, True), (6, False), (7, False)])
def test_new_rows_into_a_large_data_source_are_checked_the_cheaper_way(fake, ds, loaded, new, lookups, caplog):
    """1,000 held + n new: the listing is ceil((1000 + n) / 200) = 6 pages, so 3 or 5 new customers are looked up
    (3 or 5 reads) and 6 or 7 are checked by the 6 pages of the listing; every one lands either way, and a rerun of
    the same input writes nothing."""
    config, rows = loaded
    stream = customers_stream(CUSTOMERS_STREAM, rows[:LOADED + new], {"seats": INTEGER})
    fake.clear_requests()
    caplog.set_level(logging.INFO)

    result = run_target(config, stream)

    added = [row["external_id"] for row in rows[LOADED:LOADED + new]]
    assert sorted(customer_reads(fake), key=str) == (sorted(added) if lookups else [None] * 6)
    assert [len(body["customers"]) for body in fake.json_imports.submitted][-1] == new
    assert result.rejects == []
    assert result.counts(CUSTOMERS_STREAM)["imported"] == new
    assert result.counts(CUSTOMERS_STREAM)["unchanged"] == LOADED
    assert ("fewer reads than listing" in caplog.text) is lookups
    with fake.lock:
        assert len(fake.customers) == LOADED + new
    for row in rows[LOADED:LOADED + new]:
        [held] = fake.find_customers(ds, row["external_id"])
        assert (held["name"], held["email"]) == (row["name"], row["email"])

    fake.clear_requests()
    run_target(config, stream)
    assert write_calls(fake) == []
    assert customer_reads(fake) == []


@pytest.mark.parametrize("validation", ["sync", "async"])
def test_an_import_the_lookups_do_not_find_goes_through_rest(fake, ds, loaded, validation, caplog):
    """Reported imported yet not stored (validation after the import): the lookup does not find it, so it is written
    through REST in the same run; the other two land from the import."""
    config, rows = loaded
    added = [row["external_id"] for row in rows[LOADED:LOADED + 3]]
    fake.json_imports.unstored = {added[1]}
    fake.json_imports.validation = validation
    fake.clear_requests()

    result = run_target(config, customers_stream(CUSTOMERS_STREAM, rows[:LOADED + 3], {"seats": INTEGER}))

    assert sorted(customer_reads(fake), key=str) == added
    assert [r.body["external_id"] for r in write_calls(fake) if r.path == "/customers"] == [added[1]]
    assert result.rejects == []
    assert (result.counts(CUSTOMERS_STREAM)["imported"], result.counts(CUSTOMERS_STREAM)["created"]) == (2, 1)
    with fake.lock:
        assert len(fake.customers) == LOADED + 3
    assert "not in ChartMogul's listings" in caplog.text


@pytest.mark.parametrize(("listing_order", "pages"), [("recorded", 1), ("created", 1)])
def test_new_invoices_into_a_large_data_source_are_looked_up_with_their_lines_and_payments(fake, ds, base_config,
                                                                                           listing_order, pages):
    """1,200 invoices held, one new customer with 3 invoices: 1 customer lookup instead of listing 3 pages; the
    invoices are at the head of ChartMogul's newest-first listing, so 1 page shows them instead of 7; where the
    listing is oldest first, that page shows it is, and the 3 are looked up. Each invoice counts as landed only with
    the lines and payments it carried."""
    fake.listing_order = listing_order
    data = backfill.backfill(401, invoices_each=3)
    first = backfill.Backfill(data.customers[:400], [i for i in data.invoices if i["account_code"] != "c-00400"],
                              [], [])
    config = backfill.config(base_config, bulk_import="always")
    run_target(config, backfill.messages(first))
    new = [i["external_id"] for i in data.invoices if i["account_code"] == "c-00400"]
    assert len(new) == 3
    fake.clear_requests()

    result = run_target(config, backfill.messages(backfill.Backfill(data.customers, data.invoices, [], [])))

    invoice_reads = [r.query.get("external_id") for r in fake.requests if r.method == "GET" and r.path == "/invoices"]
    looked_up = [] if listing_order == "recorded" else sorted(new)
    assert (invoice_reads[:pages], sorted(invoice_reads[pages:])) == ([None] * pages, looked_up)
    assert customer_reads(fake) == ["c-00400"]
    assert result.rejects == []
    assert result.counts(INVOICES_STREAM)["imported"] == 3
    backfill.assert_landed(fake, ds, backfill.Backfill(data.customers, data.invoices, [], []))
    fake.clear_requests()
    run_target(config, backfill.messages(backfill.Backfill(data.customers, data.invoices, [], [])))
    assert write_calls(fake) == []
