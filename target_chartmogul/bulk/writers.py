"""The lane's adapters of the sinks: which records a bulk import can carry, and the entries they bring.

The lane sees a sink only as a `BulkWriter` (bulk/entries.py). A sink whose new objects can ride
in a bulk body holds one adapter (composed into it, never a base class of it): `Adapter` is what
every object shares (new objects told from known ones, what they name read ahead, records read
back from the spool and mapped again, whether what an object names is there), `CustomerEntries`
and `EventEntries` are the customers' and subscription events' bodies; the invoices' entries,
which need the run's invoice parts, subclass `Adapter` beside the invoices sink.
"""

from __future__ import annotations

import typing as t

from target_chartmogul.bulk.entries import Entry, MemoryRow
from target_chartmogul.config.registry import BY_NAME
from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import data_source, optional_text
from target_chartmogul.memory.ledger import payload_hash

if t.TYPE_CHECKING:
    from target_chartmogul.bulk.context import LaneContext
    from target_chartmogul.bulk.lane import BulkLane
    from target_chartmogul.config.settings import StreamSettings
    from target_chartmogul.mapping.customers import CustomerPayload
    from target_chartmogul.mapping.subscription_events import EventPayload
    from target_chartmogul.memory.ledger import Entry as MemoryEntry
    from target_chartmogul.values.validation import RecordChecker

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
P = t.TypeVar("P")
BulkKey = tuple[str, str, str]  # (data source, external id, customer external id)
Spooled = tuple[str, str, str, Record]  # (data source, customer, external id, record)


class Side(t.Protocol):
    """What an adapter needs of its sink."""

    @property
    def stream_name(self) -> str:
        """The stream it writes."""

    @property
    def object_name(self) -> str:
        """The object it writes."""

    @property
    def settings(self) -> StreamSettings:
        """The stream's options."""

    @property
    def config(self) -> t.Mapping[str, t.Any]:
        """The run's settings."""

    @property
    def checker(self) -> RecordChecker:
        """The stream's record checker (dates read again for a record read back from the spool)."""

    @property
    def context(self) -> LaneContext:
        """The run."""

    @property
    def bulk(self) -> BulkLane:
        """The run's bulk lane."""

    def record_key(self, record: Record) -> dict[str, t.Any]:
        """The record's identity, for reject lines."""

    def reject_key(self, record: Record) -> str:
        """The identity a refused record is remembered by."""

    def reject(self, record: Record, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """Refuse one record."""

    def memory_lookup(self, keys: t.Iterable[tuple[str, str]]) -> dict[tuple[str, str], MemoryEntry]:
        """What the sync memory holds of these (data source, external id) keys."""

    def retry_records(self, records: list[Record]) -> None:
        """Write records through REST (read back from JSON: validated again)."""


class Adapter:
    """What every object's adapter shares; `bulk_entries` is the object's own."""

    kind = ""  # the resource kind the spool and references name the object by

    def __init__(self, sink: Side) -> None:
        self.sink = sink

    @property
    def stream_name(self) -> str:
        """The sink's stream."""
        return self.sink.stream_name

    @property
    def object_name(self) -> str:
        """The sink's object (its rank)."""
        return self.sink.object_name

    def retry_records(self, records: list[Record]) -> None:
        """Through REST: the sink writes them."""
        self.sink.retry_records(records)

    def reject(self, record: Record, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """The sink refuses it."""
        self.sink.reject(record, reason, field=field, status=status)

    def bulk_split(self, records: list[Record]) -> tuple[list[Spooled], list[Record]]:
        """Records of new objects a bulk import can carry, and the others."""
        return self.partition([(record, self.key(record)) for record in records])

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[Entry]], list[Record]]:
        """Units of entries for spooled records (the unmappable rejected), and records only REST can write."""
        raise NotImplementedError

    def bulk_follow_up(self, entries: list[Entry], held: dict[str, Obj]) -> None:
        """Objects a bulk import reported imported (only customers are compared afterwards)."""
        raise NotImplementedError

    def bulk_attributes(self, record: Record) -> bool:
        """Whether the record brings customer attributes to a bulk body (only customers do)."""
        return False

    # What the adapters share --------------------------------------------------------------------
    def key(self, record: Record, customer_field: str = "customer_external_id") -> BulkKey | None:
        """(data source, external id, customer external id) read straight off a record, or None."""
        try:
            ds = data_source(record, self.sink.config.get("data_source_uuid"))
            ext = optional_text(record, "external_id")
            customer = optional_text(record, customer_field)
        except RecordRejected:
            return None
        return (ds, ext, customer) if ds and ext and customer else None

    def partition(
        self,
        keyed: list[tuple[Record, BulkKey | None]],
        held: t.Callable[[str, str], bool] = lambda ds, ext: False,
    ) -> tuple[list[Spooled], list[Record]]:
        """New objects (neither the sync memory nor a listing of the data source knows them, nor `held`) and the
        rest; a deleted row takes its object out of the spool.
        """
        sink = self.sink
        for ds in sorted({key[0] for _, key in keyed if key is not None}):
            sink.context.refs.holdings.ensure(self.kind, ds)
        known = sink.memory_lookup((key[0], key[1]) for _, key in keyed if key is not None)
        new: list[Spooled] = []
        rest: list[Record] = []
        for record, key in keyed:
            deleted = bool(record.get("_sdc_deleted_at"))
            if key is not None and deleted and sink.settings.delete_missing:
                sink.bulk.discard(sink.stream_name, key[0], key[1])
            if key is None or deleted or (key[0], key[1]) in known or held(key[0], key[1]):
                rest.append(record)
            else:
                new.append((key[0], key[2], key[1], record))
        self.list_what_they_name({ds for ds, *_ in new})
        return new, rest

    def list_what_they_name(self, data_sources: set[str]) -> None:
        """New objects of these data sources name other objects (an invoice's lines name plans): with a lost memory,
        start reading those listings now, not after the input, when the stream that brings them may come last
        (tap-postgres: accounts, invoices, price_plans). An unchanged rerun has no new object and reads none.
        """
        entry = BY_NAME.get(self.sink.object_name)
        if entry is None:
            return
        for ds in sorted(data_sources):
            for kind in entry.names:
                self.sink.context.refs.holdings.prefetch(kind, ds)

    def entry(self, record: Record, customer: str) -> Entry:
        """An empty entry for one spooled record."""
        return Entry(self.sink.stream_name, customer, record, self.sink.record_key(record), self.sink.reject_key(record))

    def ready(self, data_source_uuid: str, customer: str, plans: t.Iterable[str]) -> bool:
        """Whether what a bulk object names is there: its customer (in this import or in ChartMogul) and its plans
        (in ChartMogul). Else it goes through REST, which waits for them until the end of the input.
        """
        bulk, refs = self.sink.bulk, self.sink.context.refs
        if not bulk.pending("customer", data_source_uuid, customer) and refs.find(
                "customer", data_source_uuid, customer) is None:
            return False
        return all(refs.find("plan", data_source_uuid, plan) is not None for plan in plans)

    def mapped(self, records: list[Record], mapping: t.Callable[[Record], P]) -> t.Iterator[tuple[Record, P]]:
        """Each spooled record with its payload; one that is invalid or cannot be mapped is rejected instead."""
        for record in records:
            if self.revalidated(record) is None:
                continue
            try:
                yield record, mapping(record)
            except RecordRejected as exc:
                self.reject(record, exc.reason, field=exc.field)

    def revalidated(self, record: Record) -> Record | None:
        """A spooled record (validated on arrival, read back from JSON) with its dates read, or None after
        rejecting it.
        """
        invalid = self.sink.checker.read_dates(record)
        if invalid is not None:
            self.reject(invalid.record, invalid.reason, field=invalid.field)
            return None
        return record


class CustomerEntries(Adapter):
    """Customers: the body Create a Customer takes (ChartMogul's reference maps a bulk body's customers to it)."""

    kind = "customer"

    def __init__(self, sink: Side, mapping: t.Callable[[Record], CustomerPayload],
                 landed: t.Callable[[list[tuple[Record, Obj | None]]], None]) -> None:
        super().__init__(sink)
        self.mapping = mapping
        self.landed = landed  # the sink compares each landed customer with ChartMogul's copy and remembers it

    def bulk_split(self, records: list[Record]) -> tuple[list[Spooled], list[Record]]:
        """Customers neither the memory nor ChartMogul's listing knows (upsert by external_id only: a bulk import
        may update a customer it finds, which `insert` must not do).
        """
        settings = self.sink.settings
        if settings.mode != "upsert" or settings.match_by != "external_id":
            return [], records
        return self.partition([(record, self.key(record, "external_id")) for record in records])

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[Entry]], list[Record]]:
        """One entry per customer: every field, and its custom attributes and tags where the lane says they ride.
        The others are returned, for the lane to create through REST before the import with their invoices.
        """
        units: list[list[Entry]] = []
        rest: list[Record] = []
        for record, payload in self.mapped(records, self.mapping):
            body = payload.create_body()
            ds = str(body.pop("data_source_uuid"))
            if "attributes" in body and not self.sink.bulk.attributes_ride(ds):
                rest.append(record)
                continue
            entry = self.entry(record, str(payload.external_id))
            entry.add("customers", body)
            units.append([entry])
        return units, rest

    def bulk_attributes(self, record: Record) -> bool:
        """Whether the record's customer has custom attributes or tags to send (False when it cannot be mapped)."""
        try:
            return "attributes" in self.mapping(record).create_body()
        except RecordRejected:
            return False

    def bulk_follow_up(self, entries: list[Entry], held: dict[str, Obj]) -> None:
        """Customers a bulk import reported imported: the sink compares each with ChartMogul's copy (custom
        attributes, tags, a field an existing customer kept) and remembers it.
        """
        self.landed([(record, held.get(entry.customer)) for entry in entries
                     if (record := self.revalidated(entry.record)) is not None])


class EventEntries(Adapter):
    """Subscription events: their fields, linked to their customer by external id."""

    kind = "subscription_event"

    def __init__(self, sink: Side, mapping: t.Callable[[Record], EventPayload]) -> None:
        super().__init__(sink)
        self.mapping = mapping

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[Entry]], list[Record]]:
        """One entry per event; one whose customer or plan is not there yet goes through REST (which waits)."""
        units: list[list[Entry]] = []
        rest: list[Record] = []
        for record, event in self.mapped(records, self.mapping):
            plan = event.fields.get("plan_external_id")
            customer = str(event.fields["customer_external_id"])
            if not self.ready(event.data_source_uuid, customer, [plan] if plan else []):
                rest.append(record)
                continue
            entry = self.entry(record, customer)
            entry.add("subscription_events", {"external_id": event.external_id,
                                              **{k: v for k, v in event.fields.items() if v is not None}})
            entry.memory.append(MemoryRow(self.sink.object_name, *event.key, payload_hash(event.fingerprint())))
            units.append([entry])
        return units, rest
