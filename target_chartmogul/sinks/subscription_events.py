"""Subscription events: created, updated and deleted, kept apart by external id within the data source.

What is the events' own: ChartMogul's event endpoints take a `subscription_event` envelope.
Every recording names the event of a PATCH by its integer `id` in the envelope and that of a
DELETE by `?subscription_event[id]=`, so that is how these rules name it whenever the id is
known: the sync memory keeps it as the entry's uuid, and a lost memory gets it back from the
listing of the data source (or one lookup by external id). Only an event whose id cannot be
known is named by data source and external id (a form only client mocks show).

No recording shows how ChartMogul refuses a second event with a used external id (the table
has no duplicate message), so the lifecycle checks a refused create by looking the event up;
a create that had to be retried (its first answer lost) is looked up too, in case ChartMogul
saved both. An event's customer and plan must exist before it is written.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.resources import delete_if_present, listing
from target_chartmogul.bulk.writers import EventEntries
from target_chartmogul.mapping.subscription_events import EventPayload, delete_query, known_event_id, map_event
from target_chartmogul.sinks.lifecycle import Changes, Item, Key, Rules
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    from target_chartmogul.api.client import Response
    from target_chartmogul.memory.ledger import Entry
    from target_chartmogul.sinks.lifecycle import ObjectSink

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Event = Item[EventPayload]
UNECHOED = ("event_order",)  # sent, never answered: cannot be compared, so it rides along with any PATCH


def naming(*candidates: t.Any) -> int | None:
    """The id to name an event by in a PATCH or DELETE: the first of `candidates` that is one (None: name it by data
    source and external id).
    """
    return next((found for found in map(known_event_id, candidates) if found is not None), None)


class EventRules(Rules[EventPayload]):
    """Subscription events (the Import API's event path)."""

    kind = "subscription_event"

    def __init__(self, sink: ObjectSink) -> None:
        super().__init__(sink)
        self.bulk = EventEntries(sink, self.map)

    def map(self, record: Record) -> EventPayload:
        """`mapping.subscription_events` (what each of the ten event types needs)."""
        return map_event(record, self.default_data_source, amount_unit=self.settings.amount_unit)

    def key(self, payload: EventPayload) -> Key:
        """External id within the data source."""
        return payload.key

    def fingerprint(self, payload: EventPayload) -> t.Any:
        """Identity and every managed field."""
        return payload.fingerprint()

    def body(self, payload: EventPayload) -> Obj:
        """The envelope with the fields that are set."""
        return payload.create_body()

    def changes(self, item: Event, held: Obj) -> Changes:
        """Fields ChartMogul holds differently (`""` and null alike, dates to the second)."""
        fields = item.payload.fields
        return {name: (held.get(name), fields[name]) for name in compare.event_changes(fields, held)}

    def before_write(self, item: Event) -> None:
        """The customer and plan the event names exist (written in this run or in ChartMogul); else `Unresolved`:
        it waits for the end of the input, then is rejected naming the field.
        """
        refs, ds, fields = self.context.refs, item.payload.data_source_uuid, item.payload.fields
        refs.require("customer", ds, fields["customer_external_id"], field="customer_external_id")
        if fields["plan_external_id"] is not None:
            refs.require("plan", ds, fields["plan_external_id"], field="plan_external_id")

    def update(self, item: Event, held: Obj, changes: Changes) -> Obj | None:
        """PATCH the changed fields (and those ChartMogul never answers with), naming the event by its id."""
        fields = item.payload.fields
        unechoed = {name: fields[name] for name in UNECHOED if name not in held and fields[name] is not None}
        body = item.payload.envelope({**unechoed, **{name: fields[name] for name in changes}},
                                     naming(held.get("id"), held.get("uuid")))
        answer = self.client.patch(str(self.resource.path), body).body
        return answer if isinstance(answer, dict) else None

    def update_known(self, item: Event, uuid: str) -> Obj | None:
        """PATCH every field by the id the memory keeps."""
        answer = self.client.patch(str(self.resource.path), item.payload.envelope(item.payload.fields, naming(uuid))).body
        return answer if isinstance(answer, dict) else None

    def created(self, item: Event, response: Response) -> None:
        """A create answered only on a retry: if ChartMogul saved the event twice, the other copy is deleted."""
        if response.attempts == 1:
            return
        answer = response.body if isinstance(response.body, dict) else {}
        copies = self.copies(item.payload)
        kept = answer.get("id") if answer.get("id") is not None else (copies[0].get("id") if copies else None)
        for other in copies:
            copy_id = naming(other.get("id"))
            if other.get("id") != kept and copy_id is not None:  # by data source and external id, both would go
                self.logger.warning("Subscription event %s was saved twice by a retried create; deleting the copy %s",
                                    item.payload.external_id, copy_id)
                self.delete(item.key, str(copy_id))

    def copies(self, event: EventPayload) -> list[Obj]:
        """Every event ChartMogul holds with this external id in the data source (one, unless saved twice)."""
        params = {"data_source_uuid": event.data_source_uuid, "external_id": event.external_id}
        return [e for e in listing(self.client, self.kind, params) if e.get("external_id") == event.external_id
                and e.get("data_source_uuid") in (None, event.data_source_uuid)]

    # Deleting --------------------------------------------------------------------------------
    def to_delete(self, key: Key, record: Record, entry: Entry | None) -> str | None:
        """The id ChartMogul's listing shows; "" when it shows none (named by data source and external id)."""
        held = self.context.refs.held(self.kind, *key)
        if held is None:
            return None
        by_id = naming(held.get("id"), held.get("uuid"))
        return str(by_id) if by_id is not None else ""

    def delete(self, key: Key, uuid: str) -> None:
        """By `?subscription_event[id]=` (as recorded), else by data source and external id in the body."""
        by_id = naming(uuid)
        if by_id is not None:
            delete_if_present(self.client, self.kind, None, params=delete_query(by_id))
        else:
            delete_if_present(self.client, self.kind, None,
                              body={"subscription_event": {"data_source_uuid": key[0], "external_id": key[1]}})
