"""What the input holds, mapped by the writing path's own mapping modules and keyed as it keys them.

Each row is mapped on arrival (`mapping_for`), so reconcile compares exactly what a write
would send. Lines and payments from streams of their own are only checked for what names
them: their amounts are read in their invoice's currency, known once the input ended (the
invoice may come later, or only ChartMogul may hold it). The last row of a key wins, as in a
write; a row deleted in the source (`_sdc_deleted_at`) takes its key out.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import optional_text, required_data_source, required_text
from target_chartmogul.mapping.contacts import ContactMapper
from target_chartmogul.mapping.customers import CustomerMapper, CustomerPayload
from target_chartmogul.mapping.invoices import check_line_item, map_invoice
from target_chartmogul.mapping.plans import map_plan
from target_chartmogul.mapping.subscription_events import map_event

if t.TYPE_CHECKING:
    from target_chartmogul.config.settings import StreamSettings

Record = dict[str, t.Any]
Key = tuple[str, str]  # (data source, external id, or the `email:`/`uuid:` key of another match_by)
Mapping = t.Callable[[Record], tuple[Key, t.Any]]


@dataclasses.dataclass(frozen=True)
class Part:
    """A line item or a transaction from a stream of its own, and the invoice it names."""

    invoice_external_id: str | None
    invoice_uuid: str | None
    record: Record


@dataclasses.dataclass(frozen=True)
class Row:
    """One source row: its stream (and so its options) and what the writing path maps it to."""

    stream: str
    settings: StreamSettings
    payload: t.Any


def customer_key(payload: CustomerPayload, match_by: str) -> Key:
    """How the writing path finds the customer: external id, email or uuid (within the data source)."""
    ds = str(payload.data_source_uuid or "")
    if match_by == "email":
        return (ds, f"email:{str(payload.email).casefold()}")
    if match_by == "uuid":
        return (ds, f"uuid:{payload.uuid}")
    return (ds, str(payload.external_id))


def _customers(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    mapper = CustomerMapper(settings, schema, default, logger)

    def read(record: Record) -> tuple[Key, t.Any]:
        payload = mapper.map(record)
        return customer_key(payload, settings.match_by), payload

    return read


def _contacts(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    mapper = ContactMapper(settings, schema, default, logger)

    def read(record: Record) -> tuple[Key, t.Any]:
        payload = mapper.map(record)
        return payload.key(settings.match_by), payload

    return read


def _plans(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    def read(record: Record) -> tuple[Key, t.Any]:
        plan = map_plan(record, default)
        return (plan.data_source_uuid, plan.external_id), plan

    return read


def _invoices(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    def read(record: Record) -> tuple[Key, t.Any]:
        invoice = map_invoice(record, default, unit=settings.amount_unit)
        return (invoice.data_source_uuid, invoice.external_id), invoice

    return read


def _events(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    def read(record: Record) -> tuple[Key, t.Any]:
        event = map_event(record, default, amount_unit=settings.amount_unit)
        return event.key, event

    return read


def _line_items(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    def read(record: Record) -> tuple[Key, t.Any]:
        ds = required_data_source(record, default)
        invoice = required_text(record, "invoice_external_id", "the invoice this line belongs to")
        external_id = required_text(record, "external_id", "it is how a changed line finds its place in its invoice")
        check_line_item(record, unit=settings.amount_unit)
        return (ds, external_id), Part(invoice, None, record)

    return read


def _transactions(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    def read(record: Record) -> tuple[Key, t.Any]:
        ds = required_data_source(record, default)
        external_id = required_text(record, "external_id", "without it a replayed transaction would be doubled")
        invoice, invoice_uuid = optional_text(record, "invoice_external_id"), optional_text(record, "invoice_uuid")
        if invoice is None and invoice_uuid is None:
            raise RecordRejected("field 'invoice_uuid' or 'invoice_external_id' is required", field="invoice_external_id")
        return (ds, external_id), Part(invoice, invoice_uuid, record)

    return read


MAPPINGS: dict[str, t.Callable[[StreamSettings, Record, str | None, logging.Logger], Mapping]] = {
    "customers": _customers,
    "plans": _plans,
    "invoices": _invoices,
    "line_items": _line_items,
    "transactions": _transactions,
    "subscription_events": _events,
    "contacts": _contacts,
}


def mapping_for(settings: StreamSettings, schema: Record, default: str | None, logger: logging.Logger) -> Mapping:
    """The stream's record -> (key, payload), by the mapping module the writing path uses for its object."""
    return MAPPINGS[str(settings.object)](settings, schema, default, logger)


class Source:
    """Every mapped row of the input by object and key, the keys deleted in the source, and which streams arrived
    as complete full-table versions.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[Key, Row]] = {}
        self.deleted: dict[str, set[Key]] = {}
        self.refused: dict[str, set[Key]] = {}  # keys of rows the writing path would refuse (still in the source)
        self.streams: dict[str, str] = {}  # stream -> object
        self.complete: set[str] = set()
        self.superseded = 0

    def stream_opened(self, stream: str, obj: str) -> None:
        """A stream of this object is part of the input."""
        self.streams[stream] = obj

    def add(self, obj: str, key: Key, row: Row) -> None:
        """A row of the input: the last row of a key wins, as in a write."""
        rows = self.rows.setdefault(obj, {})
        if key in rows:
            self.superseded += 1
        rows[key] = row
        self.deleted.get(obj, set()).discard(key)

    def delete(self, obj: str, key: Key) -> None:
        """A row deleted in the source (`_sdc_deleted_at`): the object should not be in ChartMogul."""
        self.rows.get(obj, {}).pop(key, None)
        self.deleted.setdefault(obj, set()).add(key)

    def refuse(self, obj: str, key: Key) -> None:
        """A row that cannot be compared (the writing path would refuse it): its object is still no extra."""
        self.rows.get(obj, {}).pop(key, None)
        self.refused.setdefault(obj, set()).add(key)

    def of(self, obj: str) -> dict[Key, Row]:
        """The rows of one object, by key."""
        return self.rows.get(obj, {})

    def streams_of(self, obj: str) -> list[str]:
        """The input's streams of one object."""
        return [stream for stream, of in self.streams.items() if of == obj]

    def is_complete(self, obj: str) -> bool:
        """Whether every stream of this object arrived as a complete full-table version (so what ChartMogul holds
        beyond its rows is extra); never for an incremental stream.
        """
        streams = self.streams_of(obj)
        return bool(streams) and all(stream in self.complete for stream in streams)

    def data_sources(self, *objects: str) -> set[str]:
        """The data sources the rows (and deleted rows) of these objects name."""
        found = {key[0] for obj in objects for key in self.of(obj)}
        found |= {key[0] for obj in objects for key in self.deleted.get(obj, set())}
        return {ds for ds in found if ds}
