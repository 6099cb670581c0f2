"""What rides in a bulk import, per input record: its body objects and what the memory keeps once it landed.

An `Entry` is one input record. It brings body objects (customers, invoices, line items,
transactions, subscription events, each named by kind and external id), and the sync-memory
rows to write once ChartMogul reports them imported. Entries are kept with the import id in
the sync memory (as JSON) before polling, so a run that died while the import was processing
can record its outcome without the records.
"""

from __future__ import annotations

import dataclasses
import typing as t

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
KINDS = ("customers", "plans", "invoices", "line_items", "transactions", "subscription_events")


@dataclasses.dataclass
class MemoryRow:
    """A `tcm_synced_objects` row to write when the entry landed (hashes, not payloads)."""

    obj: str
    ds: str
    external_id: str
    payload_hash: str | None
    record_hash: str | None = None
    tags: list[str] | None = None
    parent: str | None = None


@dataclasses.dataclass
class Entry:
    """One input record in a bulk import."""

    stream: str
    customer: str
    record: Record
    key: dict[str, t.Any]
    reject_key: str
    objects: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (kind, external id)
    memory: list[MemoryRow] = dataclasses.field(default_factory=list)
    parent: int | None = None  # index of the entry whose failure fails this one (a line's invoice)
    payments: list[str] = dataclasses.field(default_factory=list)  # payments of a transactions stream nested in it
    bodies: dict[str, list[Obj]] = dataclasses.field(default_factory=dict, repr=False)  # not kept after submission
    encoded: dict[str, list[bytes]] = dataclasses.field(default_factory=dict, repr=False)  # the bodies as sent

    def add(self, kind: str, body: Obj) -> None:
        """One body object this record brings."""
        self.bodies.setdefault(kind, []).append(body)
        self.objects.append((kind, str(body.get("external_id") or "")))

    def as_json(self) -> dict[str, t.Any]:
        """What the sync memory keeps of it while its import is in flight (no copy: it is encoded at once)."""
        return {
            "stream": self.stream, "customer": self.customer, "record": self.record, "key": self.key,
            "reject_key": self.reject_key, "objects": self.objects, "memory": [vars(row) for row in self.memory],
            "parent": self.parent, "payments": self.payments,
        }

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> Entry:
        """An entry read back from the sync memory."""
        fields = {key: value for key, value in data.items() if key != "follow_up"}  # kept by imports of 0.1 runs
        fields["objects"] = [tuple(pair) for pair in fields.get("objects") or []]
        fields["memory"] = [MemoryRow(**row) for row in fields.get("memory") or []]
        return cls(**fields)


class BulkWriter(t.Protocol):
    """What the lane needs of a sink whose new records can ride in a bulk import."""

    @property
    def stream_name(self) -> str:
        """The stream it writes."""

    @property
    def object_name(self) -> str:
        """The ChartMogul object it writes (its rank)."""

    def bulk_split(self, records: list[Record]) -> tuple[list[tuple[str, str, str, Record]], list[Record]]:
        """(data source, customer, key, record) of the records that are new objects, and the others."""

    def bulk_entries(self, records: list[Record]) -> tuple[list[list[Entry]], list[Record]]:
        """Entries of spooled records (the unmappable rejected), and records only REST can write."""

    def bulk_follow_up(self, entries: list[Entry], held: dict[str, Obj]) -> None:
        """Customers that landed: compare with ChartMogul's copy (`held` by external id), write custom attributes
        and tags, remember and count them.
        """

    def bulk_attributes(self, record: Record) -> bool:
        """Whether the record brings customer custom attributes or tags to a bulk body."""

    def retry_records(self, records: list[Record]) -> None:
        """Write records through REST (read back from JSON: validated again)."""

    def reject(self, record: Record, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """Refuse one record."""
