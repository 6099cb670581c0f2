"""Subscription events and contacts as a billing database holds them, their Singer messages, and checks.

Shared by the event and contact tests: a `public-subscription_changes` stream whose rows are
subscription events of all ten types over a set of customers and plans, and a
`public-people` stream of contacts. The checks compare what the fake holds with what was
sent, field by field.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from decimal import Decimal

from tests.billing import CUSTOMERS, PLANS, customers_messages, instant, plans_messages, raw_record
from tests.fake_chartmogul import FakeChartMogul
from tests.running import REPO
from tests.singer_messages import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER, STRING, schema

EVENTS_STREAM = "public-subscription_changes"
PEOPLE_STREAM = "public-people"
EVENT_PATH = r"^/subscription_events$"
CONTACT_PATH = r"^/contacts"

EVENT_PROPS = {
    "external_id": STRING,
    "customer_external_id": STRING,
    "subscription_external_id": STRING,
    "subscription_set_external_id": STRING,
    "plan_external_id": STRING,
    "event_type": STRING,
    "event_date": DATETIME,
    "effective_date": DATETIME,
    "currency": STRING,
    "amount_in_cents": NUMBER,
    "quantity": INTEGER,
    "tax_amount_in_cents": NUMBER,
    "retracted_event_id": INTEGER,
    "event_order": INTEGER,
}
PEOPLE_PROPS = {
    "external_id": STRING,
    "customer_external_id": STRING,
    "first_name": STRING,
    "last_name": STRING,
    "title": STRING,
    "position": INTEGER,
    "email": STRING,
    "phone": STRING,
    "linked_in": STRING,
    "twitter": STRING,
    "notes": STRING,
    "champion": BOOLEAN,
    "seats_owned": INTEGER,
    "birthday": DATE,
}

# The ten types in the order a subscription lives through them (retractions after what they retract).
LIFECYCLE = (
    "subscription_start_scheduled",
    "scheduled_subscription_start_retracted",
    "subscription_start",
    "subscription_update_scheduled",
    "scheduled_subscription_update_retracted",
    "subscription_updated",
    "subscription_cancellation_scheduled",
    "scheduled_subscription_cancellation_retracted",
    "subscription_event_retracted",
    "subscription_cancelled",
)
PRICED = {"subscription_start", "subscription_start_scheduled", "subscription_updated", "subscription_update_scheduled"}


def event_rows(subscriptions: int, start: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), *,
               customers: t.Sequence[str] | None = None, plans: t.Sequence[str] | None = None) -> list[t.Any]:
    """Ten events (every type once) per subscription, spread over the standard customers and plans (or those given)."""
    accounts = list(customers) if customers is not None else [c["external_id"] for c in CUSTOMERS]
    plan_ids = list(plans) if plans is not None else [p["external_id"] for p in PLANS]
    rows = []
    for n in range(subscriptions):
        account = accounts[n % len(accounts)]
        for step, kind in enumerate(LIFECYCLE):
            day = start + dt.timedelta(days=n, hours=step)
            row: dict[str, t.Any] = {
                "external_id": f"ev-{n:03d}-{step}",
                "customer_external_id": account,
                "subscription_external_id": f"sub-{n:03d}",
                "subscription_set_external_id": f"set-{n % 4}" if n % 2 else None,
                "event_type": kind,
                "event_date": day.isoformat(),
                "effective_date": (day + dt.timedelta(days=3)).isoformat(),
                "plan_external_id": None,
                "currency": None,
                "amount_in_cents": None,
                "quantity": None,
                "tax_amount_in_cents": None,
                "retracted_event_id": None,
                "event_order": step if n % 3 == 0 else None,
            }
            if kind in PRICED:
                row.update(plan_external_id=plan_ids[(n + step) % len(plan_ids)], currency="EUR",
                           amount_in_cents=Decimal(f"{1000 + n * 10 + step}.00"), quantity=1 + step % 3,
                           tax_amount_in_cents=Decimal(190 + n) if step % 2 else None)
            if kind == "subscription_event_retracted":
                row["retracted_event_id"] = 900_000 + n
            rows.append(row)
    return rows


def events_messages(rows: t.Sequence[dict[str, t.Any]], stream: str = EVENTS_STREAM,
                    props: dict[str, t.Any] | None = None) -> list[t.Any]:
    return [schema(stream, props or EVENT_PROPS), *(raw_record(stream, row) for row in rows)]


def with_references(*parts: list[t.Any]) -> list[t.Any]:
    """Plans and customers first, then the given messages."""
    return [*plans_messages(), *customers_messages(), *(message for part in parts for message in part)]


def events_config(base_config: dict[str, t.Any], **options: t.Any) -> dict[str, t.Any]:
    """The events stream, written through REST (tests/test_bulk_import.py covers events in bulk imports)."""
    return {**base_config, "bulk_import": "never",
            "streams": {EVENTS_STREAM: {"object": "subscription_events", **options}}}


def assert_event_matches(fake: FakeChartMogul, ds: str, row: dict[str, t.Any], *, unit: str = "cents") -> None:
    """ChartMogul holds exactly one event with this external id, equal to the row field by field."""
    found = fake.subscription_events.find(ds, row["external_id"])
    assert len(found) == 1, f"event {row['external_id']}: {len(found)} copies"
    held = found[0]
    where = f"event {row['external_id']}"
    for name in ("customer_external_id", "subscription_external_id", "subscription_set_external_id", "plan_external_id",
                 "event_type", "quantity", "retracted_event_id", "event_order"):
        assert held[name] == row.get(name), f"{where} {name}: held {held[name]!r}, sent {row.get(name)!r}"
    assert held["currency"] == (row["currency"].upper() if row.get("currency") else None), where
    for name in ("event_date", "effective_date"):
        assert instant(held[name]) == instant(row[name]), f"{where} {name}"
    for name in ("amount_in_cents", "tax_amount_in_cents"):
        sent = row.get(name)
        expected = None if sent is None else int(Decimal(str(sent)) * (100 if unit == "units" else 1))
        assert held[name] == expected and (expected is None or type(held[name]) is int), f"{where} {name}"


def assert_events_are(fake: FakeChartMogul, ds: str, rows: t.Sequence[dict[str, t.Any]], **kwargs: t.Any) -> None:
    """ChartMogul holds exactly these events, each once and as sent."""
    for row in rows:
        assert_event_matches(fake, ds, row, **kwargs)
    with fake.lock:
        held = sorted(e["external_id"] for e in fake.subscription_events.items.values())
    assert held == sorted(row["external_id"] for row in rows)


# ---------------------------------------------------------------------------------- contacts


def people_rows(customers: t.Sequence[str] | None = None) -> list[dict[str, t.Any]]:
    """Two or three people at each standard customer (or each of those given); custom attributes of three types."""
    accounts = list(customers) if customers is not None else [c["external_id"] for c in CUSTOMERS]
    rows = []
    for index, customer in enumerate(accounts):
        for n in range(2 + index % 2):
            rows.append({
                "external_id": f"person-{index}-{n}",
                "customer_external_id": customer,
                "first_name": f"First{index}{n}",
                "last_name": f"Last{index}{n}",
                "title": "CFO" if n == 0 else "Engineer",
                "position": n + 1,
                "email": f"p{index}{n}@{customer}.test",
                "phone": f"+49 30 {index}{n}",
                "linked_in": None,
                "twitter": f"https://twitter.com/p{index}{n}" if n else None,
                "notes": "Billing contact" if n == 0 else None,
                "champion": n == 0,
                "seats_owned": 10 * (n + 1),
                "birthday": f"1980-0{n + 1}-{10 + index % 19}",
            })
    return rows


def people_messages(rows: t.Sequence[dict[str, t.Any]], stream: str = PEOPLE_STREAM,
                    props: dict[str, t.Any] | None = None, key: t.Sequence[str] = ("external_id",)) -> list[t.Any]:
    return [schema(stream, props or PEOPLE_PROPS, key), *(raw_record(stream, row) for row in rows)]


def people_config(base_config: dict[str, t.Any], **options: t.Any) -> dict[str, t.Any]:
    entry = {"object": "contacts", "custom_attributes": ["champion", "seats_owned", "birthday"], **options}
    return {**base_config, "streams": {PEOPLE_STREAM: entry}}


def held_contacts(fake: FakeChartMogul) -> dict[str, dict[str, t.Any]]:
    """Stored contacts by external id (each external id once)."""
    with fake.lock:
        contacts = [dict(c) for c in fake.contacts.items.values()]
    by_ext = {c["external_id"]: c for c in contacts}
    assert len(by_ext) == len(contacts), "a contact is held twice"
    return by_ext


def assert_contact_matches(fake: FakeChartMogul, ds: str, row: dict[str, t.Any], held: dict[str, t.Any]) -> None:
    """The contact is on the row's customer and holds its fields and custom attributes."""
    where = f"contact {row['external_id']}"
    customer = fake.find_customers(ds, row["customer_external_id"])
    assert len(customer) == 1 and held["customer_uuid"] == customer[0]["uuid"], where
    assert held["data_source_uuid"] == ds, where
    for name in ("first_name", "last_name", "title", "email", "phone", "linked_in", "twitter", "notes", "position"):
        if name in row:
            assert held[name] == row[name], f"{where} {name}: held {held[name]!r}, sent {row[name]!r}"
    custom = {k: v for k, v in {"champion": row.get("champion"), "seats_owned": row.get("seats_owned"),
                                "birthday": f"{row['birthday']}T00:00:00Z" if row.get("birthday") else None}.items()
              if v is not None}
    assert held["custom"] == custom, where


def assert_contacts_are(fake: FakeChartMogul, ds: str, rows: t.Sequence[dict[str, t.Any]]) -> None:
    held = held_contacts(fake)
    assert sorted(held) == sorted(row["external_id"] for row in rows)
    for row in rows:
        assert_contact_matches(fake, ds, row, held[row["external_id"]])



def readme_recipe(stream: str) -> dict[str, t.Any]:
    """The README's recipe for a stream: its `streams` and `stream_maps` JSON block, as a config fragment."""
    readme = (REPO / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```json\n")[1:]]
    found = [block for block in blocks if f'"{stream}"' in block and '"stream_maps"' in block]
    assert len(found) == 1, f"README has {len(found)} recipes for {stream}"
    return t.cast("dict[str, t.Any]", json.loads("{" + found[0] + "}"))
