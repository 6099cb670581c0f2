"""Subscription events: created, updated and deleted, kept apart by external id within the data source.

ChartMogul's event endpoints take a `subscription_event` envelope. Every recording names
the event of a PATCH by its integer `id` in the envelope and that of a DELETE by
`?subscription_event[id]=`, so that is how this sink names it whenever the id is known:
the sync memory keeps it as the entry's uuid, and a lost memory gets it back from the
listing of the data source (or one lookup by external id). Only an event whose id cannot
be known is named by data source and external id (a form only client mocks show).

No recording shows how ChartMogul refuses a second event with a used external id, so a
refused create is checked by looking the event up, never by reading the message; and a
create that had to be retried (its first answer lost) is looked up too, in case
ChartMogul saved both.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import listing
from target_chartmogul.bulk.entries import Entry as BulkEntry
from target_chartmogul.bulk.entries import MemoryRow
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.subscription_events import EventPayload, delete_query, known_event_id, map_event
from target_chartmogul.memory.ledger import Entry, payload_hash
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.values import compare

Record = dict[str, t.Any]
KIND = "subscription_event"
PATH = "subscription_events"
UNECHOED = ("event_order",)  # sent, never answered: cannot be compared, so it rides along with any PATCH


class SubscriptionEventsSink(ChartMogulSink):
    """Writes a stream into ChartMogul subscription events (the Import API's event path)."""

    object_name = "subscription_events"

    def write_records(self, records: list[Record]) -> None:
        """Map, consult the sync memory (a lost one: list the data source once), then write concurrently."""
        items: list[tuple[Record, EventPayload]] = []
        for record in self.split_deletions(records):
            try:
                items.append((record, map_event(record, self.config.get("data_source_uuid"),
                                                amount_unit=self.settings.amount_unit)))
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)
        for ds in sorted({event.data_source_uuid for _, event in items}):
            self.context.refs.holdings.ensure(KIND, ds)
        self.known = self.memory_lookup(event.key for _, event in items)
        self.run_each(items, lambda item: self.write_remembered(item[1]), records_of=lambda item: [item[0]])

    # Bulk import -------------------------------------------------------------------------
    def bulk_split(self, records: list[Record]) -> tuple[list[tuple[str, str, str, Record]], list[Record]]:
        """Events neither the memory nor ChartMogul's listing knows can ride in a bulk import."""
        return self.bulk_partition([(record, self.bulk_key(record)) for record in records], KIND)

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[BulkEntry]], list[Record]]:
        """One entry per event: its fields, linked to its customer by external id."""
        units: list[list[BulkEntry]] = []
        rest: list[Record] = []
        ds, unit = self.config.get("data_source_uuid"), self.settings.amount_unit
        for record, event in self.bulk_mapped(records, lambda record: map_event(record, ds, amount_unit=unit)):
            plan = event.fields.get("plan_external_id")
            if not self.bulk_ready(event.data_source_uuid, str(event.fields["customer_external_id"]),
                                   [plan] if plan else []):
                rest.append(record)  # what it names is not there yet: REST waits for it until the end of the input
                continue
            entry = self.bulk_entry(record, str(event.fields["customer_external_id"]))
            entry.add("subscription_events", {"external_id": event.external_id,
                                              **{k: v for k, v in event.fields.items() if v is not None}})
            entry.memory.append(MemoryRow(self.object_name, *event.key, payload_hash(event.fingerprint())))
            units.append([entry])
        return units, rest

    def write_remembered(self, event: EventPayload) -> str:
        """Skip an event the memory holds as it is; else write it (or find it unchanged) and remember it."""
        entry = self.known.get(event.key)
        fingerprint = event.fingerprint()
        if self.is_current(entry, fingerprint):
            return "unchanged"
        outcome, event_id = self.write_one(event, entry)
        self.remember(*event.key, uuid=event_id, payload=fingerprint)
        return outcome

    def require_references(self, event: EventPayload) -> None:
        """Before a write: the customer and plan the event names exist (written in this run or in ChartMogul).

        Else `Unresolved`: the record waits for the end of the input, then is rejected naming the field.
        """
        refs, ds = self.context.refs, event.data_source_uuid
        refs.require("customer", ds, event.fields["customer_external_id"], field="customer_external_id")
        if event.fields["plan_external_id"] is not None:
            refs.require("plan", ds, event.fields["plan_external_id"], field="plan_external_id")

    # Writing ----------------------------------------------------------------------------
    def write_one(self, event: EventPayload, entry: Entry | None) -> tuple[str, str | None]:
        """Update an event ChartMogul holds, else create it; returns (outcome, event id)."""
        if entry is not None and entry.uuid:
            updated = self.update_existing(event, entry)
            if updated is not None:
                return updated
        return self.create(event)

    def update_existing(self, event: EventPayload, entry: Entry) -> tuple[str, str | None] | None:
        """A change the memory proves is PATCHed at once; an event only adopted from a listing is compared first.

        None when ChartMogul no longer holds the event (then it is created again).
        """
        holdings = self.context.refs.holdings
        held = holdings.get(KIND, *event.key)
        holdings.drop(KIND, *event.key)  # stale once written
        if held is None and entry.payload_hash is not None:
            self.require_references(event)
            try:
                self.client.patch(PATH, event.envelope(event.fields, self.naming(entry.uuid)))
            except APIError as exc:
                if exc.status != 404:
                    raise
                self._gone(event)
                return None
            return "updated", entry.uuid
        if held is None:
            held = self.look_up(event)
        if held is None:
            self._gone(event)
            return None
        return self.bring_in_line(event, held), str(held.get("id") or entry.uuid)

    def bring_in_line(self, event: EventPayload, held: t.Mapping[str, t.Any]) -> str:
        """PATCH the fields ChartMogul holds differently (and those it never answers with); 'unchanged' if none."""
        changes = compare.event_changes(event.fields, held)
        if not changes:
            return "unchanged"
        unechoed = {name: event.fields[name] for name in UNECHOED if name not in held and event.fields[name] is not None}
        self.require_references(event)
        fields = {**unechoed, **{name: event.fields[name] for name in changes}}
        self.client.patch(PATH, event.envelope(fields, self.naming(held.get("id"), held.get("uuid"))))
        return "updated"

    def naming(self, *candidates: t.Any) -> int | None:
        """The id to name an event by in a PATCH or DELETE: the first of `candidates` that is one, else None.

        None names it by data source and external id.
        """
        return next((found for found in map(known_event_id, candidates) if found is not None), None)

    def create(self, event: EventPayload) -> tuple[str, str | None]:
        """POST the event; a refusal is a duplicate only if the event is then found by its external id."""
        self.require_references(event)
        try:
            response = self.client.post(PATH, event.create_body())
        except APIError as exc:
            held = self.look_up(event)
            if held is None:
                raise
            if exc.attempts > 1:  # our own earlier attempt saved it; its answer was lost
                return "created", str(held.get("id"))
            return self.bring_in_line(event, held), str(held.get("id"))
        answer = response.body if isinstance(response.body, dict) else {}
        if response.attempts > 1:
            self.drop_doubles(event, answer.get("id"))
        return "created", str(answer["id"]) if answer.get("id") is not None else None

    def drop_doubles(self, event: EventPayload, kept: t.Any) -> None:
        """A create answered only on a retry: if ChartMogul saved the event twice, delete the other copy."""
        copies = self.copies(event)
        if kept is None and copies:
            kept = copies[0].get("id")
        for other in copies:
            copy_id = self.naming(other.get("id"))
            if other.get("id") != kept and copy_id is not None:  # by data source and external id, both would go
                self.logger.warning("Subscription event %s was saved twice by a retried create; deleting the copy %s",
                                    event.external_id, copy_id)
                self._delete_quietly(event.key, copy_id)

    def _delete_quietly(self, key: tuple[str, str], by_id: int | None) -> None:
        """DELETE an event by `?subscription_event[id]=` (as recorded), else by data source and external id in the
        body; a 404 (a retried delete whose first answer was lost) means it is gone.
        """
        try:
            if by_id is not None:
                self.client.request("DELETE", PATH, params=delete_query(by_id))
            else:
                self.client.delete(PATH, {"subscription_event": {"data_source_uuid": key[0], "external_id": key[1]}})
        except APIError as exc:
            if exc.status != 404:
                raise

    # Finding ----------------------------------------------------------------------------
    def copies(self, event: EventPayload) -> list[dict[str, t.Any]]:
        """Every event ChartMogul holds with this external id in the data source (one, unless saved twice)."""
        params = {"data_source_uuid": event.data_source_uuid, "external_id": event.external_id}
        found = listing(self.client, KIND, params)
        return [e for e in found if e.get("external_id") == event.external_id
                and e.get("data_source_uuid") in (None, event.data_source_uuid)]

    def look_up(self, event: EventPayload) -> dict[str, t.Any] | None:
        """The event as ChartMogul holds it now, asked by data source and external id."""
        copies = self.copies(event)
        return copies[0] if copies else None

    def _gone(self, event: EventPayload) -> None:
        self.logger.info("Subscription event %s is gone from ChartMogul; creating it again", event.external_id)
        self.context.refs.forget(KIND, *event.key, gone=True)

    # Deleting ---------------------------------------------------------------------------
    def delete_one(self, data_source_uuid: str, external_id: str) -> str:
        """Delete one event, named by the id the memory (or ChartMogul's listing) knows (a 404 means it is already gone)."""
        entry = self.known.get((data_source_uuid, external_id))
        if entry is not None and entry.uuid:
            by_id = self.naming(entry.uuid)
        else:
            held = self.context.refs.held(KIND, data_source_uuid, external_id)
            if held is None:
                return "unchanged"  # ChartMogul never held it
            by_id = self.naming(held.get("id"), held.get("uuid"))
        self._delete_quietly((data_source_uuid, external_id), by_id)
        self.context.refs.forget(KIND, data_source_uuid, external_id, gone=True)
        return "deleted"
