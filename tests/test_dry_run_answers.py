"""A dry run answers subscription-event and contact writes as the fake (in recorded shapes) answers them, sending none.

Each simulated answer is held against the fake's answer to the same write, sent for real
in a twin data source holding the same customer and plan.
"""

from __future__ import annotations

import typing as t

import pytest

from target_chartmogul.api.client import ChartMogulClient, Response
from target_chartmogul.api.dry_run import DryRunClient
from target_chartmogul.api.errors import APIError
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY

EVENT = {"external_id": "ev-1", "customer_external_id": "c1", "subscription_external_id": "s1",
         "plan_external_id": "gold", "event_type": "subscription_start", "event_date": "2024-01-02",
         "effective_date": "2024-01-03T10:00:00+02:00", "currency": "EUR", "amount_in_cents": 1000, "quantity": 1}
SAME_SHAPE_AS_ANSWERED = ("id", "created_at", "updated_at", "data_source_uuid", "uuid", "customer_uuid",
                          "customer_external_id")


def comparable(body: t.Any) -> t.Any:
    """An answer without what differs by nature between twins: ids, times, data sources, customers."""
    if not isinstance(body, dict):
        return body
    return {k: v for k, v in body.items() if k not in SAME_SHAPE_AS_ANSWERED}


class Twins:
    """The same customer and plan in two data sources: writes go dry to the first, for real to the second."""

    def __init__(self, fake: FakeChartMogul, ds: str) -> None:
        self.fake = fake
        self.real = ChartMogulClient(fake.url, API_KEY, max_retries=2, backoff_base=0.01, timeout=5)
        self.dry = DryRunClient(fake.url, API_KEY, max_retries=2, backoff_base=0.01, timeout=5)
        self.ds = {"dry": ds, "real": str(fake.add_data_source("twin")["uuid"])}
        self.customer: dict[str, str] = {}
        for side, source in self.ds.items():
            self.customer[side] = self.real.post("customers", {"data_source_uuid": source, "external_id": "c1"}).body["uuid"]
            self.real.post("plans", {"data_source_uuid": source, "external_id": "gold", "name": "Gold",
                                     "interval_count": 1, "interval_unit": "month"})

    def event(self, side: str, **fields: t.Any) -> dict[str, t.Any]:
        return {"subscription_event": {**EVENT, "data_source_uuid": self.ds[side], **fields}}

    def both(self, call: t.Callable[[ChartMogulClient, str], Response]) -> tuple[Response, Response]:
        """The dry answer (nothing may be written), then the real one."""
        self.fake.clear_requests()
        dry = call(self.dry, "dry")
        assert [r.method for r in self.fake.requests if r.method != "GET"] == []
        return dry, call(self.real, "real")

    def both_refused(self, call: t.Callable[[ChartMogulClient, str], Response]) -> tuple[APIError, APIError]:
        errors = []
        for client, side in ((self.dry, "dry"), (self.real, "real")):
            with pytest.raises(APIError) as caught:
                call(client, side)
            errors.append(caught.value)
        return errors[0], errors[1]


@pytest.fixture
def twins(fake: FakeChartMogul, ds: str) -> Twins:
    return Twins(fake, ds)


def test_an_event_is_created_updated_and_deleted_as_chartmogul_answers(twins):
    created = twins.both(lambda c, side: c.post("subscription_events", twins.event(side)))
    assert [r.status for r in created] == [201, 201]
    assert comparable(created[0].body) == comparable(created[1].body)
    assert created[0].body["event_date"] == "2024-01-02T00:00:00Z"  # dates as events answer them, no milliseconds

    change = {"quantity": 3, "tax_amount_in_cents": None}
    updated = twins.both(lambda c, side: c.patch("subscription_events", {"subscription_event": {
        "data_source_uuid": twins.ds[side], "external_id": "ev-1", **change}}))
    assert [r.status for r in updated] == [200, 200]
    assert comparable(updated[0].body) == comparable(updated[1].body)

    listed = twins.both(lambda c, side: c.get("subscription_events", {"data_source_uuid": twins.ds[side]}))
    assert [comparable(e) for e in listed[0].body["subscription_events"]] == [
        comparable(e) for e in listed[1].body["subscription_events"]]

    envelope = {"external_id": "ev-1"}
    deleted = twins.both(lambda c, side: c.delete("subscription_events", {"subscription_event": {
        **envelope, "data_source_uuid": twins.ds[side]}}))
    assert [(r.status, r.body) for r in deleted] == [(204, None), (204, None)]
    gone = twins.both_refused(lambda c, side: c.delete("subscription_events", {"subscription_event": {
        **envelope, "data_source_uuid": twins.ds[side]}}))
    assert [(e.status, e.body) for e in gone] == [(404, {"error": "Subscription event not found"})] * 2


def test_a_used_event_external_id_is_refused_as_the_fake_refuses_it(twins):
    for side in ("dry", "real"):
        twins.real.post("subscription_events", twins.event(side))
    dry, real = twins.both_refused(lambda c, side: c.post("subscription_events", twins.event(side)))
    assert (dry.status, dry.body) == (real.status, real.body) == (422, {"errors": {"external_id": "has already been taken"}})


def test_an_event_this_dry_run_created_is_listed_and_taken_afterwards(fake, twins):
    twins.dry.post("subscription_events", twins.event("dry"))
    listed = list(twins.dry.paginate("subscription_events", "subscription_events",
                                     {"data_source_uuid": twins.ds["dry"], "external_id": "ev-1"}))
    assert [e["external_id"] for e in listed] == ["ev-1"]
    with pytest.raises(APIError) as caught:
        twins.dry.post("subscription_events", twins.event("dry"))
    assert caught.value.status == 422
    assert fake.subscription_events.items == {}  # nothing was ever sent


def test_a_contact_is_created_updated_and_deleted_as_chartmogul_answers(twins):
    def body(side: str) -> dict[str, t.Any]:
        return {"customer_uuid": twins.customer[side], "data_source_uuid": twins.ds[side], "external_id": "p-1",
                "email": "ada@acme.test", "custom": [{"key": "champion", "value": True}]}

    created = twins.both(lambda c, side: c.post("contacts", body(side)))
    assert [r.status for r in created] == [201, 201]
    assert comparable(created[0].body) == comparable(created[1].body)
    uuids = {"dry": created[0].body["uuid"], "real": created[1].body["uuid"]}
    assert uuids["dry"].startswith("con_dryrun_")

    change = {"first_name": "Ada", "email": None, "custom": [{"key": "champion", "value": None}]}
    updated = twins.both(lambda c, side: c.patch(f"contacts/{uuids[side]}", change))
    assert comparable(updated[0].body) == comparable(updated[1].body)
    assert updated[0].body["custom"] == {}

    deleted = twins.both(lambda c, side: c.delete(f"contacts/{uuids[side]}"))
    assert [(r.status, r.body) for r in deleted] == [(200, {}), (200, {})]


def test_a_real_contact_is_changed_and_deleted_only_in_the_dry_runs_memory(fake, twins):
    real = twins.real.post("contacts", {"customer_uuid": twins.customer["dry"], "data_source_uuid": twins.ds["dry"],
                                        "external_id": "p-2", "email": "bo@acme.test"}).body
    fake.clear_requests()

    patched = twins.dry.patch(f"contacts/{real['uuid']}", {"title": "CTO"}).body
    assert (patched["title"], twins.dry.get(f"contacts/{real['uuid']}").body["title"]) == ("CTO", "CTO")
    assert twins.dry.delete(f"contacts/{real['uuid']}").body == {}
    listed = list(twins.dry.paginate("contacts", "entries", {"data_source_uuid": twins.ds["dry"]}))
    assert listed == []
    with pytest.raises(APIError) as caught:
        twins.dry.get(f"contacts/{real['uuid']}")
    assert caught.value.status == 404
    assert [r.method for r in fake.requests if r.method != "GET"] == []
    assert fake.contacts.items[real["uuid"]]["title"] is None


def test_the_contacts_of_a_customer_this_dry_run_created_are_never_asked_of_chartmogul(fake, twins):
    customer = twins.dry.post("customers", {"data_source_uuid": twins.ds["dry"], "external_id": "new"}).body["uuid"]
    contact = twins.dry.post("contacts", {"customer_uuid": customer, "data_source_uuid": twins.ds["dry"],
                                          "email": "new@acme.test"}).body
    fake.clear_requests()

    listed = list(twins.dry.paginate("contacts", "entries", {"customer_uuid": customer, "data_source_uuid": twins.ds["dry"]}))

    assert listed == [contact]
    assert fake.requests == []
