"""The fake's ``listing_order`` switch and the keyset cursors of its invoice and subscription event listings.

ChartMogul lists invoices newest first by creation and subscription events newest first by id, and
their cursors name the last object of a page (chartmogul-ruby's recordings, quoted in
``tests/fake_chartmogul/__init__.py``): a walk never sees an object twice, nor one created behind its
cursor. ``listing_order="created"`` lists both oldest first. Every test walks the listings over real
HTTP, under both settings, and checks the exact external ids a walk returns.
"""

from __future__ import annotations

import base64
import json
import typing as t
from collections.abc import Iterator

import pytest

from tests.fake_chartmogul import FakeChartMogul
from tests.fake_chartmogul import __main__ as fake_main
from tests.fake_chartmogul.store import LISTING_ORDERS
from tests.helpers import FakeApi

KEY = "listing-order-key"
INVALID_CURSOR = {"code": 400, "message": "Invalid cursor", "param": "cursor"}
# Invoice dates against their creation order: the listings follow creation, not the date.
DATES = {"i1": "2024-05-01", "i2": "2024-01-01", "i3": "2024-09-01", "i4": "2023-01-01", "i5": "2024-03-01",
         "i6": "2022-01-01"}


class Api(FakeApi):
    def __init__(self, fake: FakeChartMogul) -> None:
        super().__init__(fake, KEY)


@pytest.fixture(params=LISTING_ORDERS)
def order(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(order: str) -> Iterator[FakeChartMogul]:
    with FakeChartMogul(api_key=KEY, listing_order=order) as server:
        yield server


@pytest.fixture
def api(fake: FakeChartMogul) -> Iterator[Api]:
    client = Api(fake)
    yield client
    client.session.close()


class Account(t.NamedTuple):
    ds: str
    customer: str


@pytest.fixture
def account(api: Api) -> Account:
    ds = str(api.ok("POST", "/data_sources", {"name": "billing"}, status=201)["uuid"])
    customer = api.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "c1"}, status=201)["uuid"]
    plan = {"data_source_uuid": ds, "name": "Gold", "interval_count": 1, "interval_unit": "month", "external_id": "p1"}
    api.ok("POST", "/plans", plan, status=201)
    return Account(ds, customer)


def invoice(ext: str) -> dict[str, t.Any]:
    return {"external_id": ext, "date": DATES.get(ext, "2024-01-01"), "currency": "USD",
            "line_items": [{"type": "one_time", "amount_in_cents": 1000}]}


def create_invoices(api: Api, account: Account, *exts: str) -> None:
    """One import per invoice, in the order given (so that is their creation order)."""
    for ext in exts:
        api.ok("POST", f"/import/customers/{account.customer}/invoices", {"invoices": [invoice(ext)]}, status=201)


def invoice_uuid(fake: FakeChartMogul, account: Account, ext: str) -> str:
    found = fake.find_invoice(account.ds, ext)
    assert found is not None
    return str(found["uuid"])


def event(ext: str, ds: str) -> dict[str, t.Any]:
    return {"subscription_event": {
        "data_source_uuid": ds, "external_id": ext, "customer_external_id": "c1", "subscription_external_id": "s1",
        "plan_external_id": "p1", "event_type": "subscription_start", "event_date": "2024-01-01",
        "effective_date": "2024-01-01", "currency": "USD", "amount_in_cents": 1000, "quantity": 1}}


def create_events(api: Api, account: Account, *exts: str) -> dict[str, int]:
    """External id -> id of each event created, in the order given."""
    return {ext: int(api.ok("POST", "/subscription_events", event(ext, account.ds), status=201)["id"]) for ext in exts}


class Walk:
    """A client walking one listing page by page, as the target's reads do (per_page=2)."""

    def __init__(self, api: Api, path: str, root: str, **params: t.Any) -> None:
        self.api, self.path, self.root, self.params = api, path, root, params
        self.cursor: str | None = None
        self.seen: list[str] = []
        self.pages: list[list[str]] = []
        self.has_more = True

    def next_page(self) -> list[str]:
        assert self.has_more, "the walk is over"
        params = {**self.params, "per_page": 2, **({"cursor": self.cursor} if self.cursor else {})}
        body = self.api.ok("GET", self.path, **params)
        page = [str(item["external_id"]) for item in body[self.root]]
        self.cursor, self.has_more = body["cursor"], body["has_more"]
        self.pages.append(page)
        self.seen += page
        return page

    def rest(self) -> list[str]:
        """Every page left; the external ids of the whole walk."""
        while self.has_more:
            self.next_page()
        return self.seen


def invoices_walk(api: Api, account: Account) -> Walk:
    return Walk(api, "/invoices", "invoices", data_source_uuid=account.ds)


def events_walk(api: Api, account: Account) -> Walk:
    return Walk(api, "/subscription_events", "subscription_events", data_source_uuid=account.ds)


Expected = t.TypeVar("Expected")


def by_order(order: str, recorded: Expected, created: Expected) -> Expected:
    """What a walk returns under each setting of ``listing_order``."""
    return recorded if order == "recorded" else created


# ---------------------------------------------------------------------- invoices


def test_invoices_are_listed_newest_first_as_recorded_or_oldest_first(api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3", "i4", "i5")
    walk = invoices_walk(api, account)
    walk.rest()
    assert walk.pages == by_order(order, [["i5", "i4"], ["i3", "i2"], ["i1"]], [["i1", "i2"], ["i3", "i4"], ["i5"]])


def test_the_default_is_the_recorded_order_and_the_switch_is_an_attribute() -> None:
    with FakeChartMogul(api_key=KEY) as server:
        assert server.listing_order == "recorded"
        client = Api(server)
        ds = str(client.ok("POST", "/data_sources", {"name": "billing"}, status=201)["uuid"])
        customer = client.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "c1"}, status=201)["uuid"]
        create_invoices(client, Account(ds, customer), "i1", "i2", "i3")
        assert invoices_walk(client, Account(ds, customer)).rest() == ["i3", "i2", "i1"]
        server.listing_order = "created"
        assert invoices_walk(client, Account(ds, customer)).rest() == ["i1", "i2", "i3"]
        with pytest.raises(ValueError, match="listing_order"):
            server.listing_order = "newest"
        assert server.listing_order == "created"
        client.session.close()
    with pytest.raises(ValueError, match="listing_order"):
        FakeChartMogul(api_key=KEY, listing_order="oldest")


def test_an_invoice_created_mid_walk_is_seen_only_when_it_sorts_after_the_cursor(
        api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3", "i4", "i5")
    walk = invoices_walk(api, account)
    assert walk.next_page() == by_order(order, ["i5", "i4"], ["i1", "i2"])
    create_invoices(api, account, "i6")
    assert walk.rest() == by_order(order, ["i5", "i4", "i3", "i2", "i1"], ["i1", "i2", "i3", "i4", "i5", "i6"])
    assert invoices_walk(api, account).rest() == by_order(
        order, ["i6", "i5", "i4", "i3", "i2", "i1"], ["i1", "i2", "i3", "i4", "i5", "i6"])


def test_an_invoice_deleted_mid_walk_is_absent_and_the_walk_goes_on_from_the_deleted_cursor(
        fake: FakeChartMogul, api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3", "i4", "i5")
    walk = invoices_walk(api, account)
    first = walk.next_page()
    assert first == by_order(order, ["i5", "i4"], ["i1", "i2"])
    ahead = by_order(order, ["i2"], ["i4"])[0]
    for ext in (first[-1], ahead):  # the object the cursor names, and one not reached yet
        api.ok("DELETE", f"/invoices/{invoice_uuid(fake, account, ext)}", status=204)
    assert walk.rest() == by_order(order, ["i5", "i4", "i3", "i1"], ["i1", "i2", "i3", "i5"])


def test_an_invoice_deleted_and_imported_again_is_a_new_creation(
        fake: FakeChartMogul, api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3")
    api.ok("DELETE", f"/invoices/{invoice_uuid(fake, account, 'i1')}", status=204)
    create_invoices(api, account, "i1")
    assert invoices_walk(api, account).rest() == by_order(order, ["i1", "i3", "i2"], ["i2", "i3", "i1"])


def test_invoices_imported_in_bulk_take_their_place_in_the_creation_order(
        api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1")
    bulk = ("i2", "i3")
    body = {"external_id": "bulk-1",
            "invoices": [{"external_id": ext, "date": DATES[ext], "currency": "USD", "customer_external_id": "c1"}
                         for ext in bulk],
            "line_items": [{"type": "one_time", "amount_in_cents": 1000, "invoice_external_id": ext} for ext in bulk]}
    submitted = api.ok("POST", f"/data_sources/{account.ds}/json_imports", body)
    polled = api.ok("GET", f"/data_sources/{account.ds}/json_imports/{submitted['id']}")
    assert polled["status"] == "completed"
    create_invoices(api, account, "i4")
    assert invoices_walk(api, account).rest() == by_order(order, ["i4", "i3", "i2", "i1"], ["i1", "i2", "i3", "i4"])


def test_a_customer_s_invoices_share_the_order_and_the_cursors(api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3")
    walk = Walk(api, f"/import/customers/{account.customer}/invoices", "invoices")
    assert walk.next_page() == by_order(order, ["i3", "i2"], ["i1", "i2"])
    create_invoices(api, account, "i4")
    assert walk.rest() == by_order(order, ["i3", "i2", "i1"], ["i1", "i2", "i3", "i4"])


def test_the_filters_and_page_fields_stay_as_they_were(api: Api, account: Account, order: str) -> None:
    create_invoices(api, account, "i1", "i2", "i3")
    first = api.ok("GET", "/invoices", data_source_uuid=account.ds, per_page=2)
    assert (first["total_pages"], first["current_page"], first["has_more"]) == (2, 1, True)
    last = api.ok("GET", "/invoices", data_source_uuid=account.ds, per_page=2, cursor=first["cursor"])
    assert list(last) == ["invoices", "cursor", "has_more"]
    assert last["has_more"] is False and isinstance(last["cursor"], str)  # last_page_cursor "string", as recorded
    after = api.ok("GET", "/invoices", data_source_uuid=account.ds, per_page=2, cursor=last["cursor"])
    assert after == {"invoices": [], "cursor": None, "has_more": False}
    one = api.ok("GET", "/invoices", data_source_uuid=account.ds, external_id="i2")["invoices"]
    assert [i["external_id"] for i in one] == ["i2"]
    everything = api.ok("GET", "/invoices", data_source_uuid=account.ds)  # per_page 200 by default
    assert [i["external_id"] for i in everything["invoices"]] == by_order(order, ["i3", "i2", "i1"], ["i1", "i2", "i3"])
    assert (everything["has_more"], everything["total_pages"]) == (False, 1)


def test_a_null_last_page_cursor_still_ends_the_walk(fake: FakeChartMogul, api: Api, account: Account, order: str) -> None:
    fake.last_page_cursor = "null"
    create_invoices(api, account, "i1", "i2", "i3")
    walk = invoices_walk(api, account)
    assert walk.rest() == by_order(order, ["i3", "i2", "i1"], ["i1", "i2", "i3"])
    assert walk.cursor is None


# ---------------------------------------------------------------------- subscription events


def test_events_are_listed_newest_first_by_id_as_recorded_or_oldest_first(api: Api, account: Account, order: str) -> None:
    ids = create_events(api, account, "e1", "e2", "e3", "e4", "e5")
    assert sorted(ids.values()) == list(ids.values())
    walk = events_walk(api, account)
    walk.rest()
    assert walk.pages == by_order(order, [["e5", "e4"], ["e3", "e2"], ["e1"]], [["e1", "e2"], ["e3", "e4"], ["e5"]])


def test_an_event_created_mid_walk_is_seen_only_when_it_sorts_after_the_cursor(
        api: Api, account: Account, order: str) -> None:
    create_events(api, account, "e1", "e2", "e3", "e4", "e5")
    walk = events_walk(api, account)
    assert walk.next_page() == by_order(order, ["e5", "e4"], ["e1", "e2"])
    create_events(api, account, "e6")
    assert walk.rest() == by_order(order, ["e5", "e4", "e3", "e2", "e1"], ["e1", "e2", "e3", "e4", "e5", "e6"])


def test_an_event_deleted_mid_walk_is_absent(api: Api, account: Account, order: str) -> None:
    ids = create_events(api, account, "e1", "e2", "e3", "e4", "e5")
    walk = events_walk(api, account)
    first = walk.next_page()
    assert first == by_order(order, ["e5", "e4"], ["e1", "e2"])
    for ext in (first[-1], by_order(order, ["e2"], ["e4"])[0]):
        api.ok("DELETE", "/subscription_events", status=204, **{"subscription_event[id]": ids[ext]})
    assert walk.rest() == by_order(order, ["e5", "e4", "e3", "e1"], ["e1", "e2", "e3", "e5"])


def test_the_events_first_page_keeps_its_meta(api: Api, account: Account, order: str) -> None:
    ids = create_events(api, account, "e1", "e2", "e3")
    first = api.ok("GET", "/subscription_events", data_source_uuid=account.ds, per_page=2)
    assert first["meta"]["next_key"] == ids["e2"]  # the last of [e3, e2] (recorded) or of [e1, e2] (created)
    assert (first["meta"]["total_pages"], first["has_more"]) == (2, True)
    rest = api.ok("GET", "/subscription_events", data_source_uuid=account.ds, per_page=2, cursor=first["cursor"])
    assert "meta" not in rest and rest["has_more"] is False


# ---------------------------------------------------------------------- cursors that are not the listing's


def encoded(value: t.Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_cursor_not_made_for_the_listing_is_refused(api: Api, account: Account) -> None:
    create_invoices(api, account, "i1", "i2", "i3")
    create_events(api, account, "e1", "e2", "e3")
    invoices_cursor = api.ok("GET", "/invoices", per_page=1)["cursor"]
    events_cursor = api.ok("GET", "/subscription_events", per_page=1)["cursor"]
    customers_cursor = api.ok("GET", "/customers", per_page=1)["cursor"]  # an offset
    assert base64.urlsafe_b64decode(customers_cursor) == b"offset:1"
    refused = [
        ("/invoices", "not-base64!"),
        ("/invoices", encoded("plain text")),
        ("/invoices", customers_cursor),
        ("/invoices", events_cursor),
        ("/invoices", encoded({"listing": "invoices", "after": ["i1"]})),
        ("/invoices", encoded({"listing": "invoices", "after": [True, "inv_1"]})),
        ("/invoices", encoded({"listing": "invoices", "after": []})),
        ("/invoices", encoded(["invoices", 1, "inv_1"])),
        ("/subscription_events", invoices_cursor),
        ("/subscription_events", customers_cursor),
        ("/subscription_events", encoded({"listing": "subscription_events", "after": ["x"]})),
        (f"/import/customers/{account.customer}/invoices", events_cursor),
        ("/customers", invoices_cursor),
        ("/plans", events_cursor),
    ]
    answers = [api.get(path, per_page=1, cursor=cursor) for path, cursor in refused]
    assert [(r.status_code, r.json()) for r in answers] == [(400, INVALID_CURSOR)] * len(refused)
    again = api.ok("GET", f"/import/customers/{account.customer}/invoices", per_page=1, cursor=invoices_cursor)
    assert len(again["invoices"]) == 1  # both invoice listings have the same keys


def test_the_command_line_takes_the_switch() -> None:
    assert fake_main.parse_args(["--api-key", "k"]).listing_order == "recorded"
    assert fake_main.parse_args(["--api-key", "k", "--listing-order", "created"]).listing_order == "created"
    with pytest.raises(SystemExit):
        fake_main.parse_args(["--api-key", "k", "--listing-order", "newest"])
