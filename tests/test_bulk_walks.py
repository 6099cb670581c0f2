"""Walks of ChartMogul's newest-first listings while imports are processing (target_chartmogul/bulk/walks.py).

`walk` is tested on a listing held in memory, counting the objects it asked for (so the page it never asked for is
seen never to be asked for); `Walks` against the fake over HTTP, with invoices created in the fake as imports would
create them, one import after another, under each `listing_order` the fake plays: newest first (recorded) and oldest
first. Every count is exact: the pages a walk reads, and the GET /invoices requests the fake saw.
"""

from __future__ import annotations

import threading
import typing as t

import pytest

from target_chartmogul.api.client import ChartMogulClient
from target_chartmogul.bulk.entries import Entry
from target_chartmogul.bulk.walks import BUDGET, END, ORDER, PAGE, SEEN, Ended, Walks, walk
from tests.clocks import InstantClock
from tests.running import API_KEY

Obj = dict[str, t.Any]
DS = "ds_walked"


class Listing:
    """A listing held in memory: objects handed out one by one, counted."""

    def __init__(self, ids: list[str]) -> None:
        self.objects = [{"uuid": f"inv_{one}", "external_id": one} for one in ids]
        self.asked = 0

    def __iter__(self) -> t.Iterator[Obj]:
        for obj in self.objects:
            self.asked += 1
            yield obj


def walked(ids: list[str], wanted: set[str], *, budget: int = 100, heads: t.Callable[[list[str]], bool] | None = None,
           adopt: t.Callable[[set[str]], set[str]] | None = None, stop: threading.Event | None = None,
           ) -> tuple[Ended, list[list[str]], int]:
    """(how the walk ended, the pages it put, objects it asked the listing for)."""
    source = Listing(ids)
    out: list[list[Obj]] = []
    ended = walk(iter(source), DS, wanted, heads or (lambda found: True), budget, out.append,
                 stop or threading.Event(), lambda found: None, *([adopt] if adopt else []))
    return ended, [[obj["external_id"] for obj in page] for page in out], source.asked


def numbered(count: int, prefix: str = "inv") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def test_a_walk_stops_at_the_end_of_the_page_where_it_saw_the_last_it_waits_for():
    ids = numbered(1000)
    ended, pages, asked = walked(ids, {ids[5], ids[201], ids[399]})
    assert ended == Ended(SEEN, 2)
    assert [len(page) for page in pages] == [PAGE, PAGE]
    assert asked == 2 * PAGE  # the third page is never asked for


def test_a_walk_whose_first_object_cannot_head_a_newest_first_listing_reads_one_page_only():
    ids = numbered(1000)
    ended, pages, asked = walked(ids, {ids[900]}, heads=lambda found: found != [ids[0]])
    assert ended == Ended(ORDER, 1)
    assert pages == [ids[:PAGE]]  # the page read is matched all the same
    assert asked == PAGE


def test_a_walk_that_does_not_see_what_it_waits_for_stops_after_its_budget_or_at_the_end():
    ids = numbered(1000)
    assert walked(ids, {"inv-absent"}, budget=3)[0] == Ended(BUDGET, 3)
    ended, pages, asked = walked(ids[:250], {"inv-absent"})
    assert (ended, [len(page) for page in pages], asked) == (Ended(END, 2), [PAGE, 50], 250)
    assert walked(ids[:250], {ids[240]})[0] == Ended(SEEN, 2)  # seen on the last, partial page


def test_a_walk_waits_too_for_what_its_first_page_adopts():
    ids = numbered(1000)
    told: list[set[str]] = []

    def adopt(head: set[str]) -> set[str]:
        told.append(head)
        return {ids[650], ids[3]}  # ids[3] was on the first page: nothing to wait for there

    ended, _, asked = walked(ids, {ids[10]}, adopt=adopt)
    assert told == [set(ids[:PAGE])]
    assert (ended, asked) == (Ended(SEEN, 4), 4 * PAGE)


def test_a_walk_told_to_stop_ends_after_the_page_it_is_reading():
    stop = threading.Event()
    stop.set()
    ended, pages, asked = walked(numbered(1000), {"inv-absent"}, stop=stop)
    assert (ended.pages, len(pages), asked) == (1, 1, PAGE)


# Walks against the fake, imports landing one after another ------------------------------------------------------
class Imports:
    """Invoices created in the fake the way a bulk import creates them: one import after another, each a customer."""

    def __init__(self, fake: t.Any, ds: str, sizes: list[int]) -> None:
        self.fake, self.ds = fake, ds
        self.entries: list[list[Entry]] = []
        for number, size in enumerate(sizes, start=1):
            ids = numbered(size, f"imp{number}")
            self.entries.append([Entry("invoices", f"c{number}", {}, {}, "", objects=[("invoices", one)])
                                 for one in ids])

    def land(self, number: int) -> None:
        customer = self.fake.store.create_customer({"data_source_uuid": self.ds, "external_id": f"c{number}"})
        invoices = [{"external_id": entry.objects[0][1], "date": "2025-01-01", "currency": "EUR",
                     "line_items": [{"type": "one_time", "amount_in_cents": 100}]} for entry in self.entries[number - 1]]
        status, _ = self.fake.store.import_invoices(customer["uuid"], invoices)
        assert status == 201


def listed(walks: Walks) -> set[str]:
    """The external ids of every page the walks read, once they all ended."""
    return {obj["external_id"] for _, _, page in walks.pages(wait=True) for obj in page}


def invoice_pages(fake: t.Any) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path == "/invoices")


@pytest.fixture
def walks(fake):
    found = Walks(ChartMogulClient(fake.url, API_KEY, max_retries=2, backoff_base=0.01, clock=InstantClock()),
                  lambda ds, kind: 0)
    yield found
    found.close()


def test_a_walk_per_finished_import_reads_its_pages_and_those_of_imports_stored_after_it(fake, ds, walks):
    imports = Imports(fake, ds, [300, 500, 300])
    for entries in imports.entries:
        walks.sending(ds, entries)
    imports.land(1)
    walks.finished(ds, imports.entries[0])
    assert listed(walks) == {entry.objects[0][1] for entry in imports.entries[0]}
    assert invoice_pages(fake) == 2  # 300 invoices: 2 pages, then it stops

    fake.clear_requests()
    imports.land(2)
    imports.land(3)  # stored before import 2 is seen to have finished: it heads the listing, the walk adopts it
    walks.finished(ds, imports.entries[1])
    assert listed(walks) == {entry.objects[0][1] for entry in imports.entries[1] + imports.entries[2]}
    assert invoice_pages(fake) == 4  # 800 invoices above import 1's: 4 pages
    fake.clear_requests()
    walks.finished(ds, imports.entries[2])  # adopted: no walk of its own
    assert listed(walks) == set()
    assert (invoice_pages(fake), walks.pages_read, walks.not_newest_first()) == (0, 6, [])


def test_an_import_seen_to_finish_means_those_sent_before_it_did(fake, ds, walks):
    imports = Imports(fake, ds, [200, 200])
    for entries in imports.entries:
        walks.sending(ds, entries)
    imports.land(1)
    imports.land(2)
    walks.finished(ds, imports.entries[1])  # its poll came first: one walk for both
    assert len(listed(walks)) == 400
    walks.finished(ds, imports.entries[0])
    assert listed(walks) == set()
    assert invoice_pages(fake) == 2


def test_an_oldest_first_listing_gets_no_further_walk_once_a_walk_shows_it(fake, ds, walks):
    fake.listing_order = "created"
    imports = Imports(fake, ds, [300, 300, 300])
    for entries in imports.entries:
        walks.sending(ds, entries)
    imports.land(1)
    walks.finished(ds, imports.entries[0])
    assert len(listed(walks)) == 300  # its own import is the oldest: seen in 2 pages
    imports.land(2)
    walks.finished(ds, imports.entries[1])
    assert listed(walks) == {entry.objects[0][1] for entry in imports.entries[0][:PAGE]}  # import 1's head: stop
    imports.land(3)
    walks.finished(ds, imports.entries[2])
    assert listed(walks) == set()
    assert (invoice_pages(fake), walks.not_newest_first()) == (3, [(ds, "invoices")])


def test_a_walk_that_misses_what_it_waits_for_stops_the_walks_of_its_listing(fake, ds, walks):
    imports = Imports(fake, ds, [300, 300])
    lost = Entry("invoices", "c1", {}, {}, "", objects=[("invoices", "never-stored")])
    walks.sending(ds, [*imports.entries[0], lost])  # reported imported, not stored: the listing ends without it
    walks.sending(ds, imports.entries[1])
    imports.land(1)
    walks.finished(ds, [*imports.entries[0], lost])
    assert len(listed(walks)) == 300
    imports.land(2)
    walks.finished(ds, imports.entries[1])
    assert listed(walks) == set()  # the full listing settles the rest
    assert (invoice_pages(fake), walks.not_newest_first()) == (2, [])


def test_a_last_walk_finds_what_no_walk_looked_for(fake, ds, walks):
    imports = Imports(fake, ds, [250])
    imports.land(1)
    walks.last(ds, "invoices", [entry.objects[0][1] for entry in imports.entries[0]])
    assert len(listed(walks)) == 250
    assert invoice_pages(fake) == 2


def test_a_walked_page_holds_only_what_the_matching_reads():
    """Pages wait in memory until the main thread matches them: an invoice keeps its identifiers and those of its
    line items and transactions, an event its id as uuid."""
    invoice = {"uuid": "inv_1", "external_id": "i1", "customer_uuid": "cus_1", "currency": "EUR",
               "line_items": [{"uuid": "li_1", "external_id": "l1", "amount_in_cents": 100, "type": "one_time"}],
               "transactions": [{"uuid": "tr_1", "external_id": None, "result": "successful"}]}
    event = {"id": 7, "external_id": "e1", "customer_external_id": "c1", "event_type": "subscription_start"}
    out: list[list[Obj]] = []
    walk(iter([invoice, event]), DS, {"i1", "e1"}, lambda found: True, 5, out.append, threading.Event(),
         lambda found: None)
    assert out == [[
        {"uuid": "inv_1", "external_id": "i1", "line_items": [{"uuid": "li_1", "external_id": "l1"}],
         "transactions": [{"uuid": "tr_1", "external_id": None}]},
        {"id": 7, "external_id": "e1", "uuid": "7"},
    ]]


def test_an_import_chartmogul_refused_is_not_waited_for(fake, ds, walks):
    """A refused request stored nothing: the walk for the imports sent around it waits for theirs only."""
    imports = Imports(fake, ds, [200, 300, 200])
    for entries in imports.entries:
        walks.sending(ds, entries)
    walks.refused(imports.entries[1])
    imports.land(1)
    imports.land(3)
    walks.finished(ds, imports.entries[2])  # the imports sent before it finished too, but for the refused one
    assert listed(walks) == {entry.objects[0][1] for entry in imports.entries[0] + imports.entries[2]}
    assert (invoice_pages(fake), walks.missed(), walks.not_newest_first()) == (2, [], [])
