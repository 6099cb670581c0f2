"""Parts of invoices that arrive in streams of their own, kept until their invoice is written.

Billing databases keep headers, lines and payments in separate tables. ChartMogul imports
an invoice with its lines in one call, so lines (and payments, when the invoice is new)
wait here for their header, whatever order the tap sends the streams in:

- lines of a header still to come are held until their invoice is assembled;
- a header waits until a line_items stream came and ended (taps send one stream at a time:
  a stream is complete once another starts), or until the end of the input;
- lines that came in an earlier run without their header, and found no invoice in ChartMogul,
  were rejected and wait in the sync memory's rejects (their whole rows): a header that comes
  later, with no lines in its own run, takes them (`remembered_lines`) and is imported whole;
- payments are offered to their invoice's import as they arrive: an invoice imported
  after its payments came carries them (one call), and the transactions stream counts them
  as written once that import landed; the others are posted on their own.
"""

from __future__ import annotations

import dataclasses
import threading
import typing as t

Record = dict[str, t.Any]
Key = tuple[str, str]  # (data source, invoice external id)


class LineOwner(t.Protocol):
    """The line_items sink a line came from: its outcome is counted, or it is rejected, there."""

    stream_name: str

    def count(self, outcome: str, n: int = 1) -> None:
        """Count line records of the stream with an outcome."""

    def reject(self, record: Record, reason: str, *, field: str | None = None, status: int | None = None) -> None:
        """Reject one line record."""

    def line_written(self, part: LinePart, invoice_uuid: str | None) -> None:
        """The line is in ChartMogul as sent (remember it)."""


@dataclasses.dataclass
class LinePart:
    """One line item row, as it arrived, and the stream options that shape it."""

    owner: LineOwner
    data_source_uuid: str
    invoice_external_id: str
    external_id: str
    record: Record
    unit: str
    fingerprint: t.Any = None
    deleted: bool = False  # `_sdc_deleted_at`, or absent from a complete full-table version
    refused: str | None = None  # why the row was rejected on arrival (its invoice cannot be whole)
    held: bool = False  # a deleted line: ChartMogul's invoice had it (the memory said so, or its copy showed it)


@dataclasses.dataclass
class Payment:
    """A payment or refund of an invoice not in ChartMogul yet, offered to its import."""

    external_id: str
    record: Record
    unit: str


class InvoiceParts:
    """Thread-safe store of lines and payments waiting for their invoice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[Key, dict[str, LinePart]] = {}
        self._open: set[str] = set()
        self._seen = False
        self._payments: dict[Key, dict[str, Payment]] = {}
        self._nested: dict[tuple[str, str], tuple[str, str | None]] = {}  # -> (outcome, uuid when answered)
        self._remembered: dict[Key, dict[str, LinePart]] | None = None  # line rejects of earlier runs, read once
        self._homeless: dict[Key, dict[str, LinePart]] = {}  # lines rejected in this run for lack of their invoice
        self._imported: set[Key] = set()  # invoices this run imported (a payment may still join them under keep)

    # Line item streams ----------------------------------------------------------------------
    def stream_open(self, stream_name: str) -> None:
        """A line_items stream started: headers wait until it is complete."""
        with self._lock:
            self._open.add(stream_name)
            self._seen = True

    def stream_complete(self, stream_name: str) -> None:
        """A line_items stream ended (another stream started, or the input ended)."""
        with self._lock:
            self._open.discard(stream_name)

    @property
    def lines_pending(self) -> bool:
        """Whether more lines may still arrive: no line_items stream came yet, or one is still open."""
        with self._lock:
            return not self._seen or bool(self._open)

    def add_line(self, part: LinePart) -> None:
        """Keep a line (a later row of the same line replaces it)."""
        key = (part.data_source_uuid, part.invoice_external_id)
        with self._lock:
            self._lines.setdefault(key, {})[part.external_id] = part

    def take_lines(self, data_source_uuid: str, invoice_external_id: str) -> list[LinePart]:
        """The lines waiting for this invoice (they are its now)."""
        with self._lock:
            return list(self._lines.pop((data_source_uuid, invoice_external_id), {}).values())

    def peek_lines(self, data_source_uuid: str, invoice_external_id: str) -> list[LinePart]:
        """The lines waiting for this invoice (left waiting)."""
        with self._lock:
            return list(self._lines.get((data_source_uuid, invoice_external_id), {}).values())

    def put_back(self, parts: t.Iterable[LinePart]) -> None:
        """Lines an invoice could not use yet (it waits again)."""
        for part in parts:
            self.add_line(part)

    def homeless(self, parts: t.Iterable[LinePart]) -> None:
        """Lines just rejected because neither their header nor their invoice exists: a header later in this run
        may still take them (as it takes those rejected in earlier runs).
        """
        with self._lock:
            for part in parts:
                self._homeless.setdefault((part.data_source_uuid, part.invoice_external_id), {})[part.external_id] = part

    def remembered_lines(self, key: Key, load: t.Callable[[], t.Iterable[LinePart]]) -> list[LinePart]:
        """The lines of an invoice that earlier runs (or this one) rejected for lack of it; they are its now.

        `load` reads the sync memory's line rejects, once per run; a line rejected again in this run wins.
        """
        with self._lock:
            lines = {**self._loaded(load).pop(key, {}), **self._homeless.pop(key, {})}
        return list(lines.values())

    def has_remembered(self, key: Key, load: t.Callable[[], t.Iterable[LinePart]]) -> bool:
        """Whether lines of this invoice wait from earlier runs (left waiting)."""
        with self._lock:
            return bool(self._loaded(load).get(key) or self._homeless.get(key))

    def _loaded(self, load: t.Callable[[], t.Iterable[LinePart]]) -> dict[Key, dict[str, LinePart]]:
        """The line rejects of earlier runs by invoice, read once (the caller holds the lock)."""
        if self._remembered is None:
            self._remembered = {}
            for part in load():
                self._remembered.setdefault((part.data_source_uuid, part.invoice_external_id), {})[part.external_id] = part
        return self._remembered

    def invoices_with_lines(self) -> list[Key]:
        """Invoices whose lines arrived without a header in this run (their invoice must change)."""
        with self._lock:
            return sorted(self._lines)

    # Payments ---------------------------------------------------------------------------------
    def offer_payment(self, key: Key, payment: Payment) -> None:
        """A payment whose invoice is not in ChartMogul yet: nest it into that invoice's import."""
        with self._lock:
            self._payments.setdefault(key, {})[payment.external_id] = payment

    def withdraw_payment(self, key: Key, external_id: str) -> None:
        """The payment is being written on its own (its invoice was not new, or was imported before it came)."""
        with self._lock:
            offered = self._payments.get(key)
            if offered is not None:
                offered.pop(external_id, None)
                if not offered:
                    del self._payments[key]

    def take_payments(self, key: Key) -> list[Payment]:
        """The payments offered for an invoice about to be imported."""
        with self._lock:
            return list(self._payments.pop(key, {}).values())

    def imported(self, key: Key) -> None:
        """The invoice was imported by this run: a payment that comes after completes it (even under keep)."""
        with self._lock:
            self._imported.add(key)

    def imported_now(self, key: Key) -> bool:
        """Whether this run imported the invoice (it was not in ChartMogul before)."""
        with self._lock:
            return key in self._imported

    def nested(self, data_source_uuid: str, external_id: str, outcome: str = "created", uuid: str | None = None) -> None:
        """A payment went into its invoice's import (`imported`: a bulk import); `uuid` from the import's answer,
        so that a later delete of the payment needs no lookup.
        """
        with self._lock:
            self._nested[(data_source_uuid, external_id)] = (outcome, uuid)

    def nested_as(self, data_source_uuid: str, external_id: str) -> str | None:
        """The outcome of a payment that landed with its invoice's import, or None."""
        with self._lock:
            nested = self._nested.get((data_source_uuid, external_id))
        return nested[0] if nested is not None else None

    def nested_uuid(self, data_source_uuid: str, external_id: str) -> str | None:
        """The uuid ChartMogul gave a payment nested in its invoice's import, when the answer said."""
        with self._lock:
            nested = self._nested.get((data_source_uuid, external_id))
        return nested[1] if nested is not None else None
