"""Subscription events and contacts under faults: every event and contact exactly once, nothing refused.

Lost answers of creates are the hard case: no recording shows how ChartMogul refuses a
second event with a used external id (the fake refuses it in two wordings, or saves it
twice), and contacts are not refused at all. Faults come from a fixed seed; the target
runs in this process so its summary can be read.
"""

from __future__ import annotations

import pytest

from tests.fake_chartmogul import FakeChartMogul
from tests.running import run_target
from tests.singer_messages import record
from tests.subscription_rows import (
    EVENTS_STREAM,
    PEOPLE_STREAM,
    assert_contacts_are,
    assert_events_are,
    event_rows,
    events_messages,
    people_messages,
    people_rows,
    with_references,
)

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def config(base_config: dict, **streams: dict) -> dict:
    return {**base_config, "request_timeout": 2, "max_retries": 8, "streams": {
        EVENTS_STREAM: {"object": "subscription_events", "delete_missing": True},
        PEOPLE_STREAM: {"object": "contacts", "custom_attributes": ["champion", "seats_owned", "birthday"]}, **streams}}


def faults_seen(fake: FakeChartMogul) -> dict[str, int]:
    seen: dict[str, int] = {}
    for request in fake.requests:
        if request.fault:
            seen[request.fault] = seen.get(request.fault, 0) + 1
    return seen


@pytest.mark.parametrize("duplicates", ["errors", "message", "accepted"])
@pytest.mark.parametrize(("seed", "kinds"), [
    (301, ("error_after", "drop_after")),
    (311, ("error_before", "drop_before", "status_429")),
])
def test_events_and_contacts_land_exactly_once_under_faults(fake, ds, base_config, duplicates, seed, kinds):
    fake.subscription_events.duplicates = duplicates
    events, people = event_rows(8), people_rows()
    fake.random_faults(rate=0.2, kinds=kinds, seed=seed, methods=(*WRITES, "GET"),
                       path_regex=r"^/(subscription_events|contacts)")

    result = run_target(config(base_config), with_references(events_messages(events), people_messages(people)))

    assert result.rejects == []
    assert_events_are(fake, ds, events)
    assert_contacts_are(fake, ds, people)
    assert (result.counts(EVENTS_STREAM)["created"], result.counts(PEOPLE_STREAM)["created"]) == (80, 7)
    assert sum(faults_seen(fake).values()) >= 10

    changed = [{**row, "quantity": 4} if row["quantity"] is not None else row for row in events]
    deleted = [record(EVENTS_STREAM, {"external_id": row["external_id"], "_sdc_deleted_at": "2024-06-01"})
               for row in events[70:]]
    again = run_target(config(base_config), [*events_messages(changed[:70]), *deleted, *people_messages(people)])

    assert again.rejects == []
    assert_events_are(fake, ds, changed[:70])
    counts = again.counts(EVENTS_STREAM)
    assert (counts["updated"], counts["deleted"]) == (len([r for r in changed[:70] if r["quantity"] is not None]), 10)
